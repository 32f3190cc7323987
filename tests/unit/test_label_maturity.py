"""Label maturity: coverage and performance rules judge a window once its labels are due, then as labels arrive."""

from __future__ import annotations

import numpy as np

from stream.contracts.events import FeatureSpec, ModelSpec, MonitorSettings
from stream.monitor.model_monitor import ModelMonitor
from stream.pipeline.aggregate import Aggregator
from tests.unit.test_aggregate import RULE, T0, WINDOW_MS, _alerts, _outcomes, _predictions

DELAY_MS = 600_000


def spec(label_delay_seconds: int | None = DELAY_MS // 1000) -> ModelSpec:
    return ModelSpec(model_id="m", task="binary_classification", positive_class="1",
                     features=[FeatureSpec(name="x", type="numeric")], rules=[RULE],
                     monitor=MonitorSettings(window_seconds=60, allowed_lateness_seconds=0, reference_events=10_000,
                                             label_delay_seconds=label_delay_seconds))


def closed_without_labels(aggregator: Aggregator, now: int) -> None:
    aggregator.apply(_predictions(range(100), T0 + 1_000))
    aggregator.apply(_predictions(range(100, 101), T0 + 2 * WINDOW_MS))  # the watermark passes window 0
    assert _alerts(aggregator, now) == []  # closed: coverage and accuracy wait for the labels


def test_labels_within_the_declared_delay_raise_no_coverage_alert() -> None:
    aggregator, now = Aggregator(lambda _: spec()), T0 + 10 * WINDOW_MS
    closed_without_labels(aggregator, now)
    aggregator.apply(_outcomes(range(100), T0 + 1_000, "1"))
    assert _alerts(aggregator, now + DELAY_MS // 2) == []  # labels arrived while immature: not judged yet
    assert _alerts(aggregator, now + DELAY_MS) == []  # judged at maturity: coverage 1.0, accuracy 1.0
    assert aggregator.monitors["m"].maturing == {}


def test_labels_that_never_arrive_fire_once_the_window_matures_and_late_ones_resolve_it() -> None:
    aggregator, now = Aggregator(lambda _: spec()), T0 + 10 * WINDOW_MS
    closed_without_labels(aggregator, now)
    assert _alerts(aggregator, now + DELAY_MS - 1_000) == []
    assert _alerts(aggregator, now + DELAY_MS) == [("default-label-coverage", "firing", 0.0)]
    assert _alerts(aggregator, now + DELAY_MS + 1_000) == []  # once
    aggregator.apply(_outcomes(range(100), T0 + 1_000, "0"))  # very late labels, all wrong
    assert _alerts(aggregator, now + 2 * DELAY_MS) == [
        ("default-label-coverage", "resolved", 1.0), ("low-acc", "firing", 0.0)]


def test_the_learned_delay_is_the_95th_percentile_of_observed_delays_capped_at_the_maximum() -> None:
    mon = ModelMonitor(spec(None))
    assert mon.label_delay_ms() == 3_600_000  # nothing seen yet: one hour
    rng = np.random.default_rng(5)
    delays = rng.exponential(20_000, 5000)
    for chunk in np.array_split(delays, 7):
        mon.observe_label_delays(chunk)
    assert mon.label_delay_ms() == int(np.percentile(delays[-1024:], 95))  # the most recent 1024
    restored = ModelMonitor.from_bytes(mon.to_bytes(), mon.spec)
    assert restored.label_delay_ms() == mon.label_delay_ms()
    mon.observe_label_delays(np.full(2000, 30 * 86400 * 1000.0))
    assert mon.label_delay_ms() == 7 * 86400 * 1000  # max_label_delay_seconds
    assert ModelMonitor(spec(0)).label_delay_ms() == 0  # declared 0: judged at close
