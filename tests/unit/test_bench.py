"""The bench's pure parts: options, result files, partitioning, stage arithmetic, /proc readers, rendering."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from rich.console import Console

from stream.bench.kafka import murmur2_partitions, prediction_id_of
from stream.bench.procs import cpu_seconds, peak_rss_bytes, start_child
from stream.bench.run import MAX_EVENTS, MIN_EVENTS, ratio, records_consumed, resolve_options, write_results
from stream.bench.stages import StageProfile, arrange_batches, split_stages
from stream.cli.bench import render
from stream.errors import UserError


def test_options_defaults_quick_and_explicit() -> None:
    assert (resolve_options().events, resolve_options().naive_time_limit) == (200_000, 120.0)
    assert (resolve_options(quick=True).events, resolve_options(quick=True).naive_time_limit) == (20_000, 30.0)
    assert resolve_options(events=MIN_EVENTS, quick=True, naive_time_limit=5).events == MIN_EVENTS
    assert resolve_options(events=MAX_EVENTS).events == MAX_EVENTS


@pytest.mark.parametrize("kwargs", [{"events": MIN_EVENTS - 1}, {"events": MAX_EVENTS + 1}, {"events": -5},
                                    {"naive_time_limit": 0}, {"worker_time_limit": -1.0}])
def test_options_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UserError):
        resolve_options(**kwargs)


def test_write_results_full_and_quick(tmp_path: Path) -> None:
    result = {"ceiling": {"events_per_s": 1.5}, "naive": None, "stages": {"share": {"join": 0.25}}}
    when = dt.datetime(2026, 3, 4, 5, 6)
    (tmp_path / "latest.json").write_text("{}")
    paths = write_results(result, tmp_path, now=when)
    assert [p.name for p in paths] == ["bench-2026-03-04.json", "latest.json"]
    assert all(json.loads(p.read_text()) == result for p in paths)
    quick = write_results({"x": 1}, tmp_path / "new", suffix="-quick", latest=False, now=when)
    assert [p.name for p in quick] == ["bench-2026-03-04-quick.json"]
    assert not (tmp_path / "new" / "latest.json").exists()
    assert json.loads((tmp_path / "latest.json").read_text()) == result
    assert not list(tmp_path.rglob("*.tmp"))


def test_murmur2_partitions_match_aiokafka() -> None:
    rng = random.Random(3)
    keys = [b""] + [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 41))) for _ in range(500)]
    keys += [str(rng.random()).encode() for _ in range(200)]
    for n in (1, 4, 7):
        expected = [DefaultPartitioner()(k, list(range(n)), None) for k in keys]
        assert murmur2_partitions(keys, n).tolist() == expected


def test_prediction_id_of() -> None:
    assert prediction_id_of(b'{"prediction_id":"abc-1","x":1}') == b"abc-1"
    assert prediction_id_of(orjson.dumps({"label": 1, "prediction_id": "z"})) == b"z"
    tricky = orjson.dumps({"prediction_id": 'a"b', "label": 1})
    assert prediction_id_of(tricky) == b'a"b'


def test_split_stages_subtracts_nested_timers() -> None:
    raw = {"process": 10.0, "decode": 4.0, "expire": 1.0, "encode": 0.5, "apply": 6.0, "store": 2.0,
           "monitor": 3.0, "tick": 2.0, "close": 1.5, "rows": 0.25, "sink": 0.75, "checkpoint": 0.5}
    stages = split_stages(raw)
    assert stages == {"decode/validate": 4.0, "join": 7.0, "internal topic": 0.5, "metrics/windows": 2.75,
                      "detectors/monitoring": 4.5, "aggregate other": 1.0, "sink": 0.75, "checkpoint": 0.5}
    top_level = sum(raw[k] for k in ("process", "expire", "encode", "apply", "tick", "rows", "sink", "checkpoint"))
    assert sum(stages.values()) == pytest.approx(top_level)
    assert split_stages({}) == dict.fromkeys(stages, 0.0)


def test_stage_profile_shares() -> None:
    profile = StageProfile(400, {"a": 1.0, "b": 3.0}, cpu_seconds=4.0)
    assert profile.shares() == {"a": 0.25, "b": 0.75}
    assert (profile.total, profile.events_per_s, profile.dominant()) == (4.0, 100.0, "b")
    assert StageProfile(0, {"a": 0.0}, 0.0).shares() == {"a": 0.0}


def test_arrange_batches_keeps_every_record_once_in_partition_order() -> None:
    predictions = [orjson.dumps({"prediction_id": f"p{i}", "v": i}) for i in range(1000)]
    labels = [orjson.dumps({"prediction_id": f"p{i}", "label": 1}) for i in range(0, 1000, 3)]
    batches = arrange_batches(predictions, labels, ("P", "G"), n_partitions=3, batch=100)
    assert all(0 < len(b) <= 100 for b in batches)
    records = [r for b in batches for r in b]
    assert sorted(r.value or b"" for r in records) == sorted(predictions + labels)
    for r in records:
        assert r.partition == DefaultPartitioner()(r.key, [0, 1, 2], None)
    for topic in ("P", "G"):
        for partition in range(3):
            offsets = [r.offset for r in records if r.topic == topic and r.partition == partition]
            assert offsets == list(range(len(offsets)))
    assert arrange_batches([], [], ("P", "G"), 2) == []


def test_proc_readers_agree_with_the_os() -> None:
    sum(i * i for i in range(300_000))  # burn a little CPU
    times = os.times()
    assert cpu_seconds(os.getpid()) == pytest.approx(times.user + times.system, abs=0.05)
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    assert peak_rss_bytes(os.getpid()) >= rss > 0


def test_child_is_stopped_by_pid(tmp_path: Path) -> None:
    child = start_child("sleeper", [sys.executable, "-c", "import time, json; print(json.dumps({'n': 1}), "
                                    "flush=True); time.sleep(60)"], dict(os.environ), tmp_path / "c.log",
                        json_stdout=True)
    assert child.alive()
    assert child.stop(timeout=10) == -15
    assert not child.alive()


def test_records_consumed_and_ratio() -> None:
    text = ("# HELP driftwarden_records_total x\ndriftwarden_records_total{topic=\"predictions\"} 120.0\n"
            "driftwarden_records_total{topic=\"ground_truth\"} 80.0\ndriftwarden_outcomes_total 70.0\n")
    assert records_consumed(text) == 200
    assert records_consumed("") == 0
    assert (ratio(3.0, 12.0), ratio(1.0, 0.0), ratio(1.0, None)) == (0.25, None, None)


def _result(naive: dict[str, Any] | None) -> dict[str, Any]:
    stages = {"a": 1.0, "b": 3.0}
    return {
        "events": {"predictions": 10, "labels": 9}, "machine": {"cpus": 2}, "ceiling": {"events_per_s": 1000.0},
        "naive": naive,
        "driftwarden": {"finished": True, "events_per_s": 300.0, "events_per_s_with_startup": 200.0,
                        "startup_seconds": 2.0, "cpu_seconds_per_1k_events": 0.5, "peak_rss_bytes": 2**20,
                        "join_bytes_per_waiting_prediction": 140.0},
        "stages": {"events_per_s": 500.0, "cpu_seconds_per_1k_events": 0.2, "seconds": stages,
                   "share": {"a": 0.25, "b": 0.75}, "us_per_event": {"a": 1.0, "b": 3.0}, "dominant": "b"},
        "ratios": {"driftwarden_over_ceiling": 0.3, "driftwarden_over_ceiling_target": 0.25,
                   "driftwarden_over_naive": None if naive is None else 3.0, "driftwarden_over_naive_target": 5.0},
    }


def test_render_marks_targets_and_skipped_naive() -> None:
    console = Console(record=True, width=200)
    for table in render(_result(None)):
        console.print(table)
    text = console.export_text()
    assert "skipped" in text and "0.300  (meets target >= 0.25)" in text and "dominant: b" in text
    naive = {"finished": False, "events": 50, "time_limit_s": 30.0, "events_per_s": 100.0,
             "cpu_seconds_per_1k_events": 2.0}
    console = Console(record=True, width=200)
    for table in render(_result(naive)):
        console.print(table)
    text = console.export_text()
    assert "3.000  (below target >= 5)" in text and "partial: 50 in 30 s" in text
