"""Versioned, idempotent ClickHouse migrations: the database, the tables and the analyst views.

Every table that the stream rewrites is a ReplacingMergeTree keyed by a deterministic key with a ``version``
column, so that a replay after a crash or a late label revising a window replaces the row instead of adding
one. Queries that must see exactly one row per key use ``FINAL`` (or the ``*_latest`` views).
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.storage.clickhouse import ClickHouse


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


_TS = "DateTime64(3, 'UTC')"

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core tables", (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.window_metrics (
            model_id LowCardinality(String), model_version LowCardinality(String), segment String,
            window_start {_TS}, window_end {_TS}, metric LowCardinality(String),
            value Float64, samples UInt64, version UInt64, updated_at {_TS}
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (model_id, model_version, segment, window_start, metric)""",
        # The TTL also applies when a part is written: outcomes whose prediction is older than it (a replayed
        # backlog) are dropped on insert, not only by later merges.
        f"""CREATE TABLE IF NOT EXISTS {{db}}.outcomes (
            prediction_id String, model_id LowCardinality(String), model_version LowCardinality(String),
            segment String, prediction_time {_TS}, label_time {_TS}, prediction String, label String,
            score Nullable(Float64), business Map(String, Float64), version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (model_id, prediction_id)
        TTL toDateTime(prediction_time) + INTERVAL {{outcomes_ttl_days}} DAY""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.join_stats (
            partition UInt32, metric LowCardinality(String), value Float64, version UInt64, updated_at {_TS}
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (partition, metric)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.dead_letters (
            topic LowCardinality(String), partition Int32, offset Int64, key Nullable(String), raw String,
            reason LowCardinality(String), error String, time {_TS}
        ) ENGINE = ReplacingMergeTree ORDER BY (topic, partition, offset)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.models (
            model_id String, model_version String, spec String, profile String, registered_at {_TS}
        ) ENGINE = ReplacingMergeTree(registered_at) ORDER BY (model_id, model_version)""",
    )),
    Migration(2, "drift, quality and alerts", (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.feature_drift (
            model_id LowCardinality(String), model_version LowCardinality(String), segment String,
            window_start {_TS}, window_end {_TS}, feature String, test LowCardinality(String),
            statistic Float64, p_value Nullable(Float64), threshold Float64, drifted UInt8, insufficient UInt8,
            samples UInt64, version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (model_id, model_version, segment, window_start, feature, test)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.data_quality (
            model_id LowCardinality(String), model_version LowCardinality(String),
            window_start {_TS}, window_end {_TS}, feature String, check LowCardinality(String),
            value Float64, samples UInt64, detail String, version UInt64
        ) ENGINE = ReplacingMergeTree(version)
        ORDER BY (model_id, model_version, window_start, feature, check)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.drift_events (
            model_id LowCardinality(String), model_version LowCardinality(String), detector LowCardinality(String),
            signal String, event_time {_TS}, position UInt64, estimate_before Float64, estimate_after Float64,
            params String, detected_at {_TS}
        ) ENGINE = ReplacingMergeTree ORDER BY (model_id, model_version, signal, detector, position)""",
        f"""CREATE TABLE IF NOT EXISTS {{db}}.alerts (
            alert_id String, state LowCardinality(String), severity LowCardinality(String),
            model_id LowCardinality(String), model_version LowCardinality(String), segment String, rule String,
            metric String, observed Nullable(Float64), threshold Nullable(Float64),
            window_start Nullable({_TS}), window_end Nullable({_TS}), time {_TS}, message String,
            evidence_sql String
        ) ENGINE = ReplacingMergeTree ORDER BY (alert_id, state)""",
    )),
    Migration(3, "analyst views", (
        """CREATE VIEW IF NOT EXISTS {db}.window_metrics_latest AS
        SELECT model_id, model_version, segment, window_start, window_end, metric,
               argMax(value, version) AS value, argMax(samples, version) AS samples
        FROM {db}.window_metrics
        GROUP BY model_id, model_version, segment, window_start, window_end, metric""",
        """CREATE VIEW IF NOT EXISTS {db}.metrics_hourly AS
        SELECT model_id, model_version, segment, toStartOfHour(window_start) AS hour, metric,
               sum(samples) AS total_samples,
               if(sum(samples) = 0, nan, sum(value * samples) / sum(samples)) AS weighted_mean,
               min(value) AS min_value, max(value) AS max_value
        FROM {db}.window_metrics_latest
        GROUP BY model_id, model_version, segment, hour, metric""",
        """CREATE VIEW IF NOT EXISTS {db}.metrics_daily AS
        SELECT model_id, model_version, segment, toDate(window_start) AS day, metric,
               sum(samples) AS total_samples,
               if(sum(samples) = 0, nan, sum(value * samples) / sum(samples)) AS weighted_mean,
               min(value) AS min_value, max(value) AS max_value
        FROM {db}.window_metrics_latest
        GROUP BY model_id, model_version, segment, day, metric""",
    )),
    Migration(4, "stage checkpoints", (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.checkpoints (
            stage LowCardinality(String), partition UInt32, offsets String, state String, version UInt64,
            saved_at {_TS}
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (stage, partition)""",
    )),
    # The TTL by prediction time dropped outcomes of old predictions on insert (window_metrics counted them)
    # and wrapped after 2106 (toDateTime of a DateTime64): outcomes now expire by the time they were written,
    # the same for every event time the contracts accept (1970-2199).
    Migration(20, "outcomes expire by the time they were written", (
        "ALTER TABLE {db}.outcomes ADD COLUMN IF NOT EXISTS written_at DateTime('UTC') DEFAULT now()",
        "ALTER TABLE {db}.outcomes MODIFY TTL written_at + INTERVAL {outcomes_ttl_days} DAY",
    )),
    # --- issue 18: a detection's estimated change point beside the time it was noticed
    Migration(70, "drift event change point", (
        f"""ALTER TABLE {{db}}.drift_events ADD COLUMN IF NOT EXISTS change_position Nullable(UInt64),
            ADD COLUMN IF NOT EXISTS change_time Nullable({_TS})""",
    )),
    # --- issue 18: multivariate drift rows (feature '__multivariate__') carry their attribution and band as JSON
    Migration(71, "feature drift details", (
        "ALTER TABLE {db}.feature_drift ADD COLUMN IF NOT EXISTS details String DEFAULT ''",
    )),
    # --- issue 17: data quality and detector firings per segment ('' = the whole model, as before). The new
    # column (no DEFAULT: a String is '' anyway) joins the end of each sorting key (ClickHouse allows that only in
    # the ALTER that adds it, and only for a column without a default expression), so
    # the rows of different segments of one window are not collapsed by the ReplacingMergeTree.
    Migration(69, "segments in data quality and drift events", (
        """ALTER TABLE {db}.data_quality ADD COLUMN segment String,
            MODIFY ORDER BY (model_id, model_version, window_start, feature, check, segment)""",
        """ALTER TABLE {db}.drift_events ADD COLUMN segment String,
            MODIFY ORDER BY (model_id, model_version, signal, detector, position, segment)""",
    )),
    # --- issue 17: paired champion/challenger comparisons per champion window
    Migration(60, "champion/challenger comparisons", (
        f"""CREATE TABLE IF NOT EXISTS {{db}}.model_comparisons (
            champion_id LowCardinality(String), challenger_id LowCardinality(String), window_start {_TS},
            window_end {_TS}, metric LowCardinality(String), pairs UInt64, champion_value Float64,
            challenger_value Float64, difference Float64, agreement Float64, champion_only UInt64,
            challenger_only UInt64, statistic Float64, p_value Float64, test LowCardinality(String),
            verdict LowCardinality(String), version UInt64, updated_at {_TS}
        ) ENGINE = ReplacingMergeTree(version) ORDER BY (champion_id, challenger_id, window_start)""",
    )),
)


def migrate(ch: ClickHouse, outcomes_ttl_days: int = 90) -> list[int]:
    """Create the database and apply every migration not yet recorded; return the versions applied now."""
    db = ch.database
    ch.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    ch.command(
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, "
        f"applied_at {_TS} DEFAULT now64(3)) ENGINE = ReplacingMergeTree ORDER BY version"
    )
    _, rows = ch.query_rows(f"SELECT version FROM {db}.schema_migrations FINAL")
    done = {int(row[0]) for row in rows}
    applied: list[int] = []
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        for statement in migration.statements:
            ch.command(statement.format(db=db, outcomes_ttl_days=int(outcomes_ttl_days)))
        ch.insert("schema_migrations", [[migration.version, migration.name]], ["version", "name"])
        applied.append(migration.version)
    return applied


def current_version(ch: ClickHouse) -> int:
    _, rows = ch.query_rows(f"SELECT max(version) FROM {ch.database}.schema_migrations")
    return int(rows[0][0] or 0)
