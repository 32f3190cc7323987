"""Window metric accumulators: classification, regression and business metrics, and the sketches behind them.

Pure: imports only `stream.contracts`; no Kafka, ClickHouse, Faust or HTTP code.
"""
