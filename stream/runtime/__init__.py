"""The running service: the worker wiring (Faust app, ingest task, aggregate agent, checkpoints), the
service lifecycle (broker, lock, migrations), the HTTP server and the telemetry counters.

May import every package below it; never `stream.cli`, `stream.demo` or `stream.bench`.
"""
