"""Event contracts: the pydantic models of every message on every topic (predictions, ground truth, alerts,
dead letters), the model spec, the model registry, and the JSON Schema files generated from them.

Pure: imports nothing from the other subpackages except `stream.config`/`stream.errors`, and no Kafka,
ClickHouse, Faust or HTTP code.
"""
