"""Per-model monitoring: feature drift, data quality, online detectors and alerts over a prediction stream.

:class:`ModelMonitor` is pure and owned by the aggregation stage (one per model id). It keeps, per tumbling
event-time window (``window_start = ts - ts % window_ms``) and model version, the bin counts of every
feature against the reference profile (see :mod:`stream.monitor.profiles`) and a :class:`QualityAccumulator`, for
the whole model only (segment ``""``). The model output is profiled as a pseudo-feature: the score
(``__score__``, binary classification) or the prediction (``__prediction__``, regression); multiclass
models have none. Online detectors (:class:`SignalMonitor`) watch, per version, the output stream (signal
``score`` or ``prediction``) and the error stream (signal ``error``: 0/1 loss for classification,
absolute error for regression), in arrival order.

Without a reference profile the first ``monitor.reference_events`` events build one (profile_records, 100
quantile bins); those events are used for the reference only: they are neither tested for drift nor
counted in data quality. A reference given without the pseudo-feature gets that one part from the first
events' outputs in the same way. :meth:`ModelMonitor.close_window` runs the tests, the rules and the alert
state machine. Drift rows of the pseudo-feature are reported but, as it is not an input, it is left out of
the attribution and of the drift results the rules see (the output detector covers it).

Multivariate drift (models with at least 2 numeric inputs; the first 50 of them): per version, those inputs
of its first ``reference_events`` complete rows fit a :class:`PCADrift` (:class:`PCAReference`, no rows kept;
those rows are not tested by it), after which each window accumulates the reconstruction-error sums of its rows per
batch. At the close it is one more test of the window's Bonferroni family, reported as the pseudo-feature
``__multivariate__`` (test ``pca_reconstruction``, attribution in ``details``) and counted like a drifted
input in the drift results the rules see (whole model only: segments have no multivariate test).
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from stream.alerts.rules import (
    AnyRule,
    DriftResult,
    MetricHistory,
    NoDataRule,
    QualityCheck,
    RelativeRule,
    ThresholdRule,
    WindowInputs,
    evaluate_all,
    needs_labels,
    no_data,
    parse_rules,
)
from stream.alerts.state import AlertTracker
from stream.contracts.events import AlertEvent, ModelSpec
from stream.contracts.state_codec import StateDecodeError, decode_state, encode_state
from stream.monitor.detectors import Detection, DetectorParams, SignalMonitor
from stream.monitor.drift_stats import TestResult, Thresholds, attribution, compare, significance_tests
from stream.monitor.input_watch import InputWatch, WatchParams
from stream.monitor.multivariate import MAX_INPUTS, MIN_REFERENCE, MULTIVARIATE, TEST_NAME, PCADrift, PCAReference
from stream.monitor.profiles import FeatureProfile, bin_index, counts_of
from stream.monitor.quality import Columns, FeatureSpec, QualityAccumulator, QualityRow, add_grouped, to_columns
from stream.monitor.reference import ReferenceBuilder
from stream.monitor.report import WindowReport, drift_rows, ms_to_datetime, quality_rows
from stream.monitor.segments import OTHER, SegmentRanker, dimension_name, dimension_values, dimensions_of, segment_key

__all__ = ["ModelMonitor"]

_CHECKPOINT_VERSION = 2  # 1 was a pickle, refused
_MAX_KEPT_DETECTIONS = 10_000
_LABEL_DELAYS_KEPT = 1024  # recent label delays the learned label delay is the 95th percentile of
_LABEL_DELAY_UNKNOWN_MS = 3_600_000  # learned label delay before any label was seen


@dataclass
class _Segments:
    """The segments of one dimension in one open window: its top-K values when the window opened (slot ``K`` is
    ``__other__``), the bin counts of each tested feature as one (K + 1) x bins table, the quality counts per slot
    (None until the slot has rows)."""

    members: list[str]
    counts: dict[str, np.ndarray]
    quality: list[QualityAccumulator | None]


@dataclass
class _Sketch:
    """Bin counts per tested feature and quality counts of one open window, and its segments per dimension."""

    counts: dict[str, np.ndarray]
    quality: QualityAccumulator
    n: int = 0
    segments: dict[str, _Segments] = field(default_factory=dict)
    pca: np.ndarray | None = None  # PCADrift.sums of the window's rows, once its version's PCA is fitted


class ModelMonitor:
    """Drift, data quality, detectors and alerts of one model; see the module docstring.

    Parameters
    ----------
    spec
        The model's spec (features, task, monitor settings, rules; rules are parsed once here).
    reference
        Reference profile by feature name (:class:`FeatureProfile` or its ``to_dict()`` form, as the
        registry stores it); None (or empty) builds one from the first ``reference_events`` events.
    detector_params
        Parameters of every :class:`SignalMonitor`.
    watch_params
        Parameters of the online CUSUMs on every input (:class:`InputWatch`).
    database
        ClickHouse database named in the alerts' evidence queries.
    """

    def __init__(
        self,
        spec: ModelSpec,
        reference: Mapping[str, FeatureProfile | Mapping[str, Any]] | None = None,
        detector_params: DetectorParams | None = None,
        database: str = "driftwarden",
        watch_params: WatchParams | None = None,
    ) -> None:
        self.spec = spec
        self.model_id = spec.model_id
        self.window_ms = spec.monitor.window_seconds * 1000
        self.detector_params = detector_params or DetectorParams()
        self.specs = [
            FeatureSpec(f.name, f.type, f.range, None if f.categories is None else tuple(f.categories))
            for f in spec.features
        ]
        self.numeric = [f.name for f in spec.features if f.type == "numeric"]
        self.categorical = [f.name for f in spec.features if f.type == "categorical"]
        task = spec.task
        self.pseudo = {"binary_classification": "__score__", "regression": "__prediction__"}.get(task)
        self.output_signal = "score" if task == "binary_classification" else "prediction"
        rules = parse_rules([*spec.rules, *fairness_rules(spec)])
        self.rules = [r for r in rules if not isinstance(r, NoDataRule)]  # judged per window
        self.no_data_rules = [r for r in rules if isinstance(r, NoDataRule)]  # judged by the wall clock
        self.last_prediction_ms: float | None = None  # wall clock of the last prediction's arrival
        self.label_rules = [r for r in self.rules if needs_labels(r)]  # wait until a window's labels are due
        self.label_delays = np.zeros(_LABEL_DELAYS_KEPT)  # ring buffer of observed label delays (ms)
        self.label_delays_seen = 0
        self.maturing: dict[tuple[str, int], int] = {}  # (version, window start) -> wall ms its labels are due
        window = timedelta(milliseconds=self.window_ms)
        self.history = MetricHistory.for_rules(self.rules, window)
        self.tracker = AlertTracker(database)
        m = spec.monitor
        self.thresholds = Thresholds(psi=m.psi_threshold, js=m.js_threshold, alpha=m.p_value,
                                     min_samples=m.min_samples)  # fmt: skip
        self.feature_thresholds = {
            f.name: dataclasses.replace(
                self.thresholds, psi=f.psi_threshold or self.thresholds.psi, js=f.js_threshold or self.thresholds.js,
                alpha=f.p_value or self.thresholds.alpha)
            for f in spec.features if (f.psi_threshold, f.js_threshold, f.p_value) != (None, None, None)
        }
        self.retention_ms = (m.max_label_delay_seconds + m.allowed_lateness_seconds) * 1000 + self.window_ms
        given = {
            k: v if isinstance(v, FeatureProfile) else FeatureProfile.from_dict(v)
            for k, v in (reference or {}).items()
        }
        self.builder = ReferenceBuilder(
            m.reference_events, self.numeric, self.categorical, self.pseudo, given
        )
        self.windows: dict[tuple[str, int], _Sketch] = {}
        self.signals: dict[tuple[str, str], SignalMonitor] = {}
        self.detections: list[Detection] = []
        self.stream_times: dict[tuple[str, str], int] = {}
        self.watch_params = watch_params or WatchParams()
        self.watches: dict[str, InputWatch] = {}  # online detectors on the inputs, per version
        # drift and quality per segment (stream.monitor.segments): top-K values by volume per dimension
        self.dimensions = dimensions_of(spec)
        self.ranker = SegmentRanker(m.segment_top_k) if self.dimensions else None
        self.newest_start = -(2**62)  # the latest window start seen: a newer one decays the volumes
        # multivariate drift (PCA reconstruction error) per version, on the numeric inputs
        self.pca_names = self.numeric[:MAX_INPUTS] if len(self.numeric) >= 2 and m.reference_events >= MIN_REFERENCE \
            else []
        self.pca_specs = [s for s in self.specs if s.name in self.pca_names]
        self.pca: dict[str, PCAReference | PCADrift] = {}

    @property
    def reference(self) -> dict[str, FeatureProfile] | None:
        """The reference profile (with the output pseudo-feature once known); None while being built."""
        return self.builder.profile if self.builder.has_features else None

    @property
    def profiles(self) -> dict[str, FeatureProfile]:
        """Profiles tested in each window: declared features with a reference, then the pseudo-feature."""
        ref = self.reference or {}
        out = {f.name: ref[f.name] for f in self.specs if f.name in ref}
        if self.pseudo is not None and self.pseudo in ref:
            out[self.pseudo] = ref[self.pseudo]
        return out

    # --- streams ------------------------------------------------------------------------------------------

    def _outputs(self, scores: np.ndarray, predictions: np.ndarray, n: int) -> np.ndarray:
        if self.pseudo == "__score__":
            return np.asarray(scores, dtype=np.float64).reshape(-1)
        if self.pseudo == "__prediction__":
            return np.asarray(predictions, dtype=np.float64).reshape(-1)
        return np.full(n, np.nan)

    def _signal(self, version: str, signal: str) -> SignalMonitor:
        mon = self.signals.get((version, signal))
        if mon is None:
            # the output detectors start from the reference's mean and spread when it has them: no warm-up
            ref = (self.reference or {}).get(self.pseudo or "") if signal == self.output_signal else None
            seeded = ref is not None and ref.mean is not None and bool(ref.std)
            if seeded and ref is not None:  # its bins also size Page-Hinkley's thresholds
                mon = SignalMonitor(self.model_id, version, signal, self.detector_params, ref.mean, ref.std,
                                    np.asarray(ref.bin_means), np.asarray(ref.counts))  # fmt: skip
            else:  # the error stream also gets a variance signal (error:variance): a spread change of the errors
                mon = SignalMonitor(self.model_id, version, signal, self.detector_params,
                                    watch_variance=signal == "error")  # fmt: skip
            self.signals[(version, signal)] = mon
        return mon

    def _stream_time(self, version: str, signal: str, ts: np.ndarray) -> np.ndarray:
        """The time a detection is reported at: the latest event time the signal has reached, not the time of
        the value that tipped it. Values arrive out of event-time order (partitions, late labels), so a
        detection caused by values after a change can be tipped by an older value."""
        previous = self.stream_times.get((version, signal), -(2**62))
        if not ts.size:
            return ts
        reached = np.maximum.accumulate(np.maximum(np.asarray(ts, dtype=np.int64), previous))
        self.stream_times[(version, signal)] = int(reached[-1])
        return reached

    def _feed(
        self, versions: Sequence[str], signal: str, values: np.ndarray, positions: np.ndarray, ts: np.ndarray
    ) -> list[Detection]:
        found: list[Detection] = []
        for version, idx in _by_version(versions):
            sel = slice(None) if idx is None else idx
            found += self._signal(version, signal).update(values[sel], positions[sel],
                                                          self._stream_time(version, signal, ts[sel]))
        self.detections.extend(found)
        del self.detections[:-_MAX_KEPT_DETECTIONS]
        return found

    def add_predictions(
        self,
        versions: Sequence[str],
        ts_ms: np.ndarray,
        features: Sequence[Mapping[str, object]],
        scores: np.ndarray,
        predictions: np.ndarray,
        positions: np.ndarray,
        segments: Sequence[Mapping[str, str]] | None = None,
    ) -> list[Detection]:
        """Count a batch of predictions into their windows and feed the output detector.

        ``scores`` (binary; NaN if absent) and ``predictions`` (regression values; labels otherwise) are
        per event; ``positions`` are the caller's positions (e.g. offsets) reported in detections; ``segments``
        (optional) each event's segment fields, for drift and quality per segment. While a reference is being
        built, the leading events of the stream are used for it only. Returns the output detector's detections
        of this batch.
        """
        ts = np.asarray(ts_ms, dtype=np.int64).reshape(-1)
        n = ts.size
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        if not (len(versions) == len(features) == pos.size == n):
            raise ValueError(
                f"versions, ts_ms, features and positions need one entry per event; got {len(versions)}, "
                f"{n}, {len(features)}, {pos.size}"
            )
        outputs = self._outputs(scores, predictions, n)
        if outputs.size != n:
            raise ValueError(f"need one {self.output_signal} per event: {outputs.size} for {n} events")
        found = self._feed(versions, self.output_signal, outputs, pos, ts) if self.pseudo else []
        first_f, first_o = self.builder.add(features, outputs) if n and not self.builder.done else (0, 0)
        pca_ref = self._pca_reference(versions, features) if self.pca_names and n else None
        starts = ts - np.mod(ts, self.window_ms)
        dim_values = self._rank_segments(segments, starts) if self.ranker is not None and segments is not None \
            else {}
        if self.reference is None or n == 0:
            return found
        profiles = self.profiles
        for (version, start), idx in _groups(versions, starts):
            sketch = self._sketch(version, start, profiles)
            rows = idx[idx >= first_f]
            bins: dict[str, np.ndarray] = {}
            if rows.size:
                cols = to_columns([features[i] for i in rows.tolist()], self.specs)
                sketch.quality.add_columns(cols)
                sketch.n += int(rows.size)
                for name in self.numeric + self.categorical:
                    p = profiles.get(name)
                    if p is not None:
                        values = cols.numeric[name] if name in cols.numeric else cols.categorical[name]
                        bins[name] = bin_index(p, values)
                        sketch.counts[name] += counts_of(p, bins[name])
            out_rows = idx[idx >= first_o]
            if self.pseudo in profiles and out_rows.size:
                assert self.pseudo is not None
                bins[self.pseudo] = bin_index(profiles[self.pseudo], outputs[out_rows])
                sketch.counts[self.pseudo] += counts_of(profiles[self.pseudo], bins[self.pseudo])
            pca = self.pca.get(version)
            if rows.size and isinstance(pca, PCADrift):  # vectorised: standardise, project, residual sums
                x = np.column_stack([cols.numeric[name] for name in self.pca_names])
                sums = pca.sums(x if pca_ref is None else x[~pca_ref[rows]])
                sketch.pca = sums if sketch.pca is None else sketch.pca + sums
            if dim_values:
                self._add_segments(sketch, profiles, dim_values, idx, first_f, first_o, cols if rows.size else None,
                                   bins)
            # the online input detectors see whole rows only (none while a reference is being built)
            if self.watch_params.enabled and rows.size and (self.pseudo not in bins or out_rows.size == rows.size):
                found += self._watch(version, profiles, bins, pos[rows], ts[rows])
        return found

    def _pca_reference(self, versions: Sequence[str], features: Sequence[Mapping[str, object]]) -> np.ndarray | None:
        """Feed each version still collecting its PCA reference the leading rows it needs; the mask of the
        batch's rows that went to a reference (None when none did)."""
        mask: np.ndarray | None = None
        for version, idx in _by_version(versions):
            ref = self.pca.get(version)
            if isinstance(ref, PCADrift):
                continue
            if ref is None:
                ref = self.pca[version] = PCAReference(self.pca_names, self.spec.monitor.reference_events)
            rows = np.arange(len(features)) if idx is None else idx
            at = 0
            while ref.result is None and at < rows.size:  # parse only about as many rows as it still needs
                need = ref.size - ref.n - int(ref.held[0])
                chunk = rows[at: at + need]
                cols = to_columns([features[i] for i in chunk.tolist()], self.pca_specs)
                at += ref.add(np.column_stack([cols.numeric[name] for name in self.pca_names]))
            if mask is None:
                mask = np.zeros(len(features), dtype=bool)
            mask[rows[:at]] = True
            if ref.result is not None:
                self.pca[version] = ref.result
        return mask

    def _watch(
        self, version: str, profiles: Mapping[str, FeatureProfile], bins: Mapping[str, np.ndarray],
        pos: np.ndarray, ts: np.ndarray,
    ) -> list[Detection]:
        """Feed the bin indices of one version's rows to its input CUSUMs; return their detections."""
        names = [name for name in profiles if name in bins]
        watch = self.watches.get(version)
        if watch is None or watch.names != names:
            signals = {n: self.output_signal if n == self.pseudo else f"input:{n}" for n in names}
            watch = self.watches[version] = InputWatch({n: profiles[n] for n in names}, signals, self.watch_params)
        times = self._stream_time(version, "inputs", ts)
        first = watch.mean.seen
        watch.clock.add(first, times)
        found: list[Detection] = []
        for signal, alarm, run_mean in watch.update([bins[n] for n in names]):
            k = alarm.row - first
            params: dict[str, Any] = {"k": watch.params.k, "h": round(alarm.threshold, 3), "side": alarm.side}
            if signal.endswith(":variance"):
                column = watch.var_names[alarm.column]
            elif signal.endswith(":frequency"):
                column = watch.freq_input[alarm.column]
                params["category"] = watch.freq_labels[alarm.column]
            else:
                column = alarm.column
            prof = profiles[names[column]]
            found.append(Detection(
                detector="cusum", model_id=self.model_id, version=version, signal=signal, position=alarm.row,
                source_position=int(pos[k]), event_time_ms=int(times[k]), estimate_before=0.0,
                estimate_after=run_mean, scale_mean=prof.mean or 0.0, scale_std=prof.std or 1.0,
                params=params,
                change_position=alarm.start, change_time_ms=watch.clock.time_of(alarm.start),
            ))  # fmt: skip
        self.detections.extend(found)
        del self.detections[:-_MAX_KEPT_DETECTIONS]
        return found

    def _rank_segments(self, segments: Sequence[Mapping[str, str]], starts: np.ndarray) -> dict[str, list[str | None]]:
        """Count the batch's segment values into the volumes; each dimension's value per event."""
        assert self.ranker is not None
        if len(segments) != starts.size:
            raise ValueError(f"need one segment per event: {len(segments)} for {starts.size} events")
        if starts.size and int(starts.max()) > self.newest_start:
            if self.newest_start > -(2**62):
                self.ranker.decay()
            self.newest_start = int(starts.max())
        out: dict[str, list[str | None]] = {}
        for dim in self.dimensions:
            name = dimension_name(dim)
            out[name] = dimension_values(dim, segments)
            self.ranker.observe(name, out[name])
        return out

    def _add_segments(
        self, sketch: _Sketch, profiles: Mapping[str, FeatureProfile], dim_values: Mapping[str, list[str | None]],
        idx: np.ndarray, first_f: int, first_o: int, cols: Columns | None, bins: Mapping[str, np.ndarray],
    ) -> None:
        """Count one window's rows ``idx`` into its segments: per dimension, one ``bincount`` over (slot, bin) per
        feature on the bin indices the whole model computed, and the quality counts of all slots in one pass."""
        assert self.ranker is not None
        f_sel, o_sel = idx >= first_f, idx >= first_o
        for dim in self.dimensions:
            name = dimension_name(dim)
            seg = sketch.segments.get(name)
            if seg is None:
                members = self.ranker.members(name)
                seg = sketch.segments[name] = _Segments(members, {}, [None] * (len(members) + 1))
            slots = len(seg.members) + 1
            lookup: dict[str | None, int] = {v: i for i, v in enumerate(seg.members)}
            lookup[None] = -1  # the event lacks a field of this dimension
            values = dim_values[name]
            codes = np.fromiter(map(lookup.get, [values[i] for i in idx.tolist()], repeat(slots - 1)), np.int64,
                                idx.size)
            codes_f, codes_o = codes[f_sel], codes[o_sel]
            for feature, b in bins.items():
                c = codes_o if feature == self.pseudo else codes_f
                nb = profiles[feature].n_bins
                table = seg.counts.get(feature)
                if table is None:
                    table = seg.counts[feature] = np.zeros((slots, nb), dtype=np.int64)
                ok = (c >= 0) & (b >= 0)
                table += np.bincount(c[ok] * nb + b[ok], minlength=slots * nb).reshape(slots, nb)
            if cols is not None:
                for j in np.flatnonzero(np.bincount(codes_f[codes_f >= 0], minlength=slots)).tolist():
                    if seg.quality[j] is None:
                        seg.quality[j] = QualityAccumulator(self.specs, self.reference)
                add_grouped(seg.quality, cols, codes_f)

    def _sketch(self, version: str, start: int, profiles: Mapping[str, FeatureProfile]) -> _Sketch:
        sketch = self.windows.get((version, start))
        if sketch is None:
            counts = {name: np.zeros(p.n_bins, dtype=np.int64) for name, p in profiles.items()}
            sketch = _Sketch(counts, QualityAccumulator(self.specs, self.reference))
            self.windows[(version, start)] = sketch
        for name, p in profiles.items():  # a profile completed after the window opened
            sketch.counts.setdefault(name, np.zeros(p.n_bins, dtype=np.int64))
        return sketch

    def add_outcomes(
        self,
        versions: Sequence[str],
        ts_ms: np.ndarray,
        y_true: np.ndarray,
        y_pred: np.ndarray,
        scores: np.ndarray,
        positions: np.ndarray,
    ) -> list[Detection]:
        """Feed labelled outcomes' errors to the ``error`` detector of each version; return its detections.

        Classification labels are compared as ``str`` (normalise them first, as the aggregator does with
        ``class_text``); regression uses ``|y_true - y_pred|`` (NaN is skipped). ``scores`` is not used.
        """
        ts = np.asarray(ts_ms, dtype=np.int64).reshape(-1)
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        if self.spec.task == "regression":
            err = np.abs(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64))
        else:
            err = (np.asarray(y_true).astype(str) != np.asarray(y_pred).astype(str)).astype(np.float64)
        err = err.reshape(-1)
        if not (err.size == pos.size == ts.size == len(versions)):
            raise ValueError(
                f"outcome arrays differ in length: {err.size}, {pos.size}, {ts.size}, {len(versions)}"
            )
        return self._feed(versions, "error", err, pos, ts) if ts.size else []

    # --- label maturity -----------------------------------------------------------------------------------

    def observe_label_delays(self, delays_ms: np.ndarray) -> None:
        """Remember the delays (label time minus prediction time) of a batch of labelled outcomes."""
        d = np.asarray(delays_ms, dtype=np.float64).reshape(-1)[-_LABEL_DELAYS_KEPT:]
        if d.size:
            self.label_delays[(self.label_delays_seen + np.arange(d.size)) % _LABEL_DELAYS_KEPT] = d
            self.label_delays_seen += int(d.size)

    def label_delay_ms(self) -> int:
        """The model's expected label delay: declared in its spec, else learned (see ``label_delay_seconds``)."""
        m = self.spec.monitor
        if m.label_delay_seconds is not None:
            return m.label_delay_seconds * 1000
        n = min(self.label_delays_seen, _LABEL_DELAYS_KEPT)
        if n == 0:
            return _LABEL_DELAY_UNKNOWN_MS
        learned = float(np.percentile(self.label_delays[:n], 95))
        return int(min(max(learned, 0.0), m.max_label_delay_seconds * 1000))

    def due_windows(self, now: datetime) -> list[tuple[str, int]]:
        """``(version, window start)`` of the closed windows whose labels fell due by ``now``; forgets them."""
        now_ms = now.timestamp() * 1000
        due = sorted((k for k, at in self.maturing.items() if at <= now_ms), key=lambda k: (k[1], k[0]))
        for key in due:
            del self.maturing[key]
        return due

    def judge_matured(
        self,
        model_version: str,
        window_start_ms: int,
        window_end_ms: int,
        metrics_by_segment: Mapping[str, Mapping[str, tuple[float, int]]],
        now: datetime,
    ) -> list[AlertEvent]:
        """Judge the label coverage and performance rules of a window whose labels are now due."""
        start, end = ms_to_datetime(window_start_ms), ms_to_datetime(window_end_ms)
        return self._evaluate(self.label_rules, model_version, start, end, metrics_by_segment, now)

    # --- no data ------------------------------------------------------------------------------------------

    def saw_predictions(self, wall_ms: float) -> None:
        """Note that predictions of this model arrived at wall-clock time ``wall_ms``."""
        self.last_prediction_ms = wall_ms

    def check_no_data(self, now: datetime) -> list[AlertEvent]:
        """Judge the no-data rules by the wall clock ``now`` (called on a timer, also when the stream is idle).

        A model that never sent a prediction is not judged. The alert is of the whole model (version and
        segment ``""``); the window it names is the wall-clock window holding ``now``.
        """
        if not self.no_data_rules or self.last_prediction_ms is None:
            return []
        now_ms = int(now.timestamp() * 1000)
        silence = timedelta(milliseconds=max(0.0, now_ms - self.last_prediction_ms))
        window = timedelta(milliseconds=self.window_ms)
        start = now_ms - now_ms % self.window_ms
        inputs = WindowInputs(self.model_id, "", "", ms_to_datetime(start), ms_to_datetime(start + self.window_ms))
        return self.tracker.observe(inputs, [no_data(r, silence, window) for r in self.no_data_rules], now)

    # --- windows ------------------------------------------------------------------------------------------

    def open_windows(self) -> list[tuple[str, int]]:
        """``(model_version, window_start_ms)`` of the windows counted and not closed yet."""
        return sorted(self.windows)

    def close_window(
        self,
        model_version: str,
        window_start_ms: int,
        window_end_ms: int,
        metrics_by_segment: Mapping[str, Mapping[str, tuple[float, int]]],
        now: datetime,
    ) -> WindowReport:
        """Test, check and evaluate the rules of one window; forget its sketch.

        ``metrics_by_segment`` maps each segment (``""`` = whole model) to that window's metrics
        (``WindowAccumulator.metrics()``). Every segment's rules are evaluated (``""`` always); drift,
        quality and detections are whole-model results and go to segment ``""`` only. Closing a window
        with no events gives insufficient tests; a later event for a closed window opens it again.
        """
        sketch = self.windows.pop((model_version, window_start_ms), None)
        start, end = ms_to_datetime(window_start_ms), ms_to_datetime(window_end_ms)
        profiles = self.profiles
        results: dict[str, list[TestResult]] = {}
        n_tests = sum(significance_tests(p) for p in profiles.values())  # Bonferroni over the whole window
        pca = self.pca.get(model_version)
        family = n_tests + bool(self.pca_names)  # the multivariate test is one more member (fitted or not yet)
        for name, p in profiles.items():
            counts = sketch.counts.get(name) if sketch is not None else None
            window_counts = counts if counts is not None else np.zeros(p.n_bins, dtype=np.int64)
            thresholds = self.feature_thresholds.get(name, self.thresholds)
            results[name] = compare(p, window_counts, thresholds=thresholds, n_tests=family)
        details: dict[str, str] = {}
        if isinstance(pca, PCADrift):
            sums = sketch.pca if sketch is not None and sketch.pca is not None else np.zeros(3 + len(pca.names))
            v = pca.judge(sums, self.thresholds.alpha / family, min_samples=self.thresholds.min_samples)
            results[MULTIVARIATE] = [TestResult(TEST_NAME, v.statistic, v.p_value, v.level, v.drifted,
                                                v.insufficient, v.n)]  # fmt: skip
            details[MULTIVARIATE] = orjson.dumps(v.details()).decode()
        elif self.pca_names:  # its reference is still being collected: insufficient
            collected = 0 if pca is None else pca.n + int(pca.held[0])
            results[MULTIVARIATE] = [TestResult(TEST_NAME, float("nan"), None, self.thresholds.alpha / family,
                                                False, True, 0)]  # fmt: skip
            details[MULTIVARIATE] = orjson.dumps({"reference_rows": collected,
                                                  "reference_events": self.spec.monitor.reference_events}).decode()
        acc = sketch.quality if sketch is not None else QualityAccumulator(self.specs, self.reference)
        quality = acc.results()
        inputs_only = {k: v for k, v in results.items() if k != self.pseudo}
        drifted = tuple(sorted(k for k, rs in inputs_only.items() if any(r.drifted for r in rs)))
        ranking = [(name, psi, name in drifted) for name, psi in attribution(inputs_only)]
        drift = [
            DriftResult(k, r.test, r.statistic, r.p_value, r.drifted)
            for k, rs in inputs_only.items()
            for r in rs
        ]
        hits = [
            d for d in self.detections
            if d.version == model_version and window_start_ms <= d.event_time_ms < window_end_ms
        ]  # fmt: skip
        rules = self.rules
        delay = self.label_delay_ms() if self.label_rules else 0
        if delay > 0:  # label rules are judged once the labels are due (judge_matured)
            self.maturing[(model_version, window_start_ms)] = int(now.timestamp() * 1000) + delay
            rules = [r for r in self.rules if not needs_labels(r)]
        seg_results, seg_quality, seg_inputs = self._segment_results(sketch, profiles, n_tests)
        alerts = self._evaluate(rules, model_version, start, end, metrics_by_segment, now, drift, hits, quality,
                                seg_inputs)
        cutoff = window_end_ms - self.retention_ms
        self.detections = [d for d in self.detections if d.event_time_ms >= cutoff]
        return WindowReport(
            model_id=self.model_id,
            model_version=model_version,
            window_start=start,
            window_end=end,
            feature_drift=drift_rows(self.model_id, model_version, start, end, results, details=details) + [
                row for seg, res in seg_results.items()
                for row in drift_rows(self.model_id, model_version, start, end, res, seg)],
            data_quality=quality_rows(self.model_id, model_version, start, end, quality) + [
                row for seg, q in seg_quality.items()
                for row in quality_rows(self.model_id, model_version, start, end, q, seg)],
            alerts=alerts,
            attribution=ranking,
            drifted_features=drifted,
            detections=hits,
            samples=0 if sketch is None else sketch.n,
        )

    def _segment_results(
        self, sketch: _Sketch | None, profiles: Mapping[str, FeatureProfile], n_tests: int,
    ) -> tuple[dict[str, dict[str, list[TestResult]]], dict[str, list[QualityRow]],
               dict[str, tuple[list[DriftResult], list[QualityRow]]]]:
        """Drift tests and quality checks of every segment of a closing window, and what the rules see of them.

        The segment tests form their own family: Bonferroni over every significance test of every segment with
        at least ``min_samples`` events (segments with fewer can never flag), so on unchanged data some
        segment of a model window is flagged with probability at most ``alpha`` (the whole-model tests keep
        their own ``alpha``)."""
        parts: dict[str, tuple[dict[str, np.ndarray], QualityAccumulator]] = {}
        for dim in self.dimensions:
            seg = sketch.segments.get(dimension_name(dim)) if sketch is not None else None
            if seg is None:
                continue
            for j, acc in enumerate(seg.quality):
                if acc is None:
                    continue
                key = segment_key(dim, seg.members[j] if j < len(seg.members) else OTHER)
                parts[key] = ({f: table[j] for f, table in seg.counts.items()}, acc)
        tested = sum(acc.n >= self.thresholds.min_samples for _, acc in parts.values())
        family = n_tests * max(tested, 1)
        results: dict[str, dict[str, list[TestResult]]] = {}
        quality: dict[str, list[QualityRow]] = {}
        inputs: dict[str, tuple[list[DriftResult], list[QualityRow]]] = {}
        for key in sorted(parts):
            counts, acc = parts[key]
            res = {name: compare(p, counts.get(name, np.zeros(p.n_bins, dtype=np.int64)),
                                 thresholds=self.feature_thresholds.get(name, self.thresholds), n_tests=family)
                   for name, p in profiles.items()}
            results[key], quality[key] = res, acc.results()
            drift = [DriftResult(k, r.test, r.statistic, r.p_value, r.drifted)
                     for k, rs in res.items() if k != self.pseudo for r in rs]
            inputs[key] = (drift, quality[key])
        return results, quality, inputs

    def revise_window(
        self,
        model_version: str,
        window_start_ms: int,
        window_end_ms: int,
        metrics_by_segment: Mapping[str, Mapping[str, tuple[float, int]]],
        now: datetime,
    ) -> list[AlertEvent]:
        """Re-evaluate the metric rules (threshold, relative) of a window closed earlier whose metrics late
        labels (or late predictions) changed, and record its new metrics for later baselines.

        Labels often arrive hours after the window closed, so at its close a window may have too few labelled
        outcomes for a performance rule. Drift, quality and detector rules keep the verdict of the close: their
        inputs do not change with labels. The alert tracker recognises a re-observed window, so an unchanged
        verdict emits nothing.
        """
        immature = (model_version, window_start_ms) in self.maturing
        rules = [r for r in self.rules if isinstance(r, ThresholdRule | RelativeRule)
                 and not (immature and needs_labels(r))]
        if not rules:
            return []
        start, end = ms_to_datetime(window_start_ms), ms_to_datetime(window_end_ms)
        return self._evaluate(rules, model_version, start, end, metrics_by_segment, now)

    def _evaluate(
        self,
        rules: Sequence[AnyRule],
        model_version: str,
        start: datetime,
        end: datetime,
        metrics_by_segment: Mapping[str, Mapping[str, tuple[float, int]]],
        now: datetime,
        drift: Sequence[DriftResult] = (),
        hits: Sequence[Detection] = (),
        quality: Sequence[QualityCheck] = (),
        segment_inputs: Mapping[str, tuple[Sequence[DriftResult], Sequence[QualityCheck]]] | None = None,
    ) -> list[AlertEvent]:
        """``rules`` over the whole model (segment ``""``, with the drift, detector and quality results) and
        every other segment of the window (its metrics, and its drift and quality results when
        ``segment_inputs`` has them); the alert events the tracker emits."""
        alerts: list[AlertEvent] = []
        by_segment = segment_inputs or {}
        for seg in ["", *sorted({*metrics_by_segment, *by_segment} - {""})]:
            whole = seg == ""
            seg_drift, seg_quality = by_segment.get(seg, ((), ()))
            inputs = WindowInputs(
                self.model_id, model_version, seg, start, end, dict(metrics_by_segment.get(seg, {})),
                drift if whole else seg_drift, hits if whole else (), quality if whole else seg_quality,
            )  # fmt: skip
            alerts += self.tracker.observe(inputs, evaluate_all(rules, inputs, self.history), now)
        return alerts

    # --- checkpoints --------------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Checkpoint the whole state: reference (and its builders), open windows, detectors, recent
        detections, alert state and rule history, in the explicit format of :mod:`stream.contracts.state_codec`."""
        state = {
            "model_id": self.model_id,
            "reference": self.builder.state(),
            "windows": {
                key: (s.n, {k: c.tolist() for k, c in s.counts.items()}, s.quality.to_bytes())
                for key, s in self.windows.items()
            },
            "signals": {key: mon.to_bytes({}) for key, mon in self.signals.items()},
            "detections": [dataclasses.asdict(d) for d in self.detections],
            "stream_times": self.stream_times,
            "watches": {v: w.state() for v, w in self.watches.items()},
            "tracker": self.tracker.to_bytes(),
            "history": self.history.to_bytes(),
            "last_prediction_ms": self.last_prediction_ms,
            "label_delays": self.label_delays[: min(self.label_delays_seen, _LABEL_DELAYS_KEPT)].tolist(),
            "label_delays_seen": self.label_delays_seen,
            "maturing": [[version, start, at] for (version, start), at in self.maturing.items()],
            # deflated: (K + 1) x bins count tables per feature are mostly zeros (about 10x smaller)
            "segment_windows": zlib.compress(encode_state("monitor_segments", 1, {
                key: {dim: [seg.members, seg.counts, [None if q is None else q.to_bytes() for q in seg.quality]]
                      for dim, seg in s.segments.items()}
                for key, s in self.windows.items() if s.segments
            }), 1),
            "segment_ranker": None if self.ranker is None else self.ranker.state(),
            "newest_start": self.newest_start,
            # multivariate (issue 18): the fitted PCA or the reference sums so far, per version; window sums
            "pca": {v: {"fitted": p.state()} if isinstance(p, PCADrift) else {"building": p.state()}
                    for v, p in self.pca.items()},
            "pca_windows": {key: s.pca for key, s in self.windows.items() if s.pca is not None},
        }
        return encode_state("model_monitor", _CHECKPOINT_VERSION, state)

    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        spec: ModelSpec,
        detector_params: DetectorParams | None = None,
        database: str = "driftwarden",
    ) -> ModelMonitor:
        """Restore a monitor saved by :meth:`to_bytes` for the same model (rules come from ``spec``)."""
        _, state = decode_state(data, "model_monitor", (_CHECKPOINT_VERSION,))
        try:
            return cls._from_state(state, spec, detector_params, database)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, StateDecodeError):
                raise
            raise StateDecodeError(f"model_monitor checkpoint refused: {type(exc).__name__}: {exc}") from None

    @classmethod
    def _from_state(cls, state: dict[str, Any], spec: ModelSpec, detector_params: DetectorParams | None,
                    database: str) -> ModelMonitor:
        if state["model_id"] != spec.model_id:
            raise ValueError(f"checkpoint is of model {state['model_id']!r}, not {spec.model_id!r}")
        mon = cls(spec, None, detector_params, database)
        mon.builder.restore(state["reference"])
        for key, (n, counts, quality) in state["windows"].items():
            acc = QualityAccumulator.from_bytes(quality, mon.specs, mon.reference)
            mon.windows[key] = _Sketch({k: np.asarray(c, dtype=np.int64) for k, c in counts.items()}, acc, n)
        mon.signals = {key: SignalMonitor.from_bytes(raw)[0] for key, raw in state["signals"].items()}
        mon.detections = [Detection(**d) for d in state["detections"]]
        mon.stream_times = dict(state["stream_times"])
        for version, watch_state in state.get("watches", {}).items():
            names = list(watch_state["names"])
            signals = {n: mon.output_signal if n == mon.pseudo else f"input:{n}" for n in names}
            profiles = mon.profiles
            if all(n in profiles for n in names):
                watch = InputWatch({n: profiles[n] for n in names}, signals, mon.watch_params)
                watch.restore(watch_state)
                mon.watches[version] = watch
        mon.tracker = AlertTracker.from_bytes(state["tracker"])
        mon.history = MetricHistory.from_bytes(state["history"])
        mon.last_prediction_ms = state.get("last_prediction_ms")
        delays = state.get("label_delays", [])
        mon.label_delays[: len(delays)] = delays
        mon.label_delays_seen = int(state.get("label_delays_seen", 0))
        mon.maturing = {(version, int(start)): int(at) for version, start, at in state.get("maturing", [])}
        # segments (issue 17): absent from older checkpoints, whose windows then have whole-model sketches only
        segment_windows = state.get("segment_windows", {})
        if isinstance(segment_windows, bytes):
            segment_windows = decode_state(zlib.decompress(segment_windows), "monitor_segments")[1]
        for key, dims in segment_windows.items():
            if key in mon.windows:
                mon.windows[key].segments = {
                    str(dim): _Segments(
                        [str(v) for v in members], {f: np.asarray(t, dtype=np.int64) for f, t in counts.items()},
                        [None if q is None else QualityAccumulator.from_bytes(q, mon.specs, mon.reference)
                         for q in quality])
                    for dim, (members, counts, quality) in dims.items()}
        if mon.ranker is not None and state.get("segment_ranker") is not None:
            mon.ranker = SegmentRanker.from_state(state["segment_ranker"], mon.ranker.k)
        mon.newest_start = int(state.get("newest_start", mon.newest_start))
        # multivariate: absent from older checkpoints (every version then collects its reference afresh), and
        # dropped if the spec's numeric inputs changed
        for version, pca_state in state.get("pca", {}).items():
            restored = PCADrift.from_state(pca_state["fitted"]) if "fitted" in pca_state \
                else PCAReference.from_state(pca_state["building"])
            if restored.names == mon.pca_names:
                mon.pca[str(version)] = restored
        for key, sums in state.get("pca_windows", {}).items():
            if key in mon.windows and isinstance(mon.pca.get(key[0]), PCADrift) \
                    and np.shape(sums) == (3 + len(mon.pca_names),):
                mon.windows[key].pca = np.asarray(sums, dtype=np.float64)
        return mon


def fairness_rules(spec: ModelSpec) -> list[dict[str, Any]]:
    """Default rules of a binary classifier with protected attributes: the four-fifths rule per attribute
    (``disparate_impact:<attr>`` below 0.8); a user rule of the same name replaces it."""
    if spec.task != "binary_classification":
        return []
    own = {r.get("name") for r in spec.rules if isinstance(r, Mapping)}
    out = []
    for attribute in spec.protected_attributes:
        name = f"default-disparate-impact:{attribute}"
        if name not in own:
            out.append({"name": name, "kind": "threshold", "metric": f"disparate_impact:{attribute}", "op": "<",
                        "value": 0.8, "min_samples": spec.monitor.fairness_min_group})
    return out


def _by_version(versions: Sequence[str]) -> list[tuple[str, np.ndarray | None]]:
    """Row indices per version, in first-seen order; None means "every row" (one version)."""
    if not len(versions):
        return []
    first = versions[0]
    if list(versions).count(first) == len(versions):
        return [(first, None)]
    groups: dict[str, list[int]] = {}
    for i, v in enumerate(versions):
        groups.setdefault(v, []).append(i)
    return [(v, np.asarray(idx, dtype=np.intp)) for v, idx in groups.items()]


def _groups(versions: Sequence[str], starts: np.ndarray) -> list[tuple[tuple[str, int], np.ndarray]]:
    """Row indices (ascending) per ``(version, window_start)``."""
    out: list[tuple[tuple[str, int], np.ndarray]] = []
    every = np.arange(starts.size)
    for version, idx in _by_version(versions):
        rows = every if idx is None else idx
        s = starts[rows]
        uniq, inverse = np.unique(s, return_inverse=True)
        if uniq.size == 1:
            out.append(((version, int(uniq[0])), rows))
            continue
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))[:-1]
        for u, part in zip(uniq.tolist(), np.split(rows[order], bounds), strict=True):
            out.append(((version, int(u)), part))
    return out
