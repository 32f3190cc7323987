"""The stream's stages as pure logic: ingest (decode, validate, dead letters), the join of predictions with
labels, event-time windows, the aggregator per model, the replay filter, and the table rows they produce.

Pure: imports `stream.contracts`, `stream.metrics`, `stream.monitor` and `stream.alerts`; no Kafka,
ClickHouse, Faust or HTTP code (the I/O around it lives in `stream.kafka`, `stream.storage`, `stream.runtime`).
"""
