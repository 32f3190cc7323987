"""Tests of stream.pipeline.join: pairing, duplicates, expiry, snapshots, memory per waiting prediction."""

from __future__ import annotations

import gc
import math
import tracemalloc
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.pipeline.join import JoinResult, JoinState, PendingPrediction, _JoinedIds, hash_ids

DELAY = 1000


def rows(r: JoinResult) -> list[tuple[object, ...]]:
    return [(r.ids[k], int(r.sign[k]), int(r.index[k]), int(r.model_key[k]), int(r.ts_ms[k]),
             r.prediction[k], float(r.score[k]), r.label[k], int(r.label_ts_ms[k]), dict(r.business[k]))
            for k in range(len(r))]


def new_state(policy: str = "first") -> tuple[JoinState, int, int]:
    s = JoinState(DELAY, policy)  # type: ignore[arg-type]
    return s, s.intern("m", "1", "{}"), s.intern("m", "2", '{"region":"eu"}')


@pytest.fixture
def small_flush(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_JoinedIds, "flush_size", 3)
    yield


def test_intern_and_lookup() -> None:
    s, a, b = new_state()
    assert (a, b) == (0, 1)
    assert s.intern("m", "1", "{}") == 0
    assert s.lookup(1) == ("m", "2", '{"region":"eu"}')


def test_prediction_first_then_label() -> None:
    s, a, b = new_state()
    r = s.add_predictions(["p1", "p2"], [a, b], [10, 20], ["spam", 2.5], [0.9, math.nan])
    assert len(r) == 0 and r.rejected.tolist() == [] and len(s) == 2
    p2 = s.pending("p2")
    assert p2 is not None and (p2.model_key, p2.ts_ms, p2.prediction) == (b, 20, 2.5)
    assert math.isnan(p2.score)
    assert s.pending("p1") == PendingPrediction(a, 10, "spam", 0.9)
    r = s.add_labels(["x", "p2", "p1"], ["ham", 3.0, "ham"], [30, 31, 32], [{}, {"rev": 1.5}, {"rev": 2.0}])
    out = rows(r)
    assert [o[:5] for o in out] == [("p2", 1, 1, b, 20), ("p1", 1, 2, a, 10)]
    assert out[0][5] == 2.5 and math.isnan(r.score[0]) and out[0][7:] == (3.0, 31, {"rev": 1.5})
    assert out[1][5:] == ("spam", 0.9, "ham", 32, {"rev": 2.0})
    assert r.model_key.dtype == np.int32 and r.ts_ms.dtype == np.int64 and r.sign.dtype == np.int8
    assert len(s) == 1 and s.n_waiting_labels == 1 and s.stats.joined == 2
    assert s.pending("p1") is None


def test_label_first_waits_then_joins() -> None:
    s, a, _ = new_state()
    assert len(s.add_labels(["p1"], [True], [500], [{"cost": 3.0}])) == 0
    assert s.n_waiting_labels == 1 and s.n_waiting_predictions == 0
    r = s.add_predictions(["p0", "p1"], [a, a], [100, 200], [False, True], [0.1, 0.8])
    assert rows(r) == [("p1", 1, 1, a, 200, True, 0.8, True, 500, {"cost": 3.0})]
    assert len(s) == 1 and s.stats.joined == 1


def test_prediction_types_are_preserved() -> None:
    s, a, _ = new_state()
    preds: list[str | float | int | bool] = ["a", True, False, 3, -(2**53), 2.0, math.inf]
    ids = [f"id{i}" for i in range(len(preds))]
    s.add_predictions(ids, [a] * len(ids), list(range(len(ids))), preds, [0.5] * len(ids))
    r = s.add_labels(ids, [0] * len(ids), [9] * len(ids), [{}] * len(ids))
    assert r.prediction == preds
    assert [type(p) for p in r.prediction] == [str, bool, bool, int, int, float, float]
    with pytest.raises(TypeError, match="prediction must be"):
        s.add_predictions(["big"], [a], [0], [2**60], [0.5])
    with pytest.raises(TypeError, match="prediction must be"):
        s.add_predictions(["none"], [a], [0], [None], [0.5])  # type: ignore[list-item]
    f = s.add_predictions(["f1", "f2"], [a, a], [0, 0], np.array([0.25, 1.0]), [0.5, 0.5])
    assert len(f) == 0 and s.pending("f1") == PendingPrediction(a, 0, 0.25, 0.5)


