"""The in-process pass of `driftwarden bench`: the bench events through the pure stages, the way the worker
drives them (Ingest.process on batches of raw records, the internal batch record encoded and decoded,
Aggregator.apply, window_rows() and tick() on the flush cadence, checkpoints, ClickHouse inserts), with the
time of each stage measured by perf_counter around it and, in a second pass, the hottest functions from
cProfile. Kafka, Faust and asyncio are left out: the worker's cost above this is theirs.
"""

from __future__ import annotations

import contextlib
import cProfile
import datetime as dt
import gc
import pstats
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import orjson

import stream.pipeline.ingest
from stream.bench.kafka import murmur2_partitions, prediction_id_of
from stream.contracts.events import Limits, ModelSpec
from stream.contracts.registry import RegisteredModel, Registry
from stream.demo.synthetic import bench_specs
from stream.monitor.model_monitor import ModelMonitor
from stream.monitor.report import DATA_QUALITY_COLUMNS, DRIFT_EVENT_COLUMNS, FEATURE_DRIFT_COLUMNS
from stream.pipeline.aggregate import WINDOW_METRIC_COLUMNS, Aggregator
from stream.pipeline.ingest import Ingest, RawRecord
from stream.pipeline.join import JoinState
from stream.pipeline.pairing import COMPARISON_COLUMNS
from stream.pipeline.rows import OUTCOME_COLUMNS, outcome_rows_of
from stream.pipeline.windows import WindowStore
from stream.runtime.gc_policy import tune_gc
from stream.storage.checkpoint import CHECKPOINT_COLUMNS
from stream.storage.clickhouse import ClickHouse

STAGES = ("decode/validate", "join", "internal topic", "metrics/windows", "detectors/monitoring",
          "aggregate other", "sink", "checkpoint")
INGEST_BATCH = 5000  # stream.runtime.agents.INGEST_BATCH (the ingest consumer's getmany() batch)


@dataclass
class StageProfile:
    """Seconds per stage over ``events`` events; ``top``: the hottest functions of the cProfile pass."""

    events: int
    seconds: dict[str, float]
    cpu_seconds: float
    dead_letters: int = 0
    top: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())

    @property
    def events_per_s(self) -> float:
        return self.events / self.total if self.total > 0 else 0.0

    def shares(self) -> dict[str, float]:
        total = self.total
        return {k: v / total if total > 0 else 0.0 for k, v in self.seconds.items()}

    def dominant(self) -> str:
        return max(self.seconds, key=lambda k: self.seconds[k])


def split_stages(t: dict[str, float]) -> dict[str, float]:
    """Seconds per stage from the raw timers (nested ones are subtracted from the timer that holds them).

    >>> raw = {"process": 5.0, "decode": 2.0, "encode": 0.5, "apply": 4.0, "store": 1.0, "monitor": 2.5,
    ...        "tick": 1.0, "close": 0.75, "rows": 0.25, "sink": 0.5, "checkpoint": 0.25, "expire": 0.5}
    >>> split_stages(raw)["join"], split_stages(raw)["metrics/windows"], split_stages(raw)["aggregate other"]
    (3.5, 1.5, 0.5)
    """
    g = defaultdict(float, t)
    return {
        "decode/validate": g["decode"],
        "join": g["process"] - g["decode"] + g["expire"],
        "internal topic": g["encode"],
        "metrics/windows": g["store"] + g["tick"] - g["close"] + g["rows"],
        "detectors/monitoring": g["monitor"] + g["close"],
        "aggregate other": g["apply"] - g["store"] - g["monitor"],
        "sink": g["sink"],
        "checkpoint": g["checkpoint"],
    }


def arrange_batches(predictions: Sequence[bytes], labels: Sequence[bytes], topics: tuple[str, str],
                    n_partitions: int, batch: int = INGEST_BATCH) -> list[list[RawRecord]]:
    """Raw records as the worker's consumer hands them over: each topic partitioned by murmur2 of the
    prediction id, batches of ``batch`` records taken round-robin from every (topic, partition)."""
    queues: list[deque[RawRecord]] = []
    for topic, values in zip(topics, (predictions, labels), strict=True):
        keys = [prediction_id_of(v) for v in values]
        parts = murmur2_partitions(keys, n_partitions).tolist()
        per: list[list[RawRecord]] = [[] for _ in range(n_partitions)]
        for key, value, partition in zip(keys, values, parts, strict=True):
            per[partition].append(RawRecord(topic, partition, len(per[partition]), key, value))
        queues.extend(deque(p) for p in per)
    share = max(1, batch // max(1, len(queues)))
    order: list[RawRecord] = []
    while any(queues):
        for q in queues:
            order.extend(q.popleft() for _ in range(min(share, len(q))))
    return [order[a:a + batch] for a in range(0, len(order), batch)]


class _Timers:
    def __init__(self) -> None:
        self.t: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.t[name] += time.perf_counter() - began

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)
        return timed


