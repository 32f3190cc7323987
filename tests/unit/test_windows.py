"""Window eviction follows the slowest input partition, so a partition read late loses nothing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from stream.contracts.events import ModelSpec
from stream.pipeline import windows
from stream.pipeline.windows import WindowStore, segment_keys

SPEC = ModelSpec.model_validate({
    "model_id": "m", "task": "regression",
    "monitor": {"window_seconds": 60, "allowed_lateness_seconds": 0, "max_label_delay_seconds": 60}})


def _add(store: WindowStore, ts: list[int], source: int) -> None:
    n = len(ts)
    store.add_predictions("m", ["1"] * n, [{}] * n, np.asarray(ts, dtype=np.int64), np.ones(n), np.full(n, np.nan),
                          np.full(n, np.nan), source=source)


def test_a_partition_read_ahead_does_not_evict_windows_a_slower_one_still_fills() -> None:
    store = WindowStore(lambda _: SPEC)
    _add(store, [0, 1000], source=0)
    _add(store, [5_000], source=1)
    _add(store, [3_600_000], source=0)  # partition 0 jumps an hour ahead
    store.close_due()
    assert store.evict() == []  # partition 1 is still at 5 s: window 0 stays
    _add(store, [10_000, 20_000], source=1)  # the slower partition's predictions for window 0
    assert store.too_late == 0
    assert store.windows[("m", "1", "", 0)].metrics()["predictions"][0] == 5
    _add(store, [3_600_000], source=1)
    store.close_due()
    store.take_dirty()  # written to ClickHouse: only then may a window go
    assert ("m", "1", "", 0) in store.evict()  # both partitions past it: evicted now
    _add(store, [30_000], source=1)
    assert store.too_late == 1  # and a later item for it is counted, not re-created


def _add_of(store: WindowStore, ts: list[int], source: int, sources: int) -> None:
    n = len(ts)
    store.add_predictions("m", ["1"] * n, [{}] * n, np.asarray(ts, dtype=np.int64), np.ones(n), np.full(n, np.nan),
                          np.full(n, np.nan), source=source, sources=sources)


def test_a_partition_not_read_yet_holds_the_watermark_back() -> None:
    """A batch consumer can read one partition's whole backlog before another's first record arrives."""
    store = WindowStore(lambda _: SPEC)
    _add_of(store, [0], source=0, sources=2)
    _add_of(store, [3_600_000], source=0, sources=2)  # partition 1 has not been read at all yet
    assert store.clocks["m"].watermark_ms == 0
    store.close_due()
    store.take_dirty()
    assert store.evict() == []
    _add_of(store, [10_000], source=1, sources=2)
    assert store.too_late == 0
    assert store.windows[("m", "1", "", 0)].metrics()["predictions"][0] == 2
    assert store.clocks["m"].watermark_ms == 10_000  # now the slower of the two


def test_a_partition_silent_for_a_minute_stops_holding_the_watermark(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(windows.time, "time", lambda: now[0])
    store = WindowStore(lambda _: SPEC)
    _add_of(store, [0], source=0, sources=2)
    now[0] += windows.SOURCE_IDLE_MS / 1000 - 1
    _add_of(store, [600_000], source=0, sources=2)
    assert store.clocks["m"].watermark_ms == 0  # partition 1 never seen, but not silent for long yet
    now[0] += 2
    _add_of(store, [700_000], source=0, sources=2)
    assert store.clocks["m"].watermark_ms == 700_000  # silent too long: no traffic of this model there


def test_a_restored_clock_waits_again_for_partitions_it_has_not_seen() -> None:
    store = WindowStore(lambda _: SPEC)
    _add_of(store, [5_000], source=1, sources=2)
    clock = store.clocks["m"]
    clock.since -= 2 * windows.SOURCE_IDLE_MS  # as if restored long after it was checkpointed
    clock.refresh(time.time() * 1000)
    _add_of(store, [3_600_000], source=1, sources=2)
    assert clock.watermark_ms == 0


def test_grouping_matches_a_plain_loop_over_events() -> None:
    """Versions, segment fields some events lack, several windows and an evicted horizon, against the
    per-event definition: every event in (version, window) and in one row per declared field it carries."""
    spec = ModelSpec.model_validate({"model_id": "m", "task": "regression", "segment_fields": ["region", "tier"],
                                     "monitor": {"window_seconds": 60}})
    store = WindowStore(lambda _: spec)
    store.evicted_until["m"] = 60_000
    rng = np.random.default_rng(3)
    n = 500
    ts = rng.integers(0, 400_000, n)
    versions = [str(v) for v in rng.integers(1, 4, n)]
    segments = [{k: v for k, v in (("region", f"r{rng.integers(3)}"), ("tier", f"t{rng.integers(2)}"),
                                   ("other", "x")) if rng.random() < 0.7} for _ in range(n)]
    expected: dict[tuple[str, str, str, int], list[int]] = {}
    late = 0
    for i in range(n):
        start = int(ts[i] - ts[i] % 60_000)
        if start < 60_000:
            late += 1
            continue
        for seg in segment_keys(segments[i], ["region", "tier"]):
            expected.setdefault(("m", versions[i], seg, start), []).append(i)
    got = store._groups("m", versions, segments, ts)
    assert {k: [int(i) for i in v] for k, v in got.items()} == expected
    assert store.too_late == late > 0
    assert store._groups("m", [], [], np.zeros(0, np.int64)) == {}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_window_rows_of_a_batch_match_a_per_event_grouping(seed: int) -> None:
    """The vectorised grouping puts each event in the rows `segment_keys` names, positions ascending, and counts
    events of evicted windows as too late."""
    rng = np.random.default_rng(seed)
    spec = ModelSpec.model_validate({"model_id": "m", "task": "regression", "segment_fields": ["r", "t"],
                                     "monitor": {"window_seconds": 60}})
    n = 400
    versions = rng.choice(["1", "2", "10"], n).tolist()
    segments = [{k: str(v) for k, v in (("r", rng.integers(3)), ("t", rng.integers(2)), ("x", 1))
                 if rng.random() < 0.7} for _ in range(n)]
    ts = rng.integers(0, 600_000, n).astype(np.int64)
    store = WindowStore(lambda _: spec)
    store.evicted_until["m"] = 120_000
    got = {k: v.tolist() for k, v in store._groups("m", versions, segments, ts).items()}
    expected: dict[tuple[str, str, str, int], list[int]] = {}
    late = 0
    for i in range(n):
        start = int(ts[i]) - int(ts[i]) % 60_000
        if start < 120_000:
            late += 1
            continue
        for seg in segment_keys(segments[i], ["r", "t"]):
            expected.setdefault(("m", versions[i], seg, start), []).append(i)
    assert got == expected
    assert store.too_late == late == store.too_late_by_model["m"]


def test_labels_read_behind_the_predictions_hold_eviction_back() -> None:
    """The labels topic can be read far behind the predictions (seen: a batch consumer read every predictions
    partition to its end before the labels): windows stay until the join clock, which counts both inputs, passes."""
    store = WindowStore(lambda _: SPEC)
    store.note_joined("m", 0, 0)  # the ingest stage has read no label of partition 0 yet
    _add(store, [0, 1000], source=0)
    _add(store, [3_600_000], source=0)  # the predictions an hour ahead
    store.close_due()
    store.take_dirty()
    assert store.evict() == []
    store.add_outcomes("m", ["1"], [{}], np.asarray([500], np.int64), np.ones(1), np.ones(1), np.full(1, 0.5), {})
    assert store.too_late == 0
    assert store.windows[("m", "1", "", 0)].metrics()["labelled"][0] == 1
    store.note_joined("m", 0, 3_600_000)  # the labels caught up
    store.take_dirty()
    assert ("m", "1", "", 0) in store.evict()


def test_a_join_clock_not_heard_from_for_long_holds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    store = WindowStore(lambda _: SPEC)
    store.note_joined("m", 0, 0)
    _add(store, [0, 3_600_000], source=0)
    store.close_due()
    store.take_dirty()
    assert store.evict() == []
    later = time.time() + windows.SOURCE_IDLE_MS / 1000 + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert ("m", "1", "", 0) in store.evict()
