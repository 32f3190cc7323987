"""Alert rules, alert state (hysteresis, cooldown, deterministic ids), silences, and delivery (the signed
webhook).

Rules, state and silences are pure (they import `stream.contracts` only); `webhook` is the one module here
that does I/O (HTTP), and nothing pure imports it.
"""
