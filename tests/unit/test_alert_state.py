from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stream.alerts.rules import (
    AnyRule,
    Condition,
    DetectorHit,
    DriftResult,
    MetricHistory,
    QualityRow,
    WindowInputs,
    evaluate_all,
    parse_rules,
)
from stream.alerts.state import AlertTracker, alert_id, evidence_sql
from stream.contracts.events import AlertEvent

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
W = timedelta(minutes=5)
NOW = datetime(2024, 5, 2, tzinfo=UTC)


def window(i: int, metrics: dict[str, tuple[float, int]] | None = None, **kw: Any) -> WindowInputs:
    return WindowInputs("credit-risk", "3", "", T0 + i * W, T0 + (i + 1) * W, metrics or {}, **kw)


def make_rule(**spec: Any) -> AnyRule:
    base = {"name": "acc", "kind": "threshold", "metric": "accuracy", "op": "<", "value": 0.8}
    return parse_rules([base | spec], defaults=False)[0]


def run(
    tracker: AlertTracker, rule: AnyRule, actives: list[bool | None], first: int = 0
) -> list[tuple[int, str]]:
    """Feed one condition per window; return (window index, state) of each event."""
    out: list[tuple[int, str]] = []
    for i, active in enumerate(actives, start=first):
        cond = Condition(rule, active, "accuracy", 0.7 if active else 0.9, 0.8, 500)
        out += [(i, e.state) for e in tracker.observe(window(i), [cond], NOW)]
    return out


def test_fires_once_and_resolves_after_n_false_windows() -> None:
    rule = make_rule(resolve_after=3, cooldown_windows=0)
    events = run(AlertTracker(), rule, [False, True, True, False, True, False, False, None, False, False])
    # the false run at 3 is broken by 4; None (window 7) neither counts nor resets
    assert events == [(1, "firing"), (8, "resolved")]


def test_cooldown_blocks_refiring_for_n_windows() -> None:
    rule = make_rule(resolve_after=1, cooldown_windows=2)
    tracker = AlertTracker()
    events = run(tracker, rule, [True, False, True, True, True])
    # resolved at window 1 (ends at 2W): windows starting before 2W + 2W = window 4 cannot fire
    assert events == [(0, "firing"), (1, "resolved"), (4, "firing")]
    assert tracker.counts["cooldown"] == 2
    assert run(AlertTracker(), make_rule(resolve_after=1, cooldown_windows=0), [True, False, True]) == [
        (0, "firing"),
        (1, "resolved"),
        (2, "firing"),
    ]


def test_silence_mutes_firing_until_it_ends() -> None:
    rule = make_rule(resolve_after=1, cooldown_windows=0)
    tracker = AlertTracker()
    tracker.silence("credit-risk", "acc", until=NOW + timedelta(hours=1))
    assert run(tracker, rule, [True, True]) == []
    assert tracker.counts["silenced"] == 2
    tracker.silence("credit-risk", "acc", until=NOW)  # expired at NOW
    assert run(tracker, rule, [True], first=2) == [(2, "firing")]
    tracker.silence("credit-risk", None, until=NOW + timedelta(hours=1))  # whole model
    assert tracker.is_silenced("credit-risk", "other", NOW)
    assert not tracker.is_silenced("other-model", "acc", NOW)
    assert run(tracker, rule, [False], first=3) == [(3, "resolved")]  # resolutions are not muted
    assert run(tracker, rule, [True], first=4) == []
    tracker.unsilence("credit-risk")
    assert run(tracker, rule, [True], first=5) == [(5, "firing")]


def _evaluate_series(tracker: AlertTracker, accuracies: list[float], first: int = 0) -> list[AlertEvent]:
    rules = parse_rules(
        [
            {
                "name": "acc",
                "kind": "threshold",
                "metric": "accuracy",
                "op": "<",
                "value": 0.8,
                "resolve_after": 2,
            }
        ],
        defaults=False,
    )
    history = MetricHistory()
    events = []
    for i, acc in enumerate(accuracies, start=first):
        inputs = window(i, {"accuracy": (acc, 1204)})
        events += tracker.observe(inputs, evaluate_all(rules, inputs, history), NOW)
    return events


def test_ids_are_deterministic_and_shared_by_firing_and_resolved() -> None:
    series = [0.9, 0.71, 0.7, 0.9, 0.9]
    first = _evaluate_series(AlertTracker(), series)
    second = _evaluate_series(AlertTracker(), series)
    assert [e.model_dump() for e in first] == [e.model_dump() for e in second]
    assert [e.state for e in first] == ["firing", "resolved"]
    expected = hashlib.sha1(b"credit-risk\x1f3\x1f\x1facc\x1f2024-05-01T10:05:00+00:00").hexdigest()
    assert first[0].alert_id == first[1].alert_id == expected
    assert alert_id("credit-risk", "3", "eu", "acc", T0 + W) != expected


def test_replay_after_restart_emits_nothing_new() -> None:
    tracker = AlertTracker()
    live = _evaluate_series(tracker, [0.9, 0.71, 0.7, 0.9])
    assert [e.state for e in live] == ["firing"]
    restored = AlertTracker.from_bytes(tracker.to_bytes())
    assert _evaluate_series(restored, [0.9, 0.71, 0.7, 0.9]) == []
    assert restored.counts["duplicates"] == 4
    more = _evaluate_series(restored, [0.9], first=4)
    assert [(e.state, e.alert_id) for e in more] == [("resolved", live[0].alert_id)]