def test_duplicate_predictions_pending_joined_and_in_batch() -> None:
    s, a, _ = new_state()
    r = s.add_predictions(["p1", "p2", "p1"], [a] * 3, [1, 2, 3], [1, 0, 1], [0.5] * 3)
    assert r.rejected.tolist() == [2] and s.n_waiting_predictions == 2
    s.add_labels(["p1"], [1], [5], [{}])
    r = s.add_predictions(["p3", "p1", "p2"], [a] * 3, [4, 5, 6], [1, 1, 1], [0.5] * 3)
    assert r.rejected.tolist() == [1, 2] and len(r) == 0
    assert s.stats.duplicate_predictions == 3 and s.n_waiting_predictions == 2
    assert s.pending("p2") == PendingPrediction(a, 2, 0, 0.5)


def test_duplicate_prediction_in_batch_that_joins_a_waiting_label() -> None:
    s, a, _ = new_state()
    s.add_labels(["p1"], [1], [5], [{}])
    r = s.add_predictions(["p1", "p1"], [a, a], [1, 1], [1, 1], [0.5, 0.5])
    assert len(r) == 1 and r.rejected.tolist() == [1] and len(s) == 0


def test_duplicate_labels_first_policy() -> None:
    s, a, _ = new_state()
    s.add_labels(["w", "w"], ["x", "y"], [1, 2], [{}, {}])
    assert s.stats.duplicate_labels == 1
    s.add_predictions(["w", "j"], [a, a], [0, 0], ["x", "x"], [0.5, 0.5])
    r = s.add_labels(["j", "w", "j"], ["a", "b", "c"], [3, 4, 5], [{}, {}, {}])
    assert [(o[0], o[7]) for o in rows(r)] == [("j", "a")]
    assert r.rejected.tolist() == [1, 2]
    assert s.stats.duplicate_labels == 3 and s.stats.joined == 2 and len(s) == 0


def test_first_policy_keeps_first_waiting_label() -> None:
    s, a, _ = new_state()
    s.add_labels(["w"], ["x"], [1], [{}])
    r = s.add_labels(["w"], ["y"], [2], [{}])
    assert r.rejected.tolist() == [0]
    r = s.add_predictions(["w"], [a], [0], ["x"], [0.5])
    assert (r.label, r.label_ts_ms.tolist()) == (["x"], [1])


def test_duplicate_labels_latest_policy_retracts() -> None:
    s, a, b = new_state("latest")
    s.add_predictions(["p1", "p2"], [a, b], [10, 20], ["cat", "dog"], [0.7, 0.6])
    s.add_labels(["p1", "p2"], ["cat", "cat"], [30, 40], [{"v": 1.0}, {"v": 2.0}])
    r = s.add_labels(["p2", "p1", "p1"], ["dog", "cat", "dog"], [50, 30, 60], [{"v": 3.0}, {"v": 1.0},
                                                                               {"v": 4.0}])
    assert rows(r) == [
        ("p2", -1, 0, b, 20, "dog", 0.6, "cat", 40, {"v": 2.0}),
        ("p2", 1, 0, b, 20, "dog", 0.6, "dog", 50, {"v": 3.0}),
        ("p1", -1, 2, a, 10, "cat", 0.7, "cat", 30, {"v": 1.0}),
        ("p1", 1, 2, a, 10, "cat", 0.7, "dog", 60, {"v": 4.0}),
    ]
    assert r.rejected.tolist() == [1]
    assert s.stats.duplicate_labels == 3 and s.stats.joined == 2
    again = s.add_labels(["p1"], ["dog"], [60], [{"v": 4.0}])
    assert len(again) == 0 and again.rejected.tolist() == [0] and s.stats.duplicate_labels == 4


