"""The aggregation stage, pure: per-model batch records in, window rows for ClickHouse out.

Replays are dropped twice over: internal records below the restored checkpoint's offset are skipped, and items
(a prediction, an outcome) whose prediction id the stage applied recently are dropped (`stream.pipeline.replay`), which
covers the ingest stage re-emitting, after its own restart, what it had emitted since its last checkpoint.
"""

from __future__ import annotations

import datetime as dt
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import orjson

from stream.contracts.events import ModelSpec
from stream.contracts.state_codec import StateDecodeError, decode_state, encode_state
from stream.metrics.classification import BinaryState, MulticlassState, label_mask
from stream.metrics.estimation import (
    ErrorModel,
    MulticlassScores,
    ScoreCalibrator,
    calibration_check,
    estimate_multiclass,
    estimates,
)
from stream.metrics.fairness import fairness_metrics
from stream.metrics.regression import RegressionState
from stream.metrics.window import Metrics, WindowAccumulator
from stream.monitor.detectors import Detection
from stream.monitor.model_monitor import ModelMonitor
from stream.monitor.report import WindowReport, detection_row
from stream.pipeline.barrier import StageFailure, describe, isolate
from stream.pipeline.cardinality import BoundedValues
from stream.pipeline.ingest import batch_items, select_items
from stream.pipeline.pairing import Pairing
from stream.pipeline.replay import RecentIds
from stream.pipeline.windows import ModelClock, WindowKey, WindowStore, segment_fields_of

WINDOW_METRIC_COLUMNS = ("model_id", "model_version", "segment", "window_start", "window_end", "metric",
                         "value", "samples", "version", "updated_at")

CLASS_SCORE_BINS = 100
"""Score grid of multiclass CBPE (per class, two histograms of 101 counts per window): a probability is read as
the nearest multiple of 0.01, an error that averages out over a window's predictions."""

CHECKPOINT_VERSION = 2
"""Version of the aggregator's checkpoint state (1 was a pickle: refused, rebuilt from Kafka)."""


