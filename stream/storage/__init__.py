"""ClickHouse: the facade over chdb and HTTP, versioned migrations, the batching sink thread, stage
checkpoints and the read-only SQL guard.

May import the pure packages; never `stream.kafka`, `stream.runtime`, `stream.cli`.
"""