def test_latest_policy_signed_rows_give_metrics_of_final_labels() -> None:
    s, a, _ = new_state("latest")
    rng = np.random.default_rng(3)
    ids = [f"p{i}" for i in range(50)]
    preds = rng.integers(0, 2, 50).tolist()
    s.add_predictions(ids, [a] * 50, list(range(50)), preds, [0.5] * 50)
    final: dict[str, int] = {}
    correct = count = 0.0
    revenue = 0.0
    for step in range(6):
        pick = rng.choice(50, 20, replace=False).tolist()
        labels = rng.integers(0, 2, 20).tolist()
        r = s.add_labels([ids[i] for i in pick], labels, [100 + step] * 20,
                         [{"rev": float(lab)} for lab in labels])
        final.update({ids[i]: lab for i, lab in zip(pick, labels, strict=True)})
        sign = r.sign.astype(float)
        correct += float(np.sum(sign * (np.array(r.prediction) == np.array(r.label))))
        count += float(sign.sum())
        revenue += float(np.sum(sign * np.array([b["rev"] for b in r.business])))
    expected_correct = sum(preds[int(k[1:])] == v for k, v in final.items())
    assert (count, correct, revenue) == (len(final), expected_correct, float(sum(final.values())))


def test_latest_policy_replaces_waiting_label() -> None:
    s, a, _ = new_state("latest")
    s.add_labels(["w"], ["x"], [1], [{}])
    r = s.add_labels(["w"], ["y"], [2], [{"k": 1.0}])
    assert len(r) == 0 and r.rejected.tolist() == [] and s.stats.duplicate_labels == 1
    r = s.add_predictions(["w"], [a], [0], ["x"], [0.5])
    assert (r.label, r.label_ts_ms.tolist(), r.business) == (["y"], [2], [{"k": 1.0}])


def test_expire_both_kinds() -> None:
    s, a, b = new_state()
    s.add_predictions(["p1", "p2", "p3"], [a, b, a], [100, 50, 101], [1, 2.5, "c"], [0.1, 0.2, 0.3])
    s.add_labels(["o1", "o2"], ["x", 1.0], [90, 200], [{"v": 1.0}, {}])
    e = s.expire(now_ms=100 + DELAY)
    assert (e.model_key.tolist(), e.ts_ms.tolist()) == ([b], [50])
    assert (e.prediction, e.score.tolist()) == ([2.5], [0.2])
    assert (e.orphan_ids, e.orphan_labels, e.orphan_ts_ms.tolist(), e.orphan_business) == (
        ["o1"], ["x"], [90], [{"v": 1.0}])
    assert (s.stats.expired_predictions, s.stats.orphans, len(s)) == (1, 1, 3)
    e = s.expire(now_ms=101 + DELAY + 1)
    assert e.ts_ms.tolist() == [100, 101] and e.prediction == [1, "c"] and e.orphan_ids == []
    assert (s.stats.expired_predictions, s.stats.orphans, len(s)) == (3, 1, 1)
    assert s.pending("p1") is None
    r = s.add_predictions(["o1", "o2"], [a, a], [300, 300], [1, 1], [0.5, 0.5])
    assert r.ids == ["o2"]
    e = s.expire(now_ms=10**9)
    assert len(e.ts_ms) == 1 and len(e.orphan_ids) == 0 and len(s) == 0


def test_expired_slots_are_reused() -> None:
    s, a, _ = new_state()
    s.add_predictions([f"a{i}" for i in range(100)], [a] * 100, [0] * 100, [1] * 100, [0.5] * 100)
    cap = len(s._preds.cols["ts"])
    for t in range(1, 20):
        s.expire(now_ms=t * 10_000)
        s.add_predictions([f"b{t}-{i}" for i in range(100)], [a] * 100, [t * 10_000] * 100, [1] * 100,
                          [0.5] * 100)
    assert len(s._preds.cols["ts"]) == cap and len(s) == 100 and s.stats.expired_predictions == 1900


def test_joined_ids_are_forgotten_after_max_delay(small_flush: None) -> None:
    s, a, _ = new_state()
    ids = [f"p{i}" for i in range(10)]
    s.add_predictions(ids, [a] * 10, [0] * 10, [1] * 10, [0.5] * 10)
    s.add_labels(ids, [1] * 10, [500] * 10, [{}] * 10)
    assert s.n_remembered == 20 and len(s._joined.segments) >= 1  # each pair, and each id its label named no model
    assert s.add_predictions(ids[:1], [a], [0], [1], [0.5]).rejected.tolist() == [0]
    s.expire(now_ms=500 + DELAY)
    assert s.add_labels(ids[1:2], [0], [600], [{}]).rejected.tolist() == [0]
    s.expire(now_ms=501 + DELAY)
    assert s.n_remembered == 0
    assert s.add_predictions(ids[:1], [a], [2000], [1], [0.5]).rejected.tolist() == []