def class_text(value: Any) -> str:
    """Class labels as text: ``1.0`` and ``1`` are both ``"1"``.

    >>> [class_text(v) for v in (1.0, 0, "yes", 2.5)]
    ['1', '0', 'yes', '2.5']
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def ms_to_dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


class Aggregator:
    """Windows of the models routed to one partition of the internal topic, with replay filtering."""

    def __init__(self, spec_for: Callable[[str], ModelSpec], horizon: int = 2_000_000,
                 profile_for: Callable[[str], dict[str, Any] | None] = lambda _: None,
                 database: str = "driftwarden", max_versions: int = 50, max_segment_values: int = 100) -> None:
        self.spec_for = spec_for
        self.versions = BoundedValues(max_versions)  # per model: later versions fold into "__other__"
        self.segment_values = BoundedValues(max_segment_values)  # per model and segment field
        self.poisoned: list[tuple[Mapping[str, Any], str, int, str]] = []  # (batch, side, index, error): failed
        self.profile_for = profile_for
        self.database = database
        self.store = WindowStore(spec_for)
        self.monitors: dict[str, ModelMonitor] = {}
        self.positions: dict[str, int] = {}
        self.detections: list[tuple[Any, ...]] = []  # drift_events rows not yet written
        self.recent = RecentIds(horizon)
        self.next_offset = 0
        self.replayed = 0
        self.predictions = 0
        self.outcomes = 0
        self._serialized: dict[WindowKey, bytes] = {}
        self._computed: dict[WindowKey, Metrics] = {}  # metrics tick() computed, for the window_rows() after it
        # Performance estimation (binary): a score calibrator per (model, version), learned from labelled
        # outcomes; a window's estimates are frozen when it closes, before its labels teach the calibrator.
        self.calibrators: dict[tuple[str, str], ScoreCalibrator] = {}
        self.estimates: dict[WindowKey, Metrics] = {}
        self.error_models: dict[tuple[str, str], ErrorModel] = {}  # regression: DLE of the MAE
        self.pairing = Pairing(spec_for)  # champion/challenger comparisons of the champions routed here
        self.class_scores: dict[WindowKey, MulticlassScores] = {}  # multiclass CBPE, whole-model windows only

    def monitor(self, model_id: str) -> ModelMonitor:
        found = self.monitors.get(model_id)
        if found is None:
            found = self.monitors[model_id] = ModelMonitor(self.spec_for(model_id), self.profile_for(model_id),
                                                           database=self.database)
        return found

    def _positions(self, model_id: str, n: int) -> np.ndarray:
        start = self.positions.get(model_id, 0)
        self.positions[model_id] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def _record(self, model_id: str, detections: list[Detection]) -> None:
        self.detections.extend(detection_row(d, model_id) for d in detections)

    def apply(self, batch: Mapping[str, Any], offset: int | None = None) -> None:
        """Apply one internal batch record (``offset``: its offset on the internal topic, if known). An item
        the stage fails on is isolated (`stream.pipeline.barrier`) and kept in `poisoned` for a dead letter."""
        self._computed.clear()
        if offset is not None:
            if offset < self.next_offset:
                self.replayed += 1
                return
            self.next_offset = offset + 1
        joined = batch.get("joined_until")  # absent in records written before it existed
        if joined is not None:
            self.store.note_joined(str(batch["model_id"]), int(batch["partition"]), int(joined))
        try:
            self._apply(batch)
        except StageFailure:
            raise
        except Exception:  # split to find the item at fault; nothing was changed before _apply failed
            isolate(batch_items(batch), lambda part: self._apply(select_items(batch, part)),
                    lambda item, exc: self.poisoned.append((batch, *item, f"aggregate: {describe(exc)}")))
        cmp = batch.get("cmp")
        if cmp and cmp["off"]:
            self._pair(batch["model_id"], cmp)

    def _pair(self, champion: str, cmp: Mapping[str, list[Any]]) -> None:
        """Pair the labelled outcomes of a champion's group; the champion's windows with new pairs change."""
        ids = [f"c{m}\x1f{p}" for m, p in zip(cmp["mid"], cmp["pid"], strict=True)]
        try:
            touched = self.pairing.add(champion, cmp, self.recent.fresh(ids))
            if touched:
                self.store.dirty.update(k for k in self.store.windows if k[2] == "" and (k[0], k[3]) in touched)
        except Exception as exc:
            raise StageFailure(f"the aggregate stage failed while pairing the outcomes of champion {champion!r}: "
                               f"{describe(exc)}") from exc

    def _apply(self, batch: Mapping[str, Any]) -> None:
        """Convert everything first (this may fail on an item), then change state (this must not)."""
        model_id: str = batch["model_id"]
        spec = self.spec_for(model_id)
        regression = spec.task == "regression"
        p, o = batch["preds"], batch["outs"]
        fields = segment_fields_of(spec)
        if p["off"]:
            p_preds = _labels(p["pred"], regression)
            p_ts = np.asarray(p["ts"], dtype=np.int64)
            p_scores = np.asarray(p["score"], dtype=np.float64)
            p_lat = np.asarray(p["lat"], dtype=np.float64)
            p_versions = self.versions.fold_all(model_id, p["ver"])
            p_segments = self.segment_values.fold_segments(model_id, fields, p["seg"])
            prefix = f"p{model_id}\x1f"  # a challenger's items have the champion's prediction ids
            p_ids = [prefix + pid for pid in p["pid"]]
            # records written before the column existed have none
            p_probs = p.get("probs") if spec.task == "multiclass_classification" else None
        if o["off"]:
            o_business = {key: np.asarray([b.get(key, np.nan) for b in o["biz"]], dtype=np.float64)
                          for key in spec.business_values}
            o_ts = np.asarray(o["ts"], dtype=np.int64)
            o_true, o_pred = _labels(o["label"], regression), _labels(o["pred"], regression)
            o_scores = np.asarray(o["score"], dtype=np.float64)
            o_label_ts = np.asarray(o["lts"], dtype=np.int64)  # the error stream's time is label time
            o_versions = self.versions.fold_all(model_id, o["ver"])
            o_segments = self.segment_values.fold_segments(model_id, fields, o["seg"])
            prefix = f"o{model_id}\x1f"
            o_ids = [prefix + pid for pid in o["pid"]]
        try:
            if p["off"]:
                keep = self.recent.fresh(p_ids)
                self.replayed += int((~keep).sum())
                if keep.any():
                    idx = np.flatnonzero(keep)
                    versions = [p_versions[i] for i in idx]
                    ts = p_ts[idx]
                    scores = p_scores[idx]
                    preds = p_preds[idx]
                    segments = [p_segments[i] for i in idx]
                    self.store.add_predictions(
                        model_id, versions, segments, ts, preds, scores, p_lat[idx],
                        source=int(batch["partition"]), sources=int(batch.get("sources", 0)))
                    self._record(model_id, self.monitor(model_id).add_predictions(
                        versions, ts, [p["feat"][i] for i in idx], scores, preds,
                        self._positions(model_id, idx.size), segments))
                    self.monitor(model_id).saw_predictions(time.time() * 1000)
                    if p_probs is not None:
                        self._score_classes(model_id, versions, ts, preds, [p_probs[i] for i in idx])
                    self.predictions += idx.size
            if o["off"]:
                keep = self.recent.fresh(o_ids)
                self.replayed += int((~keep).sum())
                if keep.any():
                    idx = np.flatnonzero(keep)
                    versions = [o_versions[i] for i in idx]
                    y_true, y_pred, scores = o_true[idx], o_pred[idx], o_scores[idx]
                    self.store.add_outcomes(model_id, versions, [o_segments[i] for i in idx], o_ts[idx], y_true,
                                            y_pred, scores, {k: v[idx] for k, v in o_business.items()})
                    if spec.task == "binary_classification":
                        self._calibrate(model_id, versions, scores, label_mask(y_true, str(spec.positive_class)))
                    elif regression:
                        self._learn_errors(model_id, versions, y_pred, np.abs(y_true - y_pred))
                    self.monitor(model_id).observe_label_delays(o_label_ts[idx] - o_ts[idx])
                    self._record(model_id, self.monitor(model_id).add_outcomes(
                        versions, o_label_ts[idx], y_true, y_pred, scores, self._positions(model_id, idx.size)))
                    self.outcomes += idx.size
        except Exception as exc:
            raise StageFailure(f"the aggregate stage failed while applying a batch of model {model_id!r}: "
                               f"{describe(exc)}") from exc

    def _score_classes(self, model_id: str, versions: list[str], ts: np.ndarray, preds: np.ndarray,
                       probs: list[Mapping[str, float] | None]) -> None:
        """Count multiclass predictions' per-class probabilities into their whole-model windows (CBPE)."""
        rows = [i for i, d in enumerate(probs) if d]
        if not rows:
            return
        classes = sorted({name for i in rows for name in probs[i]})  # type: ignore[union-attr]
        matrix = np.array([[probs[i].get(c, np.nan) for c in classes] for i in rows],  # type: ignore[union-attr]
                          dtype=np.float64)
        at = np.asarray(rows)
        size = self.spec_for(model_id).monitor.window_seconds * 1000
        starts = ts[at] - ts[at] % size
        horizon = self.store.evicted_until.get(model_id, -(2**62))
        for (version, start), sel in _by_window([versions[i] for i in rows], starts):
            if start >= horizon:
                key = (model_id, version, "", start)
                found = self.class_scores.get(key)
                if found is None:
                    found = self.class_scores[key] = MulticlassScores(bins=CLASS_SCORE_BINS)
                found.add(classes, preds[at[sel]], matrix[sel])

    def _calibrate(self, model_id: str, versions: list[str], scores: np.ndarray, positive: np.ndarray) -> None:
        for version in dict.fromkeys(versions):
            sel = np.fromiter((v == version for v in versions), bool, len(versions))
            found = self.calibrators.get((model_id, version))
            if found is None:
                found = self.calibrators[(model_id, version)] = ScoreCalibrator()
            found.add(scores[sel], positive[sel])

    def _learn_errors(self, model_id: str, versions: list[str], y_pred: np.ndarray, errors: np.ndarray) -> None:
        for version in dict.fromkeys(versions):
            sel = np.fromiter((v == version for v in versions), bool, len(versions))
            found = self.error_models.get((model_id, version))
            if found is None:
                found = self.error_models[(model_id, version)] = ErrorModel()
            found.add(y_pred[sel].astype(np.float64), errors[sel].astype(np.float64))

    def _metrics(self, key: WindowKey, acc: WindowAccumulator) -> Metrics:
        """The window's metrics; for binary models with the CBPE estimates (frozen once the window closed)."""
        out = acc.metrics()
        if key[2] == "" and self.pairing.counts:
            out.update(self.pairing.metrics(key[0], key[3]))
        if isinstance(acc.model, BinaryState):
            calibrator = self.calibrators.get((key[0], key[1])) or ScoreCalibrator()
            frozen = self.estimates.get(key)
            if frozen is None:
                frozen = estimates(acc.model, calibrator, acc.score_bins)
                del frozen["estimate_calibration_error"]
                if key in self.store.closed:
                    self.estimates[key] = frozen
            out.update(frozen)
            out["estimate_calibration_error"] = calibration_check(acc.model, calibrator.probabilities(acc.score_bins))
        elif isinstance(acc.model, MulticlassState) and key in self.class_scores:
            frozen = self.estimates.get(key)
            if frozen is None:
                frozen = estimate_multiclass(self.class_scores[key])
                if key in self.store.closed:
                    self.estimates[key] = frozen
            out.update(frozen)
        elif isinstance(acc.model, RegressionState):
            frozen = self.estimates.get(key)
            if frozen is None:
                frozen = (self.error_models.get((key[0], key[1])) or ErrorModel()).estimate(acc.model)
                if key in self.store.closed:
                    self.estimates[key] = frozen
            out.update(frozen)
        return out

    def window_rows(self, now: dt.datetime | None = None) -> list[tuple[Any, ...]]:
        """Rows for ``window_metrics`` of every window changed since the last call."""
        now = now or dt.datetime.now(dt.UTC)
        version = time.time_ns()
        rows: list[tuple[Any, ...]] = []
        for (model_id, model_version, segment, start), end, acc in self.store.take_dirty():
            start_dt, end_dt = ms_to_dt(start), ms_to_dt(end)
            computed = self._computed.get((model_id, model_version, segment, start))
            metrics = self._metrics((model_id, model_version, segment, start), acc) if computed is None else computed
            for metric, (value, samples) in metrics.items():
                rows.append((model_id, model_version, segment, start_dt, end_dt, metric, float(value),
                             int(samples), version, now))
        self._computed.clear()
        return rows

    def tick(self, now_ms: int, idle: bool, close_all: bool = False) -> list[WindowReport]:
        """Advance watermarks (wall clock when idle), close due windows (drift tests, quality, rules), evict
        expired ones; return one report per newly closed (model, version, window), and one with the alerts of
        each closed window changed since the last write (its metric rules re-evaluated: late labels). Call
        before `window_rows`, which clears the changes. ``close_all`` closes every open window (the end of a
        finite run, such as the demo)."""
        if idle or close_all:
            self.store.advance_idle(2**62 if close_all else now_ms)
        self._computed.clear()
        newly = {(k[0], k[1], k[3]) for k in self.store.close_due()}
        revised = {(k[0], k[1], k[3]) for k in self.store.dirty if k in self.store.closed} - newly
        segments: dict[tuple[str, str, int], dict[str, Metrics]] = {w: {} for w in newly | revised}
        for key, acc in self.store.windows.items():
            found = segments.get((key[0], key[1], key[3]))
            if found is not None:
                found[key[2]] = self._computed[key] = self._metrics(key, acc)
        reports = []
        for (model_id, version, start), metrics in sorted(segments.items()):
            spec = self.spec_for(model_id)
            if spec.task == "binary_classification" and "" in metrics:
                for attribute in spec.protected_attributes:  # segment "" carries them (also in window_rows)
                    metrics[""].update(fairness_metrics(metrics, attribute, spec.monitor.fairness_min_group))
            end = start + self.spec_for(model_id).monitor.window_seconds * 1000
            monitor, now = self.monitor(model_id), ms_to_dt(now_ms)
            if (model_id, version, start) in newly:
                reports.append(replace(monitor.close_window(version, start, end, metrics, now), closes_window=True))
            else:  # closed earlier and changed since it was last written: late labels
                reports.append(WindowReport(model_id, version, ms_to_dt(start), ms_to_dt(end),
                                            alerts=monitor.revise_window(version, start, end, metrics, now)))
        wall = ms_to_dt(now_ms)
        for model_id, monitor in self.monitors.items():  # labels due: judge coverage and performance rules
            due = monitor.due_windows(wall)
            if not due:
                continue
            by_window: dict[tuple[str, int], dict[str, Metrics]] = {}
            for key, acc in self.store.windows.items():
                if key[0] == model_id and (key[1], key[3]) in due:
                    by_window.setdefault((key[1], key[3]), {})[key[2]] = acc.metrics()
            for (version, start), metrics in sorted(by_window.items(), key=lambda item: item[0][1]):
                end = start + self.spec_for(model_id).monitor.window_seconds * 1000
                reports.append(WindowReport(model_id, version, ms_to_dt(start), ms_to_dt(end),
                                            alerts=monitor.judge_matured(version, start, end, metrics, wall)))
        for model_id, monitor in self.monitors.items():  # no data: judged by the wall clock, also when idle
            alerts = monitor.check_no_data(wall)
            if alerts:
                reports.append(WindowReport(model_id, "", alerts[0].window_start or wall,
                                            alerts[0].window_end or wall, alerts=alerts))
        for model_id, monitor in self.monitors.items():  # late events for windows already reported: drop
            for version, start in monitor.open_windows():
                if (model_id, version, "", start) in self.store.closed or start < self.store.evicted_until.get(
                        model_id, -(2**62)):
                    monitor.windows.pop((version, start), None)
        for key in self.store.evict():
            self._serialized.pop(key, None)
            self.estimates.pop(key, None)
            self.class_scores.pop(key, None)
        for champion in list(self.pairing.waiting):
            if champion in self.store.evicted_until:
                self.pairing.expire(champion, self.store.evicted_until[champion])
        return reports

    def comparison_rows(self, now: dt.datetime | None = None) -> list[tuple[Any, ...]]:
        """Rows for ``model_comparisons`` of every champion/challenger window changed since the last call."""
        return self.pairing.rows(now)

    def take_detections(self) -> list[tuple[Any, ...]]:
        rows, self.detections = self.detections, []
        return rows

    def snapshot(self) -> bytes:
        """The whole state as bytes; windows unchanged since the previous snapshot are not re-encoded."""
        for key in self.store.changed:
            if key in self.store.windows:
                self._serialized[key] = zlib.compress(self.store.windows[key].to_bytes(), 1)
        self.store.changed.clear()
        horizon, clock, keys, stamps = self.recent.to_arrays()
        state = {
            "next_offset": self.next_offset,
            "windows": {_key_text(k): v for k, v in self._serialized.items() if k in self.store.windows},
            "dirty": [_key_text(k) for k in self.store.dirty], "closed": [_key_text(k) for k in self.store.closed],
            "clocks": {m: (c.max_event_ms, c.watermark_ms, c.idle_ms, c.sources, c.expected, c.joined)
                       for m, c in self.store.clocks.items()},
            "evicted_until": dict(self.store.evicted_until), "too_late": self.store.too_late,
            "recent": (horizon, clock, keys.tobytes(), stamps.tobytes()),
            "counts": (self.replayed, self.predictions, self.outcomes),
            "monitors": {m: monitor.to_bytes() for m, monitor in self.monitors.items()},
            "positions": dict(self.positions), "detections": list(self.detections),
            "calibrators": [[m, v, {k: a.tolist() for k, a in c.to_arrays().items()}]
                            for (m, v), c in self.calibrators.items()],
            "error_models": [[m, v, {k: a.tolist() for k, a in e.to_arrays().items()}]
                             for (m, v), e in self.error_models.items()],
            "estimates": {_key_text(k): {name: list(pair) for name, pair in e.items()}
                          for k, e in self.estimates.items()},
            "versions": self.versions.state(), "segment_values": self.segment_values.state(),
            "too_late_by_model": dict(self.store.too_late_by_model),
            "pairing": self.pairing.state(),
            "class_scores": [[_key_text(k), c.classes, c.everything, c.chosen] for k, c in self.class_scores.items()],
        }
        return encode_state("aggregator", CHECKPOINT_VERSION, state)

    @classmethod
    def restore(cls, data: bytes, spec_for: Callable[[str], ModelSpec],
                profile_for: Callable[[str], dict[str, Any] | None] = lambda _: None,
                database: str = "driftwarden", max_versions: int = 50, max_segment_values: int = 100) -> Aggregator:
        """Rebuild from `snapshot` bytes; :class:`StateDecodeError` when they are not an aggregator state (an
        old pickle checkpoint is refused, never loaded)."""
        _, state = decode_state(data, "aggregator", (CHECKPOINT_VERSION,))
        try:
            return cls._from_state(state, spec_for, profile_for, database, max_versions, max_segment_values)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, StateDecodeError):
                raise
            raise StateDecodeError(f"aggregator checkpoint refused: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _from_state(cls, state: dict[str, Any], spec_for: Callable[[str], ModelSpec],
                    profile_for: Callable[[str], dict[str, Any] | None], database: str, max_versions: int,
                    max_segment_values: int) -> Aggregator:
        horizon, clock, keys, stamps = state["recent"]
        out = cls(spec_for, horizon, profile_for, database, max_versions, max_segment_values)
        out.monitors = {m: ModelMonitor.from_bytes(blob, spec_for(m), database=database)
                        for m, blob in state["monitors"].items()}
        out.positions = dict(state["positions"])
        out.detections = list(state["detections"])
        out.next_offset = state["next_offset"]
        out.recent = RecentIds.from_arrays(horizon, clock, np.frombuffer(keys, np.uint64).copy(),
                                           np.frombuffer(stamps, np.int64).copy())
        for text, blob in state["windows"].items():
            key = _key_of(text)
            out.store.windows[key] = WindowAccumulator.from_bytes(_window_bytes(blob))
            out._serialized[key] = blob
        out.store.dirty = {_key_of(t) for t in state["dirty"]}
        out.store.closed = {_key_of(t) for t in state["closed"]}
        now_ms = time.time() * 1000
        for model_id, (max_event, watermark, idle, sources, *rest) in state["clocks"].items():
            out.store.clocks[model_id] = ModelClock(max_event, watermark, idle, dict(sources),
                                                    rest[0] if rest else 0, dict(rest[1]) if len(rest) > 1 else {})
            out.store.clocks[model_id].refresh(now_ms)
        out.replayed, out.predictions, out.outcomes = state["counts"]
        out.store.evicted_until = dict(state["evicted_until"])
        out.store.too_late = state["too_late"]
        for model_id, version, arrays in state.get("calibrators", []):
            calibrator = out.calibrators[(model_id, version)] = ScoreCalibrator()
            calibrator.load({k: np.asarray(v, np.float64) for k, v in arrays.items()})
        for model_id, version, arrays in state.get("error_models", []):
            error_model = out.error_models[(model_id, version)] = ErrorModel()
            error_model.load({k: np.asarray(v, np.float64) for k, v in arrays.items()})
        out.estimates = {_key_of(t): {name: (float(v), int(n)) for name, (v, n) in e.items()}
                         for t, e in state.get("estimates", {}).items()}
        out.pairing.load(state.get("pairing", {}))
        for text, classes, everything, chosen in state.get("class_scores", []):  # absent before multiclass CBPE
            scores = out.class_scores[_key_of(text)] = MulticlassScores(bins=CLASS_SCORE_BINS)
            scores.classes, scores.everything, scores.chosen = list(classes), everything, chosen
        if "versions" in state:  # checkpoints written before the cardinality limits have none
            out.versions = BoundedValues.from_state(state["versions"], out.versions.limit)
            out.segment_values = BoundedValues.from_state(state["segment_values"], out.segment_values.limit)
            out.store.too_late_by_model = dict(state["too_late_by_model"])
        return out


def _key_text(key: WindowKey) -> str:
    return orjson.dumps(key).decode()


def _key_of(text: str) -> WindowKey:
    model_id, version, segment, start = orjson.loads(text)
    return (model_id, version, segment, int(start))


def _by_window(versions: list[str], starts: np.ndarray) -> list[tuple[tuple[str, int], np.ndarray]]:
    """Row indices per (version, window start)."""
    groups: dict[tuple[str, int], list[int]] = {}
    for i, key in enumerate(zip(versions, starts.tolist(), strict=True)):
        groups.setdefault(key, []).append(i)
    return [(key, np.asarray(rows)) for key, rows in groups.items()]


def _labels(values: list[Any], regression: bool) -> np.ndarray:
    if regression:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    return np.asarray([class_text(v) for v in values], dtype=object)


def _window_bytes(blob: bytes) -> bytes:
    """A window's `to_bytes`: checkpoints hold it deflated (a window's dense histograms are mostly zeros: 36 KB
    become about 1.3 KB, so the checkpoint of 1,000 models is ~8 MB instead of ~100 MB); older ones hold the
    ``.npz`` itself (a zip: it starts with ``PK``)."""
    return blob if blob[:2] == b"PK" else zlib.decompress(blob)