def test_revision_of_a_window_to_active_fires_once() -> None:
    rule = make_rule(resolve_after=2, cooldown_windows=0)
    tracker = AlertTracker(revision_windows=3)
    assert run(tracker, rule, [False, False, False, False]) == []
    assert run(tracker, rule, [True], first=3) == [(3, "firing")]  # late labels revise window 3
    assert run(tracker, rule, [True], first=3) == []
    assert run(tracker, rule, [True], first=0) == []  # older than the revision horizon
    assert tracker.counts["stale"] == 1
    # the window that fired revised back to false: no window of the episode breaches, so it resolves at once
    assert run(tracker, rule, [False], first=3) == [(3, "resolved")]
    assert run(tracker, rule, [False], first=4) == []


def test_a_revision_resolves_a_false_alarm_latest_or_not_but_not_while_another_window_breaches() -> None:
    rule = make_rule(resolve_after=3, cooldown_windows=0)
    tracker = AlertTracker()
    assert run(tracker, rule, [True, True, None, None]) == [(0, "firing")]
    assert run(tracker, rule, [False], first=0) == []  # window 1 still breaches
    assert run(tracker, rule, [False], first=1) == [(1, "resolved")]  # neither is the latest window (3)
    assert tracker.counts["fired"] == 1 and tracker.counts["resolved"] == 1
    assert run(tracker, rule, [None, True], first=4) == [(5, "firing")]  # a new episode can fire


def test_state_round_trip_keeps_silences_and_cooldown() -> None:
    rule = make_rule(resolve_after=1, cooldown_windows=3)
    tracker = AlertTracker(database="dw")
    tracker.silence("credit-risk", None, NOW + timedelta(days=1))
    tracker.unsilence("credit-risk")
    tracker.silence("credit-risk", "other", NOW + timedelta(days=1))
    run(tracker, rule, [True, False])
    restored = AlertTracker.from_bytes(tracker.to_bytes())
    assert restored.to_bytes() == tracker.to_bytes()
    assert restored.is_silenced("credit-risk", "other", NOW)
    assert run(restored, rule, [True, True, True, True], first=2) == [(5, "firing")]


def test_message_and_evidence_of_a_threshold_alert() -> None:
    rules = parse_rules(
        [{"name": "acc", "kind": "threshold", "metric": "accuracy", "op": "<", "value": 0.8}], defaults=False
    )
    drift = [
        DriftResult("income", "psi", 0.3, None, True),
        DriftResult("age", "ks", 0.2, 0.01, True),
        DriftResult("zip", "ks", 0.01, 0.6, False),
    ]
    inputs = window(1, {"accuracy": (0.71, 1204)}, drift=drift)
    [event] = AlertTracker().observe(inputs, evaluate_all(rules, inputs, MetricHistory()), NOW)
    assert event.message == (
        "accuracy of credit-risk v3 fell to 0.71 (threshold 0.80) in the window 2024-05-01 10:05-10:10 UTC, "
        "1,204 labelled outcomes; drifted inputs: age, income"
    )
    assert (event.severity, event.metric, event.observed, event.threshold) == (
        "warning",
        "accuracy",
        0.71,
        0.8,
    )
    assert event.window_start == T0 + W and event.time == NOW
    assert event.evidence_sql == (
        "SELECT window_start, window_end, metric, value, samples FROM driftwarden.window_metrics FINAL "
        "WHERE model_id = 'credit-risk' AND model_version = '3' AND segment = '' AND metric = 'accuracy' "
        "AND window_start >= toDateTime64('2024-05-01 10:05:00.000', 3, 'UTC') "
        "AND window_start <= toDateTime64('2024-05-01 10:05:00.000', 3, 'UTC') ORDER BY window_start"
    )


def test_evidence_sql_per_kind_escapes_literals() -> None:
    inputs = WindowInputs(
        "m'x",
        "1",
        "region=eu",
        T0,
        T0 + W,
        {},
        detections=[DetectorHit("adwin", "error")],
        drift=[DriftResult(f, "psi", 1.0, None, True) for f in ("a", "b", "c")],
        quality=[QualityRow("a", "missing_rate", 0.5)],
    )
    tracker = AlertTracker()
    events = tracker.observe(inputs, evaluate_all(parse_rules([]), inputs, MetricHistory()), NOW)
    by_rule = {e.rule: e for e in events}
    assert set(by_rule) == {"default-error-detector", "default-feature-drift", "default-missing-rate"}
    assert (
        "FROM driftwarden.drift_events FINAL WHERE model_id = 'm\\'x'"
        in by_rule["default-error-detector"].evidence_sql
    )
    assert "AND signal = 'error'" in by_rule["default-error-detector"].evidence_sql
    assert "FROM driftwarden.feature_drift FINAL" in by_rule["default-feature-drift"].evidence_sql
    assert "segment = 'region=eu'" in by_rule["default-feature-drift"].evidence_sql
    assert by_rule["default-feature-drift"].message.startswith(
        "3 input features of m'x v1 (segment region=eu) drifted"
    )
    assert "`check` = 'missing_rate'" in by_rule["default-missing-rate"].evidence_sql
    assert by_rule["default-missing-rate"].observed == 0.5


@pytest.mark.parametrize("trailing", [12, 2016])
def test_evidence_of_a_relative_rule_covers_the_baseline(trailing: int) -> None:
    [rule] = parse_rules(
        [{"kind": "relative", "metric": "f1", "by_percent": 10, "trailing_windows": trailing}], defaults=False
    )
    cond = Condition(rule, True, "f1", 0.5, 0.7, 300, 0.78)
    sql = evidence_sql(window(3000), cond)
    since = (T0 + (3000 - trailing) * W).strftime("%Y-%m-%d %H:%M:%S")
    assert f"window_start >= toDateTime64('{since}.000', 3, 'UTC')" in sql