def test_latest_records_are_dropped_with_the_joined_ids() -> None:
    s, a, _ = new_state("latest")
    s.add_predictions(["p"], [a], [0], [1], [0.5])
    s.add_labels(["p"], [1], [10], [{}])
    s.add_labels(["p"], [0], [400], [{}])
    s.expire(now_ms=10 + DELAY + 1)
    assert len(s._records) == 1 and s.n_remembered == 2  # the pair, and the id (its label named no model)
    s.expire(now_ms=400 + DELAY + 1)
    assert len(s._records) == 0 and s.n_remembered == 0 and s._record_keys == {}


def test_empty_batches() -> None:
    s, _, _ = new_state()
    r = s.add_predictions([], [], [], [], [])
    assert len(r) == 0 and r.rejected.dtype == np.int64
    assert len(s.add_labels([], [], [], [])) == 0
    e = s.expire(0)
    assert len(e.ts_ms) == 0 and e.orphan_ids == []
    assert JoinState.restore(s.snapshot()).snapshot() == s.snapshot()


def test_validation_errors() -> None:
    with pytest.raises(ValueError, match="max_delay_ms"):
        JoinState(0)
    with pytest.raises(ValueError, match="duplicate_policy"):
        JoinState(10, "last")  # type: ignore[arg-type]
    s, a, _ = new_state()
    with pytest.raises(ValueError, match="differ in length"):
        s.add_predictions(["a", "b"], [a], [1, 2], [1, 1], [0.5, 0.5])
    with pytest.raises(ValueError, match="intern"):
        s.add_predictions(["a"], [7], [1], [1], [0.5])
    with pytest.raises(ValueError, match="differ in length"):
        s.add_labels(["a"], [1, 2], [1], [{}])
    with pytest.raises(ValueError, match="snapshot"):
        JoinState.restore(b"not a snapshot")


def test_hash_ids_stable_and_independent_of_batch() -> None:
    ids = ["", "a", "abcdefgh", "abcdefghi", "é-ünïcode", str(uuid.UUID(int=12345))]
    together = hash_ids(ids)
    alone = np.concatenate([hash_ids([i]) for i in ids])
    assert together.tolist() == alone.tolist()
    assert len(set(together.tolist())) == len(ids)
    assert hash_ids(["00000000-0000-0000-0000-000000003039"]).tolist() == hash_ids([ids[-1]]).tolist()
    assert hash_ids(["a" * 8, "a" * 8 + "\0"]).tolist()[0] != hash_ids(["a" * 8 + "\0"]).tolist()[0]


def test_hash_ids_regression_value() -> None:
    # A changed hash makes every stored snapshot unreadable in practice: pin one value.
    assert hash_ids(["prediction-1", "x"]).tolist() == EXPECTED_HASHES


EXPECTED_HASHES = [3884036805579777099, 8575570442511797605]


def test_hash_ids_no_collisions_on_uuids() -> None:
    ids = [str(uuid.UUID(int=i * 0x9E3779B97F4A7C15 + 7)) for i in range(100_000)]
    h = hash_ids(ids)
    assert len(np.unique(h)) == len(ids)
    bits = np.unpackbits(h.view(np.uint8)).reshape(len(ids), 64).mean(axis=0)
    assert np.all(np.abs(bits - 0.5) < 0.01)


def _drive(s: JoinState, batches: list[tuple[str, list[int]]], a: int) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for kind, items in batches:
        ids = [f"id-{i}" for i in items]
        if kind == "p":
            r = s.add_predictions(ids, [a] * len(items), items, [i % 3 for i in items],
                                  [i / 100 for i in items])
        else:
            r = s.add_labels(ids, [f"L{i}" for i in items], [1000 + i for i in items],
                             [{"v": float(i)} for i in items])
        out.extend(rows(r))
    return out