@contextlib.contextmanager
def _instrumented(timers: _Timers) -> Iterator[None]:
    """Time the calls the stages make into decoding, windows and monitoring (patched for this pass only)."""
    patches = [
        mock.patch.object(stream.pipeline.ingest, "decode_predictions",
                          timers.wrap("decode", stream.pipeline.ingest.decode_predictions)),
        mock.patch.object(stream.pipeline.ingest, "decode_ground_truth",
                          timers.wrap("decode", stream.pipeline.ingest.decode_ground_truth)),
        mock.patch.object(WindowStore, "add_predictions", timers.wrap("store", WindowStore.add_predictions)),
        mock.patch.object(WindowStore, "add_outcomes", timers.wrap("store", WindowStore.add_outcomes)),
        mock.patch.object(ModelMonitor, "add_predictions", timers.wrap("monitor", ModelMonitor.add_predictions)),
        mock.patch.object(ModelMonitor, "add_outcomes", timers.wrap("monitor", ModelMonitor.add_outcomes)),
        mock.patch.object(ModelMonitor, "close_window", timers.wrap("close", ModelMonitor.close_window)),
    ]
    with contextlib.ExitStack() as stack:
        for patch in patches:
            stack.enter_context(patch)
        yield


class _Pass:
    """One run of the pure stages over arranged batches."""

    def __init__(self, ch: ClickHouse | None, n_partitions: int, topics: tuple[str, str], max_delay_ms: int,
                 database: str) -> None:
        registry = Registry(RegisteredModel(spec=ModelSpec.model_validate(s)) for s in bench_specs())
        self.registry = registry
        self.ch = ch
        self.ingest = Ingest(registry, Limits(), topics[0], topics[1], max_delay_ms)
        self.n_partitions = n_partitions
        self.database = database
        self.aggregators: dict[int, Aggregator] = {}
        self.internal_offsets: dict[int, int] = defaultdict(int)
        self.pending: dict[str, tuple[tuple[str, ...], list[tuple[Any, ...]]]] = {}
        self.dead_letters = 0
        self.touched: set[int] = set()
        self.partitions: dict[str, int] = {}

    def partition_of(self, model_id: str) -> int:
        """Partition of the internal topic (keyed by model id) a model's batch records go to."""
        found = self.partitions.get(model_id)
        if found is None:
            found = self.partitions[model_id] = int(murmur2_partitions([model_id.encode()], self.n_partitions)[0])
        return found

    def _spec_for(self, model_id: str) -> ModelSpec:
        model = self.registry.get(model_id)
        if model is None:
            raise KeyError(model_id)
        return model.spec

    def _queue(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.pending.setdefault(table, (tuple(columns), []))[1].extend(rows)

    def batch(self, timers: _Timers, records: list[RawRecord]) -> None:
        with timers("process"):
            result = self.ingest.process(records)
        self.dead_letters += len(result.dead_letters)
        self.touched.update(r.partition for r in records)
        for (model_id, _), record in result.batches.items():
            partition = self.partition_of(model_id)
            with timers("encode"):
                decoded = orjson.loads(orjson.dumps(record))
            with timers("sink"):
                self._queue("outcomes", OUTCOME_COLUMNS, outcome_rows_of(record))
            with timers("apply"):
                aggregator = self.aggregators.get(partition)
                if aggregator is None:
                    aggregator = self.aggregators[partition] = Aggregator(self._spec_for, database=self.database)
                aggregator.apply(decoded, self.internal_offsets[partition])
            self.internal_offsets[partition] += 1

    def flush(self, timers: _Timers, now_ms: int, close_all: bool = False) -> None:
        """What the worker's flush timer does: tick, changed window rows, detections, then the inserts."""
        for aggregator in self.aggregators.values():
            with timers("tick"):
                reports = aggregator.tick(now_ms, idle=False, close_all=close_all)
            with timers("rows"):
                rows = aggregator.window_rows()
            with timers("sink"):
                version = time.time_ns()
                self._queue("window_metrics", WINDOW_METRIC_COLUMNS, rows)
                self._queue("drift_events", DRIFT_EVENT_COLUMNS, aggregator.take_detections())
                self._queue("model_comparisons", COMPARISON_COLUMNS, aggregator.comparison_rows())
                self._queue("feature_drift", (*FEATURE_DRIFT_COLUMNS, "version"),
                            [(*r, version) for report in reports for r in report.feature_drift])
                self._queue("data_quality", (*DATA_QUALITY_COLUMNS, "version"),
                            [(*r, version) for report in reports for r in report.data_quality])
        with timers("sink"):
            for table, (columns, rows) in self.pending.items():
                if self.ch is not None:
                    self.ch.insert(table, rows, columns)
            self.pending.clear()

    def checkpoint(self, timers: _Timers) -> None:
        with timers("checkpoint"):
            now, version = dt.datetime.now(dt.UTC), time.time_ns()
            rows: list[tuple[Any, ...]] = []
            for p in sorted(self.touched):
                offsets, state = self.ingest.checkpoint(p)
                rows.append(("ingest", p, orjson.dumps(offsets).decode(), state, version, now))
            for p, aggregator in sorted(self.aggregators.items()):
                rows.append(("aggregate", p, orjson.dumps({"outcomes": aggregator.next_offset}).decode(),
                             aggregator.snapshot(), version, now))
            if self.ch is not None:
                self.ch.insert("checkpoints", rows, CHECKPOINT_COLUMNS)
            self.touched.clear()

    def expire(self, timers: _Timers, now_ms: int) -> None:
        with timers("expire"):
            for partition in list(self.ingest.joins):
                self.ingest.expire(partition, now_ms)


def run_stages(predictions: Sequence[bytes], labels: Sequence[bytes], *, ch: ClickHouse | None,
               topics: tuple[str, str] = ("predictions", "ground_truth"), n_partitions: int = 4,
               max_delay_ms: int = 7 * 86_400_000, flush_every: int = 20, checkpoint_every: int = 40,
               expire_every: int = 100, profile_top: int = 0, database: str = "driftwarden") -> StageProfile:
    """Run the bench events through the pure stages; flush (tick, window rows, inserts) every ``flush_every``
    ingest batches, checkpoint every ``checkpoint_every`` and expire joins every ``expire_every`` (the worker
    does these on wall-clock timers: 1 s, 2 s and 5 s), and once more at the end, closing every window.
    ``profile_top`` > 0 runs a second, cProfiled pass and keeps that many functions by own time."""
    batches = arrange_batches(predictions, labels, topics, n_partitions)
    previous_gc = tune_gc()  # the worker's collector policy
    try:
        return _run_stages(predictions, labels, batches, ch, topics, n_partitions, max_delay_ms, flush_every,
                           checkpoint_every, expire_every, profile_top, database)
    finally:
        gc.set_threshold(*previous_gc)
        gc.unfreeze()


def _run_stages(predictions: Sequence[bytes], labels: Sequence[bytes], batches: list[list[RawRecord]],
                ch: ClickHouse | None, topics: tuple[str, str], n_partitions: int, max_delay_ms: int,
                flush_every: int, checkpoint_every: int, expire_every: int, profile_top: int,
                database: str) -> StageProfile:
    timers = _Timers()
    cpu0 = time.process_time()
    with _instrumented(timers):
        dead = _drive(_Pass(ch, n_partitions, topics, max_delay_ms, database), timers, batches, flush_every,
                      checkpoint_every, expire_every)
    cpu = time.process_time() - cpu0
    result = StageProfile(len(predictions) + len(labels), split_stages(timers.t), cpu, dead)
    if profile_top > 0:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            _drive(_Pass(ch, n_partitions, topics, max_delay_ms, database), _Timers(), batches, flush_every,
                   checkpoint_every, expire_every)
        finally:
            profiler.disable()
        result.top = top_functions(pstats.Stats(profiler), profile_top)
    return result


def _drive(run: _Pass, timers: _Timers, batches: list[list[RawRecord]], flush_every: int, checkpoint_every: int,
           expire_every: int) -> int:
    for i, records in enumerate(batches, start=1):
        run.batch(timers, records)
        now_ms = int(time.time() * 1000)
        if i % flush_every == 0:
            run.flush(timers, now_ms)
        if i % expire_every == 0:
            run.expire(timers, now_ms)
        if i % checkpoint_every == 0:
            run.checkpoint(timers)
    run.flush(timers, int(time.time() * 1000), close_all=True)
    run.checkpoint(timers)
    return run.dead_letters


def top_functions(stats: pstats.Stats, n: int, key: str = "own") -> list[dict[str, Any]]:
    """The ``n`` functions with the most own (or ``key="cumulative"``) time: name, calls, own and cumulative
    seconds."""
    entries = stats.stats  # type: ignore[attr-defined]
    column = 2 if key == "own" else 3
    rows = sorted(entries.items(), key=lambda kv: kv[1][column], reverse=True)[:n]
    out = []
    for (filename, line, name), (_, calls, tottime, cumtime, _) in rows:
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        out.append({"function": f"{short}:{line}({name})", "calls": calls, "own_s": round(tottime, 4),
                    "cumulative_s": round(cumtime, 4)})
    return out


def join_bytes_per_waiting_prediction(predictions: Sequence[bytes], batch: int = 1000) -> float:
    """Bytes the join state allocates per waiting prediction (tracemalloc, as `benchmarks/join_memory.py`),
    with every bench prediction inserted and none labelled; keys interned per (model, version, segment)."""
    import tracemalloc

    events = [orjson.loads(v) for v in predictions]
    state = JoinState(max_delay_ms=7 * 86_400_000)
    ids = [e["prediction_id"] for e in events]
    keys = [state.intern(e["model_id"], e["model_version"], orjson.dumps(e["segment"]).decode()) for e in events]
    ts = [int(e["timestamp"]) for e in events]
    preds = [e["prediction"] for e in events]
    scores = [float(e.get("score", float("nan"))) for e in events]
    del events
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for a in range(0, len(ids), batch):
            state.add_predictions(ids[a:a + batch], keys[a:a + batch], ts[a:a + batch], preds[a:a + batch],
                                  scores[a:a + batch])
        allocated = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    return allocated / max(1, state.n_waiting_predictions)
