"""Hostile cardinality against a running worker (real broker and engine): 5,000 new model ids, then 5,000 values
of one segment field, keep the worker's memory under the bound the README states; beyond the limits records
are dead-lettered (models) or folded into `__other__` (segment values) and counted."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.helpers import wait_until
from tests.integration.conftest import Worker

pytestmark = pytest.mark.integration

N = 5000
MAX_MODELS = 200  # the default is 1,000: fewer keeps the test short; the bound scales with it
# The README's bound ("Cardinality is bounded"): under 5,000 new model ids the worker's peak RSS grows by at most
# 120 MiB + 150 KiB per model it admits (DRIFTWARDEN_MAX_MODELS); under 5,000 values of one segment field (folded
# beyond DRIFTWARDEN_MAX_SEGMENT_VALUES) by at most 120 MiB.
BASE_MIB = 120
PER_MODEL_KIB = 150


def _memory(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {name: int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM")}


def _events(kind: str, n: int, now: int) -> list[tuple[str, bytes, bytes]]:
    out = []
    for i in range(n):
        pid = f"{kind}-{i}"
        event = {"prediction_id": pid, "model_id": f"m{i}" if kind == "models" else "seg", "timestamp": now + i,
                 "prediction": "a" if i % 2 else "b", "score": 0.7, "features": {"x": float(i % 13), "c": "abc"[i % 3]},
                 "segment": {"region": f"r{i}" if kind == "segments" else "eu"}}
        out.append(("predictions", pid.encode(), orjson.dumps(event)))
        out.append(("ground_truth", pid.encode(), orjson.dumps({"prediction_id": pid, "label": "a",
                                                                "timestamp": now + i})))
    return out


async def _produce(bootstrap: str, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        for topic, key, value in messages:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _count(worker: Worker, query: str) -> int:
    return int(worker.sql(query)[0]["n"])


def _accounted(worker: Worker, kind: str) -> int:
    """Predictions of ``kind`` joined (outcomes) or dead-lettered."""
    return (_count(worker, f"SELECT uniqExact(prediction_id) AS n FROM driftwarden.outcomes "
                           f"WHERE prediction_id LIKE '{kind}-%'")
            + _count(worker, f"SELECT count() AS n FROM driftwarden.dead_letters WHERE key LIKE '{kind}-%' "
                             "AND topic = 'predictions'"))


def test_5000_model_ids_and_5000_segment_values_keep_the_worker_memory_bounded(make_worker: Any) -> None:
    worker = make_worker("cardinality", DRIFTWARDEN_MAX_MODELS=str(MAX_MODELS)).start()
    assert worker.process is not None
    pid = worker.process.pid
    bootstrap = worker.runtime()["bootstrap_servers"]
    now = int(time.time() * 1000)
    asyncio.run(_produce(bootstrap, _events("warm", 200, now)))  # the engine and every table touched once
    wait_until(lambda: _count(worker, "SELECT count() AS n FROM driftwarden.window_metrics") > 0, 60, 0.5,
               "the warm-up windows")
    growth: dict[str, float] = {}
    for kind, bound in (("models", BASE_MIB + MAX_MODELS * PER_MODEL_KIB / 1024), ("segments", BASE_MIB)):
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM (the peak) to the current RSS
        before = _memory(pid)["VmRSS"]
        asyncio.run(_produce(bootstrap, _events(kind, N, now)))
        wait_until(lambda kind=kind: _accounted(worker, kind) == N, 90, 0.5, f"the {N} {kind} events")  # type: ignore[misc]
        growth[kind] = _memory(pid)["VmHWM"] - before
        print(f"{kind}: RSS {before:.0f} MiB before, peak growth {growth[kind]:.0f} MiB (bound {bound:.0f} MiB)"
              f", RSS now {_memory(pid)['VmRSS']:.0f} MiB")
        assert growth[kind] < bound, (kind, growth[kind], bound)
    assert _count(worker, "SELECT count() AS n FROM driftwarden.dead_letters WHERE reason = 'too_many_models'") \
        == N - (MAX_MODELS - 1)  # model "warm" is one of them
    wait_until(lambda: _count(worker, "SELECT count() AS n FROM driftwarden.window_metrics FINAL WHERE model_id = "
                                      "'seg' AND segment = 'region=__other__' AND metric = 'predictions'") > 0,
               60, 0.5, "the folded segment values' windows")
    segments = _count(worker, "SELECT uniqExact(segment) AS n FROM driftwarden.window_metrics WHERE model_id = 'seg'")
    assert segments <= 102, segments  # "" + top 100 values + __other__
    assert worker.process.poll() is None
