"""The aggregate stage: late labels for a window closed earlier re-evaluate its performance rules."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from stream.contracts.events import FeatureSpec, ModelSpec, MonitorSettings
from stream.contracts.state_codec import decode_state, encode_state
from stream.pipeline.aggregate import CHECKPOINT_VERSION, Aggregator
from stream.pipeline.ingest import _new_batch

WINDOW_MS = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % WINDOW_MS
RULE = {"name": "low-acc", "kind": "threshold", "metric": "accuracy", "op": "<", "value": 0.8, "min_samples": 50}
SPEC = ModelSpec(model_id="m", task="binary_classification", positive_class="1",
                 features=[FeatureSpec(name="x", type="numeric")], rules=[RULE],
                 monitor=MonitorSettings(window_seconds=60, allowed_lateness_seconds=0, reference_events=10_000,
                                         label_delay_seconds=0))


def _predictions(ids: range, ts: int) -> dict[str, Any]:
    batch = _new_batch("m", 0)
    batch["sources"] = 1
    p = batch["preds"]
    for i in ids:
        for name, value in [("off", i), ("pid", f"p{i}"), ("ver", "1"), ("seg", {}), ("ts", ts), ("pred", "1"),
                            ("score", 0.9), ("lat", 1.0), ("feat", {"x": 0.5})]:
            p[name].append(value)
    return batch


def _outcomes(ids: range, ts: int, label: str) -> dict[str, Any]:
    batch = _new_batch("m", 0)
    o = batch["outs"]
    for i in ids:
        for name, value in [("src", 1), ("off", i), ("pid", f"p{i}"), ("lts", ts + 3_600_000), ("ver", "1"),
                            ("seg", {}), ("ts", ts), ("label", label), ("pred", "1"), ("score", 0.9), ("biz", {})]:
            o[name].append(value)
    return batch


def _alerts(aggregator: Aggregator, now_ms: int) -> list[tuple[str, str, float | None]]:
    reports = aggregator.tick(now_ms, idle=False)
    aggregator.window_rows()  # the flush writes the windows right after the tick, clearing their dirty mark
    return [(a.rule, a.state, a.observed) for r in reports for a in r.alerts]


def test_labels_arriving_after_the_window_closed_fire_its_performance_rule_once() -> None:
    aggregator = Aggregator(lambda _: SPEC)
    now = T0 + 10 * WINDOW_MS
    aggregator.apply(_predictions(range(100), T0 + 1_000))
    aggregator.apply(_predictions(range(100, 101), T0 + 2 * WINDOW_MS))  # the watermark passes window 0
    # window 0 closed without labels: too few for low-acc; the default label-coverage rule fires
    assert _alerts(aggregator, now) == [("default-label-coverage", "firing", 0.0)]
    aggregator.apply(_outcomes(range(30), T0 + 1_000, "0"))
    assert _alerts(aggregator, now) == []  # 30 labels, accuracy 0: still below min_samples
    aggregator.apply(_outcomes(range(30, 100), T0 + 1_000, "0"))
    # every prediction is labelled now: the coverage alert of window 0 was a false alarm and resolves
    assert _alerts(aggregator, now) == [("default-label-coverage", "resolved", 1.0), ("low-acc", "firing", 0.0)]
    assert _alerts(aggregator, now) == []  # nothing changed: nothing re-evaluated
    aggregator.apply(_predictions(range(200, 201), T0 + 1_500))  # a late prediction revises it again
    assert _alerts(aggregator, now) == []  # same verdict: no second event


def test_estimate_rule_fires_at_close_before_labels_and_the_estimate_stays_frozen() -> None:
    rule = {"name": "low-est", "kind": "threshold", "metric": "estimated_accuracy", "op": "<", "value": 0.8,
            "min_samples": 50}
    spec = SPEC.model_copy(update={"rules": [rule, {"disable": "default-label-coverage"}]})
    aggregator = Aggregator(lambda _: spec)
    batch = _predictions(range(100), T0 + 1_000)
    batch["preds"]["score"] = [0.6] * 100  # predicted "1" at 0.6: 60% expected correct (no calibration yet)
    aggregator.apply(batch)
    aggregator.apply(_predictions(range(100, 101), T0 + 2 * WINDOW_MS))
    now = T0 + 10 * WINDOW_MS
    assert _alerts(aggregator, now) == [("low-est", "firing", 0.6)]
    for i in range(10):  # labels of the window teach the calibrator that 0.6 means always "1"
        aggregator.apply(_outcomes(range(i * 60, i * 60 + 60), T0 + 1_000, "1"))
    rows = {(r[2], r[5]): r[6] for r in aggregator.window_rows() if r[3].timestamp() * 1000 == T0}
    assert rows[("", "estimated_accuracy")] == 0.6  # frozen at close
    assert rows[("", "accuracy")] == 1.0
    assert rows[("", "estimate_reliable")] == 0.0  # the calibrator had no labels at the close
    cal = aggregator.calibrators[("m", "1")]
    assert cal.ready and cal.calibrate(np.array([0.9]))[0] == 1.0
    restored = Aggregator.restore(aggregator.snapshot(), lambda _: spec)
    assert restored.estimates == aggregator.estimates
    assert restored.calibrators[("m", "1")].to_arrays()["labels"].tolist() == [600]


def test_a_group_below_four_fifths_fires_the_default_fairness_rule() -> None:
    spec = SPEC.model_copy(update={"protected_attributes": ["sex"], "rules": [{"disable": "default-label-coverage"}]})
    aggregator = Aggregator(lambda _: spec)
    batch = _predictions(range(400), T0 + 1_000)
    batch["preds"]["seg"] = [{"sex": "f" if i % 2 else "m"} for i in range(400)]
    batch["preds"]["pred"] = ["1" if (i % 2 == 0 or i % 4 == 1) else "0" for i in range(400)]  # m: 100%, f: 50%
    aggregator.apply(batch)
    aggregator.apply(_predictions(range(400, 401), T0 + 2 * WINDOW_MS))
    assert _alerts(aggregator, T0 + 10 * WINDOW_MS) == [("default-disparate-impact:sex", "firing", 0.5)]


def test_only_the_report_of_a_window_closing_is_marked_as_its_close() -> None:
    """The window-close lag histogram observes these reports only (not revisions by late labels)."""
    aggregator = Aggregator(lambda _: SPEC)
    now = T0 + 10 * WINDOW_MS
    aggregator.apply(_predictions(range(100), T0 + 1_000))
    aggregator.apply(_predictions(range(100, 101), T0 + 2 * WINDOW_MS))
    closed = aggregator.tick(now, idle=False)
    aggregator.window_rows()
    assert [(r.window_start.timestamp() * 1000, r.closes_window) for r in closed] == [(T0, True)]
    aggregator.apply(_outcomes(range(100), T0 + 1_000, "0"))
    revised = aggregator.tick(now, idle=False)
    assert revised and not any(r.closes_window for r in revised)


def test_multiclass_windows_carry_the_cbpe_estimate_and_it_survives_a_checkpoint() -> None:
    spec = ModelSpec(model_id="m", task="multiclass_classification", features=[FeatureSpec(name="x", type="numeric")],
                     rules=[{"disable": "default-label-coverage"}],
                     monitor=MonitorSettings(window_seconds=60, allowed_lateness_seconds=0, reference_events=10_000))
    rng = np.random.default_rng(8)
    probs = rng.dirichlet([1.0, 1.0, 1.0], 300).round(2)  # on the 0.01 grid of the aggregator's histograms
    classes = ["a", "b", "c"]
    batch = _predictions(range(300), T0 + 1_000)
    batch["preds"]["pred"] = [classes[int(np.argmax(row))] for row in probs]
    batch["preds"]["probs"] = [dict(zip(classes, row.tolist(), strict=True)) for row in probs]
    batch["preds"]["probs"][0] = None  # a prediction without scores is left out of the estimate
    aggregator = Aggregator(lambda _: spec)
    aggregator.apply(batch)
    old = _predictions(range(300, 301), T0 + 2 * WINDOW_MS)
    del old["preds"]["probs"]  # an internal record written before the column existed
    aggregator.apply(old)
    aggregator.tick(T0 + 10 * WINDOW_MS, idle=False)
    rows = {r[5]: (r[6], r[7]) for r in aggregator.window_rows() if r[2] == "" and r[3].timestamp() * 1000 == T0}
    chosen = probs[1:].max(axis=1)  # the probability of each predicted class
    assert rows["estimated_accuracy"] == (pytest.approx(chosen.mean(), abs=1e-9), 299)
    assert rows["estimated_accuracy_lower"][0] < rows["estimated_accuracy"][0] < rows["estimated_accuracy_upper"][0]
    restored = Aggregator.restore(aggregator.snapshot(), lambda _: spec)
    assert restored.estimates == aggregator.estimates
    assert restored.class_scores.keys() == aggregator.class_scores.keys()
    key = next(iter(aggregator.class_scores))
    assert np.array_equal(restored.class_scores[key].chosen, aggregator.class_scores[key].chosen)
    # a checkpoint written before multiclass CBPE has no class scores: it loads, without them
    version, state = decode_state(aggregator.snapshot(), "aggregator", (CHECKPOINT_VERSION,))
    del state["class_scores"]
    assert Aggregator.restore(encode_state("aggregator", version, state), lambda _: spec).class_scores == {}


def test_checkpointed_windows_are_deflated_and_an_older_checkpoint_with_plain_windows_still_loads() -> None:
    import zlib

    from stream.contracts.state_codec import decode_state, encode_state
    from stream.pipeline.aggregate import CHECKPOINT_VERSION, _key_text

    aggregator = Aggregator(lambda _: SPEC)
    aggregator.apply(_predictions(range(100), T0 + 1_000))
    aggregator.apply(_outcomes(range(60), T0 + 1_000, "1"))
    snapshot = aggregator.snapshot()
    _, state = decode_state(snapshot, "aggregator", (CHECKPOINT_VERSION,))
    plain = {_key_text(key): window.to_bytes() for key, window in aggregator.store.windows.items()}
    assert set(state["windows"]) == set(plain) and plain
    for key, blob in state["windows"].items():
        assert zlib.decompress(blob) == plain[key] and len(blob) * 5 < len(plain[key])  # mostly-zero histograms
    older = encode_state("aggregator", CHECKPOINT_VERSION, {**state, "windows": plain})
    for data in (snapshot, older):
        restored = Aggregator.restore(data, lambda _: SPEC)
        assert [w.to_bytes() for w in restored.store.windows.values()] == list(plain.values())


def test_the_join_clock_of_each_partition_survives_a_checkpoint() -> None:
    aggregator = Aggregator(lambda _: SPEC)
    batch = _predictions(range(10), T0 + 1_000)
    batch["joined_until"] = T0 - 5_000  # the labels of this partition are read up to 5 s before the window
    aggregator.apply(batch)
    restored = Aggregator.restore(aggregator.snapshot(), lambda _: SPEC)
    joined = restored.store.clocks["m"].joined
    assert {p: ts for p, (ts, _) in joined.items()} == {int(batch["partition"]): T0 - 5_000}
    assert restored.store.clocks["m"].evictable_until(time.time() * 1000) == T0 - 5_000
