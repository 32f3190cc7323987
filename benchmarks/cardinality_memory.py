"""Memory of the pure stages (ingest + aggregate) under hostile cardinality: 5,000 new model ids, 5,000 segment
values, 5,000 versions, with the default limits (and, for comparison, with the limits raised out of the way).

Run: ``.venv/bin/python benchmarks/cardinality_memory.py [--n 5000]`` (writes
benchmarks/results/cardinality_memory.json).

Each scenario starts a fresh `Ingest` and `Aggregator` (the worker's stages without Kafka and ClickHouse), sends
``n`` predictions with their labels, each with a new model id (or segment value, or version), closes the
windows, and reports how much the process RSS grew (each scenario in a fresh subprocess), windows and
monitors kept, dead letters and folded items.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from stream.contracts.events import Limits
from stream.contracts.registry import Registry
from stream.pipeline.aggregate import Aggregator
from stream.pipeline.ingest import Ingest, IngestBounds, RawRecord, split_batch

TOPICS = ("predictions", "ground_truth")


def scenario(kind: str, n: int, limited: bool) -> dict[str, Any]:
    now = int(time.time() * 1000)
    bounds = IngestBounds() if limited else IngestBounds(max_models=10**9)
    limits = {} if limited else {"max_versions": 10**9, "max_segment_values": 10**9}
    gc.collect()
    base = _rss()
    registry = Registry()
    ingest = Ingest(registry, Limits(), *TOPICS, max_delay_ms=3_600_000, bounds=bounds)
    aggregator = Aggregator(lambda m: registry.get(m).spec, **limits)  # type: ignore[union-attr, arg-type]
    dead = 0
    for lo in range(0, n, 500):
        records = []
        for i in range(lo, min(n, lo + 500)):
            pid = f"p{i}"
            event: dict[str, Any] = {"prediction_id": pid, "model_id": "m", "timestamp": now, "prediction": "a",
                                     "score": 0.7, "features": {"x": float(i % 13), "c": "abc"[i % 3]},
                                     "segment": {"region": "eu"}}
            if kind == "models":
                event["model_id"] = f"m{i}"
            elif kind == "segments":
                event["segment"] = {"region": f"r{i}"}
            else:
                event["model_version"] = f"v{i}"
            records.append(RawRecord("predictions", 0, i, pid.encode(), orjson.dumps(event), timestamp_ms=now))
            records.append(RawRecord("ground_truth", 0, i, pid.encode(),
                                     orjson.dumps({"prediction_id": pid, "label": "a", "timestamp": now}),
                                     timestamp_ms=now))
        result = ingest.process(records)
        dead += len(result.dead_letters)
        for batch in result.batches.values():
            for chunk in split_batch(batch):
                aggregator.apply(orjson.loads(orjson.dumps(chunk)))
    aggregator.tick(now + 600_000, idle=True)
    aggregator.window_rows()
    gc.collect()
    held = _rss() - base
    return {"kind": kind, "n": n, "limits": "default" if limited else "off", "rss_growth_mib": round(held / 2**20, 1),
            "models": len(registry), "monitors": len(aggregator.monitors), "windows": len(aggregator.store.windows),
            "dead_letters": dead, "folded": aggregator.versions.folded + aggregator.segment_values.folded}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cardinality_memory.json"))
    parser.add_argument("--only", nargs=2, metavar=("KIND", "LIMITS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(scenario(args.only[0], args.n, args.only[1] == "default")))
        return
    rows = []
    for kind in ("models", "segments", "versions"):
        for limits in ("default", "off"):
            out = subprocess.run([sys.executable, __file__, "--n", str(args.n), "--only", kind, limits],
                                 capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.splitlines()[-1]))
    for row in rows:
        print(json.dumps(row))
    args.out.write_text(json.dumps({"n": args.n, "scenarios": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
