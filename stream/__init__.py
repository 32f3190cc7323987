"""Driftwarden: real-time ML model monitoring on Kafka and ClickHouse."""

__version__ = "0.1.0"
