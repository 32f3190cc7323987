"""Tests of stream.pipeline.join keyed by (prediction_id, model_id): shadow models, labels naming their
model, and the migration of version 1 snapshots (keyed by prediction_id alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.pipeline.join import JoinResult, JoinState, _JoinedIds

DELAY = 1000
DATA = Path(__file__).parent / "data"


def pairs(s: JoinState, r: JoinResult) -> list[tuple[str, str, object, object, int]]:
    return [(r.ids[k], s.lookup(int(r.model_key[k]))[0], r.prediction[k], r.label[k], int(r.sign[k]))
            for k in range(len(r))]


def two_models(policy: str = "first", shared: bool = True) -> tuple[JoinState, int, int]:
    s = JoinState(DELAY, policy)  # type: ignore[arg-type]
    if shared:
        s.set_shared(["champ", "chall"])
    return s, s.intern("champ", "1", ""), s.intern("chall", "1", "")


def test_same_request_two_models_one_label_reaches_both() -> None:
    s, a, b = two_models(shared=False)
    r = s.add_predictions(["p1", "p2", "p1"], [a, a, b], [10, 20, 11], ["y", "n", "n"], [0.9, 0.1, 0.4])
    assert len(r) == 0 and r.rejected.tolist() == [] and s.n_waiting_predictions == 3 and len(s) == 3
    assert s.pending("p1", "chall") is not None and s.pending("p1", "chall").prediction == "n"  # type: ignore[union-attr]
    r = s.add_labels(["p1"], ["y"], [50], [{}])
    assert pairs(s, r) == [("p1", "champ", "y", "y", 1), ("p1", "chall", "n", "y", 1)]
    assert r.index.tolist() == [0, 0] and len(s) == 1 and s.stats.joined == 2


def test_same_model_same_id_is_still_a_duplicate() -> None:
    s, a, b = two_models()
    r = s.add_predictions(["p1", "p1", "p1", "p1"], [a, b, a, b], [1, 1, 1, 1], [1, 1, 1, 1], [0.5] * 4)
    assert r.rejected.tolist() == [2, 3] and s.n_waiting_predictions == 2
    s.add_labels(["p1"], [1], [5], [{}])
    r = s.add_predictions(["p1", "p1"], [a, b], [1, 1], [1, 1], [0.5, 0.5])
    assert r.rejected.tolist() == [0, 1] and s.stats.duplicate_predictions == 4
    r = s.add_labels(["p1"], [0], [6], [{}])
    assert r.rejected.tolist() == [0] and s.stats.duplicate_labels == 1


def test_label_first_is_kept_for_shared_models_only() -> None:
    s, a, b = two_models(shared=True)
    s.add_labels(["p1"], ["y"], [5], [{}])
    r1 = s.add_predictions(["p1"], [a], [1], ["y"], [0.5])
    r2 = s.add_predictions(["p1"], [b], [2], ["n"], [0.5])
    assert pairs(s, r1) + pairs(s, r2) == [("p1", "champ", "y", "y", 1), ("p1", "chall", "n", "y", 1)]
    assert len(s) == 0 and s.n_waiting_labels == 0
    e = s.expire(5 + DELAY + 1)
    assert e.orphan_ids == [] and s.stats.orphans == 0 and len(s._waiting) == 0

    t, a, b = two_models(shared=False)  # not declared: the label is used up by the first model
    t.add_labels(["p1"], ["y"], [5], [{}])
    assert len(t.add_predictions(["p1", "p1"], [a, b], [1, 2], ["y", "n"], [0.5, 0.5])) == 1
    e = t.expire(5 + DELAY + 1)
    assert e.ts_ms.tolist() == [2] and e.orphan_ids == [] and t.stats.expired_predictions == 1


def test_kept_label_and_a_second_label() -> None:
    s, a, b = two_models()
    s.add_predictions(["p1"], [a], [1], ["y"], [0.5])
    assert len(s.add_labels(["p1"], ["y"], [5], [{}])) == 1
    r = s.add_labels(["p1"], ["n"], [6], [{}])
    assert r.rejected.tolist() == [0] and len(r) == 0
    r = s.add_predictions(["p1"], [b], [2], ["n"], [0.5])
    assert pairs(s, r) == [("p1", "chall", "n", "y", 1)]


def test_label_naming_its_model() -> None:
    s, a, b = two_models()
    s.add_predictions(["p1", "p1"], [a, b], [1, 1], ["y", "n"], [0.5, 0.5])
    r = s.add_labels(["p1", "p1"], ["y", "n"], [5, 6], [{}, {}], targets=["chall", "chall"])
    assert pairs(s, r) == [("p1", "chall", "n", "y", 1)] and r.rejected.tolist() == [1]
    assert s.pending("p1", "champ") is not None and s.pending("p1", "chall") is None
    r = s.add_labels(["p1"], ["n"], [7], [{}], targets=["chall"])
    assert r.rejected.tolist() == [0]
    r = s.add_labels(["p1"], ["n"], [8], [{}], targets=["champ"])
    assert pairs(s, r) == [("p1", "champ", "y", "n", 1)] and len(s) == 0


def test_label_naming_its_model_waits_for_that_model() -> None:
    s, a, b = two_models(shared=False)
    s.add_labels(["p1", "p2"], ["y", "y"], [5, 5], [{}, {}], targets=["chall", None])
    r = s.add_predictions(["p1", "p2", "p1"], [a, a, b], [1, 1, 1], ["y", "y", "n"], [0.5] * 3)
    assert pairs(s, r) == [("p2", "champ", "y", "y", 1), ("p1", "chall", "n", "y", 1)]
    assert s.pending("p1", "champ") is not None and s.n_waiting_labels == 0
    e = s.expire(10**6)
    assert e.orphan_ids == [] and e.ts_ms.tolist() == [1]


def test_label_for_another_model_is_an_orphan() -> None:
    s, a, _ = two_models(shared=False)
    s.add_predictions(["p1"], [a], [1], ["y"], [0.5])
    assert len(s.add_labels(["p1"], ["y"], [5], [{}], targets=["other"])) == 0
    e = s.expire(10**6)
    assert e.orphan_ids == ["p1"] and e.ts_ms.tolist() == [1]


def test_latest_policy_replaces_the_label_of_every_model() -> None:
    s, a, b = two_models("latest", shared=False)
    s.add_predictions(["p1", "p1"], [a, b], [1, 1], ["y", "n"], [0.5, 0.5])
    s.add_labels(["p1"], ["y"], [5], [{}])
    r = s.add_labels(["p1"], ["n"], [6], [{}])
    assert pairs(s, r) == [("p1", "champ", "y", "y", -1), ("p1", "chall", "n", "y", -1),
                           ("p1", "champ", "y", "n", 1), ("p1", "chall", "n", "n", 1)]
    r = s.add_labels(["p1"], ["y"], [7], [{}], targets=["chall"])
    assert pairs(s, r) == [("p1", "chall", "n", "n", -1), ("p1", "chall", "n", "y", 1)]
    assert s.stats.duplicate_labels == 2
    s.expire(10**6)
    assert s._records == {} and s._record_keys == {} and s.n_remembered == 0


def test_snapshot_round_trip_with_shadow_state() -> None:
    s, a, b = two_models("latest")
    s.add_predictions(["p1", "p1", "p2"], [a, b, b], [1, 1, 2], ["y", "n", "y"], [0.5] * 3)
    s.add_labels(["p3", "p4"], ["y", "n"], [5, 5], [{}, {}], targets=[None, "chall"])
    s.add_predictions(["p3"], [a], [3], ["y"], [0.5])  # p3's label is kept for chall
    data = s.snapshot()
    u = JoinState.restore(data)
    assert u.snapshot() == data and len(u) == len(s) and u._kept == s._kept and u._n_targeted == 1
    for t in (s, u):
        r1 = t.add_predictions(["p3", "p4"], [b, b], [4, 4], ["n", "n"], [0.5, 0.5])
        r2 = t.add_labels(["p1"], ["y"], [9], [{}])
        assert pairs(t, r1) == [("p3", "chall", "n", "y", 1), ("p4", "chall", "n", "n", 1)]
        assert pairs(t, r2) == [("p1", "champ", "y", "y", 1), ("p1", "chall", "n", "y", 1)]
    assert u.snapshot() == s.snapshot()


@pytest.mark.parametrize("policy", ["first", "latest"])
def test_version_1_snapshot_is_migrated(policy: str) -> None:
    # Written by the join of the previous release (keyed by prediction_id alone): p5 and w1 wait, l1 waits,
    # p1..p4 are joined.
    data = (DATA / f"join_v1_{policy}.bin").read_bytes()
    s = JoinState.restore(data)
    assert (s.n_waiting_predictions, s.n_waiting_labels, s.stats.joined) == (2, 1, 4)
    assert s._legacy is not None
    a = s.intern("churn", "1", "")
    r = s.add_predictions(["p1", "p4", "l1"], [a, a, a], [200, 200, 200], ["yes", 1.0, "no"], [0.5] * 3)
    assert r.rejected.tolist() == [0, 1] and r.ids == ["l1"]  # joined before the upgrade: duplicates
    r = s.add_labels(["p5", "p2", "w1"], ["no", "no", "yes"], [300, 300, 300], [{}, {}, {}])
    if policy == "first":
        assert (r.ids, r.label, r.rejected.tolist()) == (["p5", "w1"], ["no", "yes"], [1])
    else:  # the latest label of p2 replaces the one joined before the upgrade
        assert (r.ids, r.sign.tolist(), r.label) == (["p5", "p2", "p2", "w1"], [1, -1, 1, 1],
                                                     ["no", "yes", "no", "yes"])
    again = JoinState.restore(s.snapshot())
    assert again.snapshot() == s.snapshot() and again._legacy is not None
    s.expire(10**6)
    assert s._legacy is None and s.n_remembered == 0 and len(s) == 0
    assert JoinState.restore(s.snapshot())._legacy is None


@settings(max_examples=80, deadline=None)
@given(n_ids=st.integers(0, 12), data=st.data())
def test_any_interleaving_of_two_models_equals_offline_join(n_ids: int, data: st.DataObject) -> None:
    """Each request is scored by some of two shared models and labelled (for every model, or for one) or
    not: every (request, model) with a prediction and a label reaching it joins exactly once."""
    scored = data.draw(st.lists(st.sampled_from([(), (0,), (1,), (0, 1)]), min_size=n_ids, max_size=n_ids))
    label_for = data.draw(st.lists(st.sampled_from([None, "all", 0, 1]), min_size=n_ids, max_size=n_ids))
    events: list[tuple[str, int, int]] = [("p", i, m) for i in range(n_ids) for m in scored[i]]
    events += [("l", i, -1) for i in range(n_ids) if label_for[i] is not None]
    events = data.draw(st.permutations(events))
    restore_at = data.draw(st.integers(0, len(events)))
    policy = data.draw(st.sampled_from(["first", "latest"]))
    s, a, b = two_models(policy)
    keys = (a, b)
    names = ("champ", "chall")
    got: list[tuple[str, str, object, object, int]] = []
    _JoinedIds.flush_size, saved = 2, _JoinedIds.flush_size
    try:
        for k, (kind, i, m) in enumerate(events):
            if k == restore_at:
                s = JoinState.restore(s.snapshot())
            if kind == "p":
                r = s.add_predictions([f"id-{i}"], [keys[m]], [i], [f"P{i}{m}"], [0.5])
            else:
                target = label_for[i]
                r = s.add_labels([f"id-{i}"], [f"L{i}"], [100 + i], [{}],
                                 targets=[None if target == "all" else names[int(target)]])  # type: ignore[arg-type]
            assert r.rejected.tolist() == []
            got.extend(pairs(s, r))
    finally:
        _JoinedIds.flush_size = saved
    expected = {(f"id-{i}", names[m], f"P{i}{m}", f"L{i}", 1) for i in range(n_ids) for m in scored[i]
                if label_for[i] == "all" or label_for[i] == m}
    assert sorted(got) == sorted(expected)
    assert s.stats.joined == len(expected)
    s.expire(10**6)
    waiting_labels = sum(1 for i in range(n_ids) if label_for[i] is not None and not any(
        label_for[i] == "all" or label_for[i] == m for m in scored[i]))
    assert s.stats.orphans == waiting_labels
    assert s.stats.expired_predictions == sum(len(scored[i]) for i in range(n_ids)) - len(expected)
    assert len(s) == 0 and len(s._kept) == 0 and s._n_targeted == 0


def test_memory_and_cost_of_one_model_unchanged_by_the_model_key() -> None:
    s, a, _ = two_models(shared=False)
    ids = [f"p{i}" for i in range(3000)]
    s.add_predictions(ids, [a] * 3000, np.arange(3000), [1] * 3000, [0.5] * 3000)
    assert s._extra == {} and s.n_waiting_predictions == 3000
    r = s.add_labels(ids, [1] * 3000, [5000] * 3000, [{}] * 3000)
    assert len(r) == 3000 and s._kept == set() and len(s) == 0
