"""The aggregator's replay filter: recently applied ids are recognised, older ones forgotten by item count."""

from __future__ import annotations

import numpy as np

from stream.pipeline.replay import RecentIds


def test_matches_a_plain_set_within_the_horizon_across_compactions() -> None:
    rng = np.random.default_rng(3)
    recent = RecentIds(horizon=10**9)
    recent.flush_size = 500  # several compactions in this test
    seen: set[str] = set()
    for _ in range(40):
        ids = [f"id{v}" for v in rng.integers(0, 5000, 300)]
        expected = []
        for i in ids:
            expected.append(i not in seen)
            seen.add(i)
        assert recent.fresh(ids).tolist() == expected


def test_ids_older_than_the_horizon_are_fresh_again() -> None:
    recent = RecentIds(horizon=5)
    recent.flush_size = 2
    assert recent.fresh(["a"]).tolist() == [True]
    assert recent.fresh(["b", "c", "d"]).tolist() == [True, True, True]
    assert recent.fresh(["a"]).tolist() == [False]  # 4 items ago: inside the horizon
    recent.fresh(["e", "f", "g", "h", "i", "j"])
    assert recent.fresh(["a"]).tolist() == [True]  # forgotten


def test_round_trip_through_arrays_keeps_what_it_knows() -> None:
    recent = RecentIds()
    recent.fresh(["x", "y"])
    restored = RecentIds.from_arrays(*recent.to_arrays())
    assert restored.fresh(["x", "z"]).tolist() == [False, True]
