"""Monitoring of one model: reference profiles, distribution tests, online drift detectors (River), data
quality, and the per-window report that the rules judge.

Pure: imports `stream.contracts`, `stream.metrics` and `stream.alerts` (rules and state); no Kafka,
ClickHouse, Faust or HTTP code.
"""
