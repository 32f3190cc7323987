"""`driftwarden up --demo`: a built-in producer of synthetic traffic for two models, with drift injected on cue,
progress while it runs and a summary of what reached ClickHouse at the end.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import orjson
from aiokafka import AIOKafkaProducer

from stream.contracts.events import ModelSpec
from stream.contracts.registry import RegisteredModel
from stream.demo.synthetic import DRIFTED_FEATURES, Scenario

if TYPE_CHECKING:
    from stream.runtime.service import Service


@dataclass
class DemoOptions:
    duration: float = 120.0
    rate: float = 100.0
    drift_after: float | None = None  # seconds; default: half the duration
    window_seconds: int = 60
    seed: int = 7
    serve: bool = False  # keep the service (and its dashboard) running after the traffic, until Ctrl-C


@dataclass
class DemoReport:
    predictions: int = 0
    labels: int = 0
    drift_at_ms: int = 0
    drain_complete: bool = False


async def _wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(interval)
    return condition()


class Demo:
    """Produces for ``duration`` seconds at ``rate`` events/s, then drains and stops the service."""

    def __init__(self, options: DemoOptions, say: Callable[[str], None] = print) -> None:
        self.options = options
        self.say = say
        self.report = DemoReport()

    async def __call__(self, service: Service) -> None:
        runtime = service.runtime
        assert runtime is not None
        opts = self.options
        await _wait_for(lambda: runtime.started, 60)
        start_ms = int(time.time() * 1000)
        drift_after = opts.duration / 2 if opts.drift_after is None else opts.drift_after
        self.report.drift_at_ms = start_ms + int(drift_after * 1000)
        scenario = Scenario(seed=opts.seed, start_ms=start_ms, drift_at_ms=self.report.drift_at_ms,
                            label_delay_mean_ms=3000, shadow=True)
        for spec in scenario.specs():
            spec["monitor"] = {**spec.get("monitor", {}), "window_seconds": opts.window_seconds,
                               "allowed_lateness_seconds": min(60, opts.window_seconds)}
            model = RegisteredModel(spec=ModelSpec.model_validate(spec))
            runtime.registry.put(model)
            await runtime.publish_model(model)
        s = service.settings
        producer = AIOKafkaProducer(bootstrap_servers=service.bootstrap, linger_ms=5, acks=1)
        await producer.start()
        try:
            await self._produce(producer, scenario, s.topic_predictions, s.topic_ground_truth, start_ms)
        finally:
            await producer.stop()
        produced = self.report.predictions + self.report.labels
        self.say(f"demo: produced {self.report.predictions} predictions and {self.report.labels} labels; "
                 "waiting for the pipeline to catch up")

        self.report.drain_complete = await _wait_for(lambda: runtime.consumed >= produced, 60)
        await asyncio.sleep(0)  # let the aggregate agent pick up the last internal batches
        await _wait_for(lambda: runtime.aggregated_predictions >= self.report.predictions, 30)
        await runtime.flush_windows(force_idle=True, close_all=True)
        await runtime.sink.await_written(timeout=60)
        if not opts.serve:
            service.stop()
            return
        text = await asyncio.to_thread(summary, service, self.report)
        self.say(text)
        self.say(f"demo: traffic done; still serving the dashboard at {dashboard_url(service)} until Ctrl-C")

    async def _produce(self, producer: AIOKafkaProducer, scenario: Scenario, topic_p: str, topic_g: str,
                       start_ms: int) -> None:
        opts = self.options
        tick = 0.2
        per_tick = opts.rate * tick
        carry = 0.0
        began = time.monotonic()
        next_report = began + 5
        drift_announced = False
        while (elapsed := time.monotonic() - began) < opts.duration:
            carry += per_tick
            n, carry = int(carry), carry - int(carry)
            now_ms = start_ms + int(elapsed * 1000)
            if n:
                events = scenario.predictions(n, start_ms=now_ms, rate_per_s=opts.rate)
                for event in events:
                    await producer.send(topic_p, orjson.dumps(event), key=event["prediction_id"].encode())
                self.report.predictions += len(events)
            for label in scenario.due_labels(now_ms):
                await producer.send(topic_g, orjson.dumps(label), key=label["prediction_id"].encode())
                self.report.labels += 1
            if not drift_announced and now_ms >= self.report.drift_at_ms:
                drift_announced = True
                drifted = "; ".join(f"{m}: {', '.join(f)}" for m, f in DRIFTED_FEATURES.items())
                self.say(f"demo: drift injected now (data drift in {drifted}; concept drift in both models)")
            if time.monotonic() >= next_report:
                next_report += 5
                self.say(f"demo: {elapsed:5.0f}/{opts.duration:.0f} s  predictions {self.report.predictions}  "
                         f"labels {self.report.labels}")
            await asyncio.sleep(max(0.0, began + (elapsed // tick + 1) * tick - time.monotonic()))
        for label in scenario.all_labels():
            await producer.send(topic_g, orjson.dumps(label), key=label["prediction_id"].encode())
            self.report.labels += 1
        await producer.flush()


def dashboard_url(service: Service) -> str:
    s = service.settings
    return f"http://{s.web_host}:{s.web_port}/dashboard"


def summary(service: Service, report: DemoReport) -> str:
    """What the demo wrote, and the commands to look at it."""
    assert service.ch is not None
    db = service.settings.clickhouse_database
    ch = service.ch
    _, windows = ch.query_rows(
        f"SELECT model_id, count(DISTINCT (model_version, segment, window_start)), countIf(metric = 'labelled') "
        f"FROM {db}.window_metrics FINAL GROUP BY model_id ORDER BY model_id")
    _, outcomes = ch.query_rows(f"SELECT count() FROM {db}.outcomes FINAL")
    _, drift = ch.query_rows(f"SELECT count() FROM {db}.drift_events")
    _, detections = ch.query_rows(
        f"SELECT model_id, detector, signal, min(event_time) FROM {db}.drift_events FINAL "
        "GROUP BY model_id, detector, signal ORDER BY model_id, detector, signal")
    _, drifted = ch.query_rows(
        f"SELECT model_id, feature, min(window_start) FROM {db}.feature_drift FINAL WHERE drifted = 1 "
        "AND feature NOT LIKE '\\_\\_%' GROUP BY model_id, feature ORDER BY model_id, feature")
    _, dead = ch.query_rows(f"SELECT count() FROM {db}.dead_letters")
    _, estimated = ch.query_rows(  # label-free estimates beside the realised metric (NaN until labels land)
        f"SELECT model_id, window_start, "
        "anyIf(value, metric IN ('estimated_accuracy', 'estimated_mae')), anyIf(value, metric IN ('accuracy', 'mae')) "
        f"FROM {db}.window_metrics FINAL WHERE segment = '' AND metric IN "
        "('estimated_accuracy', 'estimated_mae', 'accuracy', 'mae') GROUP BY model_id, window_start "
        "ORDER BY model_id, window_start")
    lines = ["", "demo summary",
             f"  produced        {report.predictions} predictions, {report.labels} labels "
             f"(drift injected at {time.strftime('%H:%M:%S', time.localtime(report.drift_at_ms / 1000))}, "
             f"drift_at_ms={report.drift_at_ms})"]
    for model_id, n_windows, _ in windows:
        lines.append(f"  windows         {model_id}: {n_windows} (model, version, segment, window) rows")
    drift_time = time.strftime("%H:%M:%S", time.localtime(report.drift_at_ms / 1000))
    lines += [f"  outcomes        {outcomes[0][0]} joined predictions",
              f"  drift events    {drift[0][0]} (injected at {drift_time})"]
    lines += [f"                  {m}: {d} on {sig}, first at {t:%H:%M:%S}" for m, d, sig, t in detections]
    lines += [f"  drifted inputs  {len(drifted)} (model: feature, first drifted window)"]
    lines += [f"                  {m}: {f}, from the window of {t:%H:%M:%S}" for m, f, t in drifted]
    lines += ["  estimated vs realised (accuracy or MAE per window; the estimate exists at the window's close)"]
    for model_id in dict.fromkeys(row[0] for row in estimated):
        cells = [f"{t:%H:%M:%S} {e:.3f}/{r:.3f}" for m, t, e, r in estimated if m == model_id]
        lines.append(f"                  {model_id}: " + "  ".join(cells[-6:]))
    _, compared = ch.query_rows(
        f"SELECT champion_id, challenger_id, window_start, difference, p_value, verdict "
        f"FROM {db}.model_comparisons FINAL ORDER BY champion_id, challenger_id, window_start")
    lines += ["  champion vs challenger (accuracy difference challenger - champion, McNemar p, verdict per window)"]
    for champion, challenger in dict.fromkeys((row[0], row[1]) for row in compared):
        cells = [f"{t:%H:%M:%S} {d:+.3f} p={p:.2g} {v}" for c, m, t, d, p, v in compared
                 if (c, m) == (champion, challenger)]
        lines.append(f"                  {challenger} vs {champion}: " + "  ".join(cells[-4:]))
    _, fairness = ch.query_rows(  # the protected attribute of credit-risk (and its challenger)
        f"SELECT model_id, window_start, metric, value FROM {db}.window_metrics FINAL WHERE segment = '' "
        "AND metric LIKE 'disparate\\_impact:%' AND isFinite(value) ORDER BY model_id, metric, window_start")
    lines += ["  fairness        (disparate impact per window: min / max positive rate of the groups; < 0.8 alerts)"]
    for model_id, metric in dict.fromkeys((row[0], row[2]) for row in fairness):
        cells = [f"{t:%H:%M:%S} {v:.2f}" for m, t, name, v in fairness if (m, name) == (model_id, metric)]
        lines.append(f"                  {model_id} {metric.split(':', 1)[1]}: " + "  ".join(cells[-6:]))
    alerts = service.runtime.alerts_published if service.runtime is not None else []
    lines += [f"  alerts          {len(alerts)}"]
    lines += [f"                  [{a.severity} {a.state}] {a.message}" for a in alerts]
    lines += [
              f"  dead letters    {dead[0][0]}",
              "", "look at it:",
              f"  dashboard       {dashboard_url(service)}  (while it runs; `up --demo --serve` keeps it up)",
              f"  report          driftwarden report {windows[0][0] if windows else 'MODEL'} --out report.html",
              f"  driftwarden sql \"SELECT model_id, window_start, metric, value, samples "
              f"FROM {db}.window_metrics_latest WHERE segment = '' "
              "AND metric IN ('accuracy', 'estimated_accuracy', 'mae', 'estimated_mae', 'label_coverage') "
              "ORDER BY model_id, window_start\"",
              f"  driftwarden sql \"SELECT * FROM {db}.drift_events ORDER BY event_time\"",
              f"  driftwarden sql \"SELECT * FROM {db}.model_comparisons FINAL ORDER BY window_start\"",
              f"  driftwarden sql \"SELECT * FROM {db}.alerts ORDER BY time\""]
    if not report.drain_complete:
        lines.append("  (the pipeline had not consumed everything when the demo ended: rerun with a longer duration)")
    return "\n".join(lines)
