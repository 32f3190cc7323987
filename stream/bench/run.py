"""`driftwarden bench`: end-to-end throughput against the raw Kafka ceiling and a naive Faust pipeline.

Steps (all on 127.0.0.1, every process started here is stopped by its pid at the end, also on errors):

1. start the embedded broker, create the topics, register the two bench models and pre-produce ``events``
   predictions and about 0.9 x as many labels (`stream.demo.synthetic.bench_events`);
2. ceiling: a plain aiokafka consumer reads and decodes both topics to their end;
3. naive: `benchmarks/naive_faust.py` in a child process (per-event validation, table write, ADWIN updates,
   small ClickHouse inserts), until it has consumed everything or its time limit;
4. Driftwarden: `driftwarden up` in a child process against the same broker, until the window counts in
   ClickHouse equal what was produced; CPU time and peak RSS from /proc; then an in-process pass of the same
   events through the pure stages for the cost split (`stream.bench.stages`).

Rates count predictions + labels per second, from the first event consumed to the end (startup excluded; the
end-to-end rate with startup is reported too).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stream.bench.kafka import consume_ceiling, produce
from stream.bench.procs import Child, cpu_seconds, peak_rss_bytes, start_child
from stream.config import Settings
from stream.demo.synthetic import bench_events
from stream.errors import UserError
from stream.kafka.embedded import EmbeddedBroker, free_port

TARGET_CEILING_RATIO = 0.25
TARGET_NAIVE_RATIO = 5.0
MIN_EVENTS, MAX_EVENTS = 1000, 5_000_000
NAIVE_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "naive_faust.py"
VERSIONED = ("numpy", "faust-streaming", "aiokafka", "river", "chdb-core", "orjson", "pydantic")

Say = Callable[[str], None]


@dataclass
class BenchOptions:
    """What to run; build it with `resolve_options` (which validates)."""

    events: int = 200_000
    quick: bool = False
    skip_naive: bool = False
    naive_time_limit: float = 120.0
    worker_time_limit: float = 600.0
    seed: int = 1
    results_dir: Path = Path("benchmarks/results")
    profile_top: int = 15
    profile_worker: bool = False


def resolve_options(events: int | None = None, quick: bool = False, skip_naive: bool = False,
                    naive_time_limit: float | None = None, worker_time_limit: float = 600.0, seed: int = 1,
                    results_dir: Path = Path("benchmarks/results"), profile_worker: bool = False) -> BenchOptions:
    """Defaults: 200,000 predictions and a 120 s naive limit; ``quick``: 20,000 and 30 s (explicit values win).

    >>> resolve_options(quick=True).events, resolve_options(events=5000, quick=True).events
    (20000, 5000)
    """
    n = events if events is not None else (20_000 if quick else 200_000)
    if not MIN_EVENTS <= n <= MAX_EVENTS:
        raise UserError(f"--events {n} is out of range: use {MIN_EVENTS:,} to {MAX_EVENTS:,} predictions")
    limit = naive_time_limit if naive_time_limit is not None else (30.0 if quick else 120.0)
    if limit <= 0 or worker_time_limit <= 0:
        raise UserError("time limits must be positive numbers of seconds")
    if not skip_naive and not NAIVE_SCRIPT.exists():
        raise UserError(f"the naive baseline {NAIVE_SCRIPT} is missing (installed without the source tree?): "
                        "run from a checkout of the repository, or pass --skip-naive")
    return BenchOptions(n, quick, skip_naive, limit, worker_time_limit, seed, results_dir,
                        profile_worker=profile_worker)


@dataclass
class Run:
    """The measured run of one child pipeline."""

    events: int = 0
    seconds: float = 0.0  # first event consumed -> done
    startup_seconds: float = 0.0  # process start -> first event consumed
    finished: bool = False
    cpu_seconds: float = 0.0  # over `seconds`
    peak_rss_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_per_1k(self) -> float:
        return 1000 * self.cpu_seconds / self.events if self.events else 0.0

    def summary(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out.update(events_per_s=round(self.events_per_s, 1), cpu_seconds_per_1k_events=round(self.cpu_per_1k, 4),
                   events_per_s_with_startup=round(self.events / (self.seconds + self.startup_seconds), 1)
                   if self.seconds + self.startup_seconds > 0 else 0.0, **self.extra)
        return out


def bench_settings() -> Settings:
    """Driftwarden's defaults, whatever DRIFTWARDEN_* variables are set (the worker runs with defaults too)."""
    return Settings(_env_prefix="DRIFTWARDEN_BENCH_IGNORED_")  # type: ignore[call-arg]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_bytes": mem, "platform": platform.platform()}


