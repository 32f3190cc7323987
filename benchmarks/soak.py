"""Soak: mixed valid and hostile traffic against a worker on a standalone tansu broker, the worker SIGKILLed and
restarted periodically; reports events produced, processed, dead-lettered, lost (must be 0) and the worker's RSS
over time.

Run: ``.venv/bin/python benchmarks/soak.py [--minutes 30] [--rate 200] [--hostile 0.1] [--kill-every 60]``
(writes benchmarks/results/soak.json; exits 1 if anything was lost or a hostile record was not dead-lettered).

The broker is its own process (tansu, in memory, started by this script), so it keeps every acknowledged
record while the worker is dead, like a durable external Kafka; the worker (`driftwarden up`, default
settings) reads it as an external broker. Valid traffic: prediction + label pairs of a classifier and a
regressor, timestamped now. Hostile traffic, each kind in turn: random bytes, truncated JSON, wrong types, a
prediction and a label of 1e400, timestamps in year 9999 and 30 days ahead, an empty feature name, a
tombstone. At the end the producer stops and the script waits until every pair is in ``outcomes`` and every
hostile record in ``dead_letters``; *lost* counts the pairs that never arrived, *unexpected* the valid records
dead-lettered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from stream.bench.procs import Child, start_child
from stream.kafka.embedded import EmbeddedBroker, free_port

HOSTILE_KINDS = ("random_bytes", "truncated_json", "wrong_type", "huge_prediction", "huge_label", "year_9999",
                 "future", "empty_feature_name", "tombstone")


def hostile(kind: str, pid: str, now: int, rng: random.Random) -> tuple[str, bytes | None]:
    """(topic, value) of one hostile record of ``kind``; every one of them must become a dead letter."""
    big = b"1" + b"0" * 400
    if kind == "random_bytes":
        return "predictions", b"\xff" + rng.randbytes(rng.randint(1, 200))
    if kind == "truncated_json":
        full = orjson.dumps({"prediction_id": pid, "model_id": "soak-a", "timestamp": now, "prediction": "yes"})
        return "predictions", full[: rng.randint(1, len(full) - 1)]
    if kind == "wrong_type":
        return "predictions", orjson.dumps({"prediction_id": pid, "model_id": "soak-a", "timestamp": now,
                                            "prediction": [1, 2]})
    if kind == "huge_prediction":
        return "predictions", b'{"prediction_id":"%s","model_id":"soak-b","timestamp":%d,"prediction":%s}' % (
            pid.encode(), now, big)
    if kind == "huge_label":
        return "ground_truth", b'{"prediction_id":"%s","timestamp":%d,"label":%s}' % (pid.encode(), now, big)
    if kind == "year_9999":
        return "predictions", orjson.dumps({"prediction_id": pid, "model_id": "soak-a", "prediction": "yes",
                                            "timestamp": "9999-12-31T23:59:59.999Z"})
    if kind == "future":
        return "predictions", orjson.dumps({"prediction_id": pid, "model_id": "soak-a", "prediction": "yes",
                                            "timestamp": now + 30 * 86_400_000})
    if kind == "empty_feature_name":
        return "predictions", orjson.dumps({"prediction_id": pid, "model_id": "soak-fresh", "prediction": "yes",
                                            "timestamp": now, "features": {"": 1.0}})
    if kind == "tombstone":
        return "ground_truth", None
    raise ValueError(kind)


def pair(pid: str, now: int, i: int) -> list[tuple[str, bytes]]:
    if i % 2:
        prediction: Any = "yes" if i % 3 else "no"
        event = {"prediction_id": pid, "model_id": "soak-a", "timestamp": now, "prediction": prediction,
                 "score": 0.3 + (i % 7) / 10, "features": {"x": float(i % 13), "c": "abc"[i % 3]},
                 "segment": {"region": "eu" if i % 5 else "us"}}
        label: Any = "yes" if i % 4 else "no"
    else:
        prediction = float(i % 17)
        event = {"prediction_id": pid, "model_id": "soak-b", "timestamp": now, "prediction": prediction,
                 "features": {"d": float(i % 29), "w": "wet" if i % 2 else "dry"}}
        label = prediction + (i % 5) - 2.0
    return [("predictions", orjson.dumps(event)),
            ("ground_truth", orjson.dumps({"prediction_id": pid, "label": label, "timestamp": now + 1}))]


class Traffic:
    """Produces valid pairs and hostile records at a steady rate in its own thread until stopped."""

    def __init__(self, bootstrap: str, rate: float, hostile_share: float, seed: int = 7) -> None:
        self.bootstrap, self.rate, self.hostile_share = bootstrap, rate, hostile_share
        self.rng = random.Random(seed)
        self.pairs = 0
        self.hostile: Counter[str] = Counter()
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="soak-producer", daemon=True)

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=20, acks="all")
        await producer.start()
        try:
            tick, started, owed = 0.1, time.monotonic(), 0.0
            while not self.stop.is_set():
                owed += self.rate * tick
                now = int(time.time() * 1000)
                sends = []
                while owed >= 1:
                    owed -= 1
                    if self.rng.random() < self.hostile_share:
                        kind = HOSTILE_KINDS[sum(self.hostile.values()) % len(HOSTILE_KINDS)]
                        pid = f"h{sum(self.hostile.values())}"
                        topic, value = hostile(kind, pid, now, self.rng)
                        sends.append((topic, pid, value))
                        self.hostile[kind] += 1
                    else:
                        pid = f"s{self.pairs}"
                        sends += [(topic, pid, value) for topic, value in pair(pid, now, self.pairs)]
                        self.pairs += 1
                futures = [await producer.send(topic, value, key=key.encode()) for topic, key, value in sends]
                for future in futures:  # acknowledged by the broker, or counted as an error (never as sent)
                    try:
                        await future
                    except Exception:  # counted and reported, never as sent
                        self.errors += 1
                started += tick
                await asyncio.sleep(max(0.0, started - time.monotonic()))
        finally:
            await producer.stop()


def sql(url: str, query: str) -> list[list[Any]]:
    with urllib.request.urlopen(urllib.request.Request(url + "/sql", data=query.encode(), method="POST"),
                                timeout=60) as response:
        return list(json.loads(response.read())["rows"])


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def memory_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def run(minutes: float, rate: float, hostile_share: float, kill_every: float, drain_timeout: float,
        work: Path) -> dict[str, Any]:
    with EmbeddedBroker(port=free_port()) as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWARDEN_")}
        port = free_port()
        env.update({"DRIFTWARDEN_DATA_DIR": str(work / "data"), "DRIFTWARDEN_WEB_PORT": str(port),
                    "DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                    "DRIFTWARDEN_KAFKA_FLAVOR": "tansu", "PYTHONUNBUFFERED": "1"})
        url = f"http://127.0.0.1:{port}"
        lives = 0

        def start() -> Child:
            nonlocal lives
            lives += 1
            child = start_child("worker", [sys.executable, "-m", "stream.cli", "up"], env,
                                work / f"worker-{lives}.log")
            wait_for(lambda: ready(url) or not child.alive(), 120, "the worker to be ready")
            if not child.alive():
                raise RuntimeError(f"the worker exited with {child.process.returncode}:\n{child.tail()}")
            return child

        worker = start()
        traffic = Traffic(broker.bootstrap_servers, rate, hostile_share)
        traffic.thread.start()
        samples: list[dict[str, Any]] = []
        kills: list[float] = []
        t0 = time.monotonic()
        next_kill = t0 + kill_every
        try:
            while time.monotonic() - t0 < minutes * 60:
                time.sleep(5)
                now = time.monotonic()
                samples.append({"t": round(now - t0, 1), "rss_mib": memory_mib(worker.pid), "life": lives,
                                "pairs_produced": traffic.pairs})
                print(f"{samples[-1]}", file=sys.stderr, flush=True)
                if now >= next_kill and now - t0 < minutes * 60 - 10:
                    worker.process.send_signal(signal.SIGKILL)
                    worker.process.wait()
                    kills.append(round(now - t0, 1))
                    worker = start()
                    next_kill = time.monotonic() + kill_every
            traffic.stop.set()
            traffic.thread.join(60)
            produced_hostile = sum(traffic.hostile.values())

            def processed() -> int:
                return int(sql(url, "SELECT uniqExact(prediction_id) FROM driftwarden.outcomes "
                                    "WHERE startsWith(prediction_id, 's')")[0][0])

            def dead() -> int:
                return int(sql(url, "SELECT count() FROM driftwarden.dead_letters FINAL "
                                    "WHERE startsWith(key, 'h')")[0][0])

            drained_at = time.monotonic()
            try:
                wait_for(lambda: processed() >= traffic.pairs and dead() >= produced_hostile, drain_timeout,
                         "every pair and every dead letter")
            except TimeoutError as exc:
                print(exc, file=sys.stderr)
            drain_seconds = round(time.monotonic() - drained_at, 1)
            reasons = {str(r): int(n) for r, n in sql(url, "SELECT reason, count() FROM driftwarden.dead_letters "
                                                           "FINAL GROUP BY reason ORDER BY reason")}
            unexpected = int(sql(url, "SELECT count() FROM driftwarden.dead_letters FINAL "
                                      "WHERE NOT startsWith(ifNull(key, ''), 'h')")[0][0])
            done = processed()
            dead_letters = dead()
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_mib": memory_mib(worker.pid), "life": lives,
                            "pairs_produced": traffic.pairs})
        finally:
            traffic.stop.set()
            worker.stop(60)
    rss = [s["rss_mib"] for s in samples if s["rss_mib"] is not None]
    return {
        "minutes": minutes, "rate_per_s": rate, "hostile_share": hostile_share, "kill_every_s": kill_every,
        "worker_kills": len(kills), "kill_times_s": kills,
        "produced": {"pairs": traffic.pairs, "events": 2 * traffic.pairs + produced_hostile,
                     "hostile": produced_hostile, "hostile_by_kind": dict(traffic.hostile),
                     "producer_errors": traffic.errors},
        "processed_pairs": done, "dead_lettered": dead_letters, "dead_letter_reasons": reasons,
        "lost_pairs": traffic.pairs - done, "hostile_not_dead_lettered": produced_hostile - dead_letters,
        "unexpected_dead_letters": unexpected, "drain_seconds": drain_seconds,
        "rss_mib": {"min": min(rss), "max": max(rss), "last": rss[-1]} if rss else {},
        "samples": samples,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to produce (default 30)")
    parser.add_argument("--rate", type=float, default=200.0, help="pairs or hostile records a second")
    parser.add_argument("--hostile", type=float, default=0.1, help="share of hostile records (default 0.1)")
    parser.add_argument("--kill-every", type=float, default=60.0, help="seconds between worker SIGKILLs")
    parser.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the backlog")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="driftwarden-soak-") as tmp:
        try:
            result = run(args.minutes, args.rate, args.hostile, args.kill_every, args.drain_timeout, Path(tmp))
        except Exception:
            logs = Path(tempfile.mkdtemp(prefix="driftwarden-soak-logs-"))
            for log in Path(tmp).glob("*.log"):
                log.rename(logs / log.name)
            print(f"the soak failed; worker logs in {logs}", file=sys.stderr)
            raise
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    if result["lost_pairs"] or result["hostile_not_dead_lettered"] or result["unexpected_dead_letters"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