def _batches(events: list[tuple[str, int]], cuts: list[int]) -> list[tuple[str, list[int]]]:
    batches: list[tuple[str, list[int]]] = []
    for k, (kind, i) in enumerate(events):
        if batches and batches[-1][0] == kind and k not in cuts:
            batches[-1][1].append(i)
        else:
            batches.append((kind, [i]))
    return batches


@pytest.mark.parametrize("policy", ["first", "latest"])
def test_snapshot_restore_mid_stream_gives_same_pairs(policy: str, small_flush: None) -> None:
    rng = np.random.default_rng(7)
    events = [("p", i) for i in range(60)] + [("l", i) for i in range(0, 90, 2)]
    events += [("l", 4), ("l", 10), ("p", 4)]
    order = rng.permutation(len(events)).tolist()
    batches = _batches([events[k] for k in order], cuts=list(range(0, len(events), 5)))
    half = len(batches) // 2
    s, a, _ = new_state(policy)
    straight = _drive(s, batches, a)
    t, a, _ = new_state(policy)
    first = _drive(t, batches[:half], a)
    data = t.snapshot()
    u = JoinState.restore(data)
    assert u.snapshot() == data and len(u) == len(t) and u.stats == t.stats
    assert u.n_remembered == t.n_remembered and u.duplicate_policy == policy
    second = _drive(u, batches[half:], a)
    assert first + second == straight
    assert u.snapshot() == s.snapshot()
    assert u.expire(10**6).prediction == s.expire(10**6).prediction


@settings(max_examples=60, deadline=None)
@given(
    n_ids=st.integers(0, 25),
    data=st.data(),
)
def test_any_interleaving_equals_offline_join(n_ids: int, data: st.DataObject) -> None:
    has_pred = data.draw(st.lists(st.booleans(), min_size=n_ids, max_size=n_ids))
    has_label = data.draw(st.lists(st.booleans(), min_size=n_ids, max_size=n_ids))
    events = [("p", i) for i in range(n_ids) if has_pred[i]]
    events += [("l", i) for i in range(n_ids) if has_label[i]]
    events = data.draw(st.permutations(events))
    cuts = data.draw(st.lists(st.integers(0, max(len(events) - 1, 0)), max_size=5))
    restore_at = data.draw(st.integers(0, len(events)))
    policy = data.draw(st.sampled_from(["first", "latest"]))
    batches = _batches(events, cuts)
    s, a, _ = new_state(policy)
    _JoinedIds.flush_size, saved = 2, _JoinedIds.flush_size
    try:
        got = _drive(s, batches[:restore_at], a)
        s = JoinState.restore(s.snapshot())
        got += _drive(s, batches[restore_at:], a)
    finally:
        _JoinedIds.flush_size = saved
    expected = {(f"id-{i}", 1, a, i, i % 3, i / 100, f"L{i}", 1000 + i)
                for i in range(n_ids) if has_pred[i] and has_label[i]}
    assert {(o[0], o[1], o[3], o[4], o[5], o[6], o[7], o[8]) for o in got} == expected
    assert len(got) == len(expected)
    assert len(s) == sum(p != lab for p, lab in zip(has_pred, has_label, strict=True))
    assert s.stats.joined == len(expected)


def _bytes_per_waiting_prediction(n: int) -> float:
    s, a, b = new_state()
    raw = np.random.default_rng(0).bytes(16 * n)
    ids = [str(uuid.UUID(bytes=raw[16 * i:16 * i + 16], version=4)) for i in range(n)]
    keys = np.tile(np.array([a, b], np.int32), n // 2)
    ts = np.arange(n, dtype=np.int64)
    preds = [("yes", "no")[i % 2] for i in range(n)]
    scores = np.linspace(0, 1, n)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for k in range(0, n, 1000):
            s.add_predictions(ids[k:k + 1000], keys[k:k + 1000], ts[k:k + 1000], preds[k:k + 1000],
                              scores[k:k + 1000])
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert s.n_waiting_predictions == n
    return used / n


def test_memory_per_waiting_prediction_under_300_bytes() -> None:
    # 22_000 is just above a dict resize (21_845 entries), where the dict has the most unused room.
    per = _bytes_per_waiting_prediction(22_000)
    assert 100 < per <= 300, per
