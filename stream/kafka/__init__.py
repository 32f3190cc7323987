"""Kafka: the embedded tansu broker, its compatibility switches, short-lived clients, topic administration and
the control topics, and the batched ingest consumer.

May import the pure packages; never `stream.storage`, `stream.runtime`, `stream.cli`.
"""