def ratio(numerator: float, denominator: float | None) -> float | None:
    """``numerator / denominator``, None when the denominator is missing or zero.

    >>> ratio(10.0, 4.0), ratio(1.0, 0.0), ratio(1.0, None)
    (2.5, None, None)
    """
    return numerator / denominator if denominator else None


def write_results(result: dict[str, Any], directory: Path, suffix: str = "", latest: bool = True,
                  now: dt.datetime | None = None) -> list[Path]:
    """Write ``bench-<date><suffix>.json`` and, if ``latest``, overwrite ``latest.json`` with the same text
    (each atomically). Returns the paths written."""
    now = now or dt.datetime.now()
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    paths = [directory / f"bench-{now:%Y-%m-%d}{suffix}.json"]
    if latest:
        paths.append(directory / "latest.json")
    for path in paths:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return paths


def _http(url: str, data: bytes | None = None, timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def records_consumed(metrics_text: str) -> int:
    """Sum of ``driftwarden_records_total`` over topics in a Prometheus exposition.

    >>> records_consumed('driftwarden_records_total{topic="p"} 5.0\\ndriftwarden_records_total{topic="g"} 2.0\\n')
    7
    """
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("driftwarden_records_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


class Bench:
    """One benchmark run; `run()` returns the result dictionary (also written by the CLI)."""

    def __init__(self, options: BenchOptions, say: Say) -> None:
        self.options = options
        self.say = say
        self.settings = bench_settings()
        self.children: list[Child] = []
        self.broker: EmbeddedBroker | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="driftwarden-bench-"))

    def run(self) -> dict[str, Any]:
        ok = False
        try:
            result = self._run()
            ok = True
            return result
        finally:
            self.cleanup(remove_workdir=ok)

    def cleanup(self, remove_workdir: bool) -> None:
        """Stop every child (SIGTERM, then SIGKILL) and the broker, by pid; keep the logs if something failed."""
        for child in self.children:
            child.stop(timeout=20)
        self.children.clear()
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
        if remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            self.say(f"logs kept in {self.workdir}")

    def _run(self) -> dict[str, Any]:
        o, s = self.options, self.settings
        self.say(f"generating {o.events:,} predictions and their labels (seed {o.seed})")
        predictions, labels = bench_events(o.events, o.seed)
        total = len(predictions) + len(labels)
        self.broker = EmbeddedBroker(log_path=self.workdir / "tansu.log").start()
        bootstrap = self.broker.bootstrap_servers
        from stream.runtime.service import ensure_topics

        asyncio.run(ensure_topics(bootstrap, s))
        self.say(f"broker on {bootstrap}; producing {len(predictions):,} predictions and {len(labels):,} labels")
        produced = asyncio.run(produce(bootstrap, (s.topic_models, s.topic_predictions, s.topic_ground_truth),
                                       predictions, labels))
        self.say(f"produced {total:,} events in {produced.seconds:.1f} s ({produced.events_per_s:,.0f}/s)")

        self.say("ceiling: a plain aiokafka consumer reading and decoding both topics")
        ceiling = asyncio.run(consume_ceiling(bootstrap, [s.topic_predictions, s.topic_ground_truth]))
        if ceiling.events != total:
            raise UserError(f"the ceiling consumer read {ceiling.events} events, {total} were produced")
        self.say(f"ceiling: {ceiling.events_per_s:,.0f} events/s")

        naive = None if o.skip_naive else self.run_naive(bootstrap, total)
        worker = self.run_worker(bootstrap, len(predictions), len(labels))

        from stream.bench.stages import INGEST_BATCH, join_bytes_per_waiting_prediction, run_stages
        from stream.storage.clickhouse import ClickHouse
        from stream.storage.migrations import migrate

        self.say("stage profile: the same events through the pure stages in this process (timed, then cProfiled)")
        batches_per_s = max(1.0, worker.events_per_s / INGEST_BATCH)  # on the worker's flush/checkpoint timers
        ch = ClickHouse(f"chdb://{self.workdir / 'stages-clickhouse'}", s.clickhouse_database)
        try:
            migrate(ch, s.outcomes_ttl_days)
            stages = run_stages(
                predictions, labels, ch=ch, topics=(s.topic_predictions, s.topic_ground_truth),
                n_partitions=s.topic_partitions, max_delay_ms=s.max_label_delay_seconds * 1000,
                flush_every=max(1, round(batches_per_s * s.sink_flush_seconds)),
                checkpoint_every=max(1, round(batches_per_s * s.checkpoint_seconds)),
                expire_every=max(1, round(batches_per_s * 5)), profile_top=o.profile_top,
                database=s.clickhouse_database)
        finally:
            ch.close()
        self.say("join memory: bytes per waiting prediction (tracemalloc)")
        join_bytes = join_bytes_per_waiting_prediction(predictions)
        return self.compose(len(predictions), len(labels), produced.seconds, ceiling.events_per_s, naive, worker,
                            stages, join_bytes)

    def run_naive(self, bootstrap: str, total: int) -> Run:
        o, s = self.options, self.settings
        self.say(f"naive Faust pipeline: up to {o.naive_time_limit:.0f} s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWARDEN_")} | {"PYTHONUNBUFFERED": "1"}
        argv = [sys.executable, str(NAIVE_SCRIPT), "--bootstrap", bootstrap, "--expected", str(total),
                "--data-dir", str(self.workdir / "naive"), "--predictions-topic", s.topic_predictions,
                "--ground-truth-topic", s.topic_ground_truth, "--partitions", str(s.topic_partitions), "--tansu"]
        began = time.time()
        child = self.track(start_child("naive", argv, env, self.workdir / "naive.log", json_stdout=True))
        run = Run()
        cpu_at_first: float | None = None
        deadline: float | None = None
        next_say = time.monotonic() + 5
        while True:
            last = child.last()
            if not child.alive():
                raise UserError(f"the naive pipeline exited with {child.process.returncode}:\n{child.tail()}")
            if last.get("consumed") and cpu_at_first is None:
                cpu_at_first = cpu_seconds(child.pid)
                deadline = time.monotonic() + o.naive_time_limit
            if last.get("done") or (deadline is not None and time.monotonic() >= deadline) \
                    or time.time() - began > o.naive_time_limit + 120:
                break
            if time.monotonic() >= next_say:
                next_say += 5
                self.say(f"naive: {int(last.get('consumed', 0)):,}/{total:,} events")
            time.sleep(0.1)
        cpu_end = cpu_seconds(child.pid)
        run.peak_rss_bytes = peak_rss_bytes(child.pid)
        last = child.last()
        child.stop()
        run.finished = bool(last.get("done"))
        run.events = int(last.get("consumed", 0))
        first = float(last.get("first", 0.0))
        run.seconds = float(last.get("now", 0.0)) - first if first else 0.0
        run.startup_seconds = first - began if first else 0.0
        run.cpu_seconds = cpu_end - (cpu_at_first or 0.0)
        run.extra = {"time_limit_s": o.naive_time_limit, "of_events": total}
        self.say(f"naive: {run.events:,} events at {run.events_per_s:,.0f}/s"
                 + ("" if run.finished else f" (time limit {o.naive_time_limit:.0f} s reached)"))
        return run

    def track(self, child: Child) -> Child:
        self.children.append(child)
        return child

    def run_worker(self, bootstrap: str, n_predictions: int, n_labels: int) -> Run:
        o, s = self.options, self.settings
        total = n_predictions + n_labels
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWARDEN_")} | {
            "DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DRIFTWARDEN_KAFKA_FLAVOR": "tansu",
            "DRIFTWARDEN_DATA_DIR": str(self.workdir / "driftwarden"), "DRIFTWARDEN_WEB_PORT": str(port),
            "PYTHONUNBUFFERED": "1",
        }
        self.say(f"Driftwarden: `driftwarden up` against the same broker, until ClickHouse holds every window "
                 f"(up to {o.worker_time_limit:.0f} s)")
        profile = self.workdir / "worker.prof"
        python = [sys.executable, "-m", "cProfile", "-o", str(profile)] if o.profile_worker else [sys.executable]
        began = time.monotonic()
        child = self.track(start_child("driftwarden", [*python, "-m", "stream.cli", "up"], env,
                                       self.workdir / "driftwarden.log"))
        query = (f"SELECT metric, sum(value) FROM {s.clickhouse_database}.window_metrics FINAL WHERE segment = '' "
                 "AND metric IN ('predictions', 'labelled') GROUP BY metric").encode()
        run = Run(extra={"predictions": n_predictions, "labels": n_labels})
        first: float | None = None
        cpu_at_first = 0.0
        consumed = 0
        next_say = time.monotonic() + 5
        while time.monotonic() < began + o.worker_time_limit:
            if not child.alive():
                raise UserError(f"the worker exited with {child.process.returncode}:\n{child.tail()}")
            now = time.monotonic()
            with contextlib.suppress(OSError, ValueError):
                consumed = records_consumed(_http(url + "/metrics", timeout=5).decode())
            if consumed and first is None:
                first, cpu_at_first = now, cpu_seconds(child.pid)
            if consumed >= total:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    counts = {m: int(v) for m, v in json.loads(_http(url + "/sql", query, timeout=30))["rows"]}
                    run.extra.update(windows_predictions=counts.get("predictions", 0),
                                     windows_labelled=counts.get("labelled", 0))
                    if counts.get("predictions") == n_predictions and counts.get("labelled") == n_labels:
                        run.finished = True
                        break
            if time.monotonic() >= next_say:
                next_say += 5
                self.say(f"driftwarden: {consumed:,}/{total:,} events consumed"
                         + (", waiting for the windows in ClickHouse" if consumed >= total else ""))
            time.sleep(0.2)
        done = time.monotonic()
        run.cpu_seconds = cpu_seconds(child.pid) - cpu_at_first
        run.peak_rss_bytes = peak_rss_bytes(child.pid)
        child.stop(timeout=60)
        run.events = total if run.finished else consumed
        run.seconds = done - first if first is not None else 0.0
        run.startup_seconds = first - began if first is not None else 0.0
        if o.profile_worker and profile.exists():
            import pstats

            from stream.bench.stages import top_functions

            run.extra["profiled"] = True  # cProfile slows the worker: its rate is not comparable
            run.extra["top_functions"] = top_functions(pstats.Stats(str(profile)), 25)
            run.extra["top_cumulative"] = top_functions(pstats.Stats(str(profile)), 25, key="cumulative")
        if not run.finished:
            self.say(f"driftwarden: did not finish within {o.worker_time_limit:.0f} s; see {child.log}")
        self.say(f"driftwarden: {run.events:,} events at {run.events_per_s:,.0f}/s "
                 f"({run.cpu_per_1k:.3f} CPU s per 1,000 events, peak RSS {run.peak_rss_bytes / 2**20:,.0f} MiB)")
        return run

    def compose(self, n_predictions: int, n_labels: int, produce_s: float, ceiling: float, naive: Run | None,
                worker: Run, stages: Any, join_bytes: float) -> dict[str, Any]:
        shares = stages.shares()
        events = stages.events
        return {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "versions": versions(),
            "options": {"events": self.options.events, "quick": self.options.quick, "seed": self.options.seed,
                        "naive_time_limit_s": self.options.naive_time_limit,
                        "topic_partitions": self.settings.topic_partitions},
            "events": {"predictions": n_predictions, "labels": n_labels, "total": n_predictions + n_labels,
                       "produce_seconds": round(produce_s, 3)},
            "ceiling": {"events_per_s": round(ceiling, 1)},
            "naive": None if naive is None else naive.summary(),
            "driftwarden": worker.summary() | {"join_bytes_per_waiting_prediction": round(join_bytes, 1)},
            "stages": {
                "events_per_s": round(stages.events_per_s, 1),
                "cpu_seconds_per_1k_events": round(1000 * stages.cpu_seconds / events, 4) if events else 0.0,
                "seconds": {k: round(v, 4) for k, v in stages.seconds.items()},
                "share": {k: round(v, 4) for k, v in shares.items()},
                "us_per_event": {k: round(1e6 * v / events, 2) for k, v in stages.seconds.items()} if events else {},
                "dominant": stages.dominant(),
                "dead_letters": stages.dead_letters,
                "top_functions": stages.top,
            },
            "ratios": {
                "driftwarden_over_ceiling": _round(ratio(worker.events_per_s, ceiling)),
                "driftwarden_over_ceiling_target": TARGET_CEILING_RATIO,
                "driftwarden_over_naive": _round(ratio(worker.events_per_s, naive.events_per_s if naive else None)),
                "driftwarden_over_naive_target": TARGET_NAIVE_RATIO,
            },
        }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
