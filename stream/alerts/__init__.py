"""Alert rules, alert state (hysteresis, cooldown, deterministic ids), silences, and delivery (the signed
webhook and Prometheus Alertmanager).

Rules, state, silences and signing are pure (they import `stream.contracts` only); `webhook`,
`alertmanager` and `delivery` (the HTTP session, POST and retries they share) are the modules here that do
I/O (HTTP), and nothing pure imports them.
"""
