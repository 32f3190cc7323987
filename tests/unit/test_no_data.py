"""The no-data rule: a model that stops sending fires once by the wall clock, and resolves when it sends again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stream.alerts.rules import NoDataRule, RuleSpecError, parse_rules
from stream.contracts.events import ModelSpec
from stream.monitor.model_monitor import ModelMonitor

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def monitor(rules: list[dict[str, object]] | None = None) -> ModelMonitor:
    spec = ModelSpec(model_id="scorer", task="regression", monitor={"window_seconds": 60},  # type: ignore[arg-type]
                     rules=rules or [])
    return ModelMonitor(spec)


def ms(t: datetime) -> float:
    return t.timestamp() * 1000


def test_on_by_default_and_can_be_tuned_or_disabled() -> None:
    (rule,) = [r for r in parse_rules([]) if isinstance(r, NoDataRule)]
    assert (rule.name, rule.windows, rule.resolve_after, rule.cooldown_windows) == ("default-no-data", 3, 1, 0)
    assert not [r for r in parse_rules([{"disable": "default-no-data"}]) if isinstance(r, NoDataRule)]
    tuned = parse_rules([{"name": "default-no-data", "kind": "no_data", "windows": 10, "severity": "critical"}])
    assert [(r.windows, r.severity) for r in tuned if isinstance(r, NoDataRule)] == [(10, "critical")]
    with pytest.raises(RuleSpecError, match="windows"):
        parse_rules([{"kind": "no_data", "windows": 0}])


def test_fires_once_after_n_windows_of_silence_then_resolves_when_traffic_returns() -> None:
    mon = monitor()
    assert mon.check_no_data(T0 + timedelta(hours=1)) == []  # never sent: not judged
    mon.saw_predictions(ms(T0))
    events = []
    for second in range(0, 400, 1):  # the timer ticks every second
        events += mon.check_no_data(T0 + timedelta(seconds=second))
    assert [e.state for e in events] == ["firing"]
    first = events[0]
    assert first.time == T0 + timedelta(seconds=180)  # 3 windows of 60 s, not one tick earlier
    assert (first.model_id, first.model_version, first.segment, first.rule) == ("scorer", "", "", "default-no-data")
    assert first.observed == 180 and first.threshold == 180 and first.metric == "predictions"
    assert "no predictions from scorer for 3 min" in first.message
    assert "metric = 'predictions'" in first.evidence_sql

    mon.saw_predictions(ms(T0 + timedelta(seconds=400)))
    resolved = mon.check_no_data(T0 + timedelta(seconds=401))
    assert [(e.state, e.alert_id) for e in resolved] == [("resolved", first.alert_id)]
    assert "predictions from scorer arrive again" in resolved[0].message
    assert mon.check_no_data(T0 + timedelta(seconds=402)) == []


def test_steady_traffic_never_fires_and_the_state_survives_a_checkpoint() -> None:
    mon = monitor([{"name": "default-no-data", "kind": "no_data", "windows": 2}])
    for second in range(0, 1000, 30):
        mon.saw_predictions(ms(T0 + timedelta(seconds=second)))
        assert mon.check_no_data(T0 + timedelta(seconds=second + 29)) == []
    restored = ModelMonitor.from_bytes(mon.to_bytes(), mon.spec)
    assert restored.last_prediction_ms == mon.last_prediction_ms
    assert restored.check_no_data(T0 + timedelta(seconds=990 + 119)) == []
    fired = restored.check_no_data(T0 + timedelta(seconds=990 + 120))
    assert [e.state for e in fired] == ["firing"]
