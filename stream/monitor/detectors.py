"""Online drift detectors (River's ADWIN and a seeded Page-Hinkley) over standardised signals, with checkpoints.

Both detectors see the standardised value ``z = (x - mean) / std``, clipped to ``±clip``. Mean and std
are a fixed reference when given; otherwise the first ``warmup`` values only teach the standardiser
(Welford) and, by default, its statistics are then frozen (``freeze_standardiser=False``: running
statistics of the values before ``x``).
Standardising makes a significance (ADWIN, whose bound has a term in absolute units) mean the same for every
signal. ADWIN's defaults were chosen by ``benchmarks/detector_calibration.py``.

Page-Hinkley is seeded: it tests the stream against the reference mean (``z = 0``) from the first value,
``U_t = max_s sum_{s < i <= t} (z_i - delta)`` upwards and likewise downwards
(:class:`stream.monitor.page_hinkley.PageHinkley`, vectorised per batch), and reports its change point:
the argmin of the cumulative sum, the first value of the run that crossed the threshold. River's
``PageHinkley`` learns its mean from the stream since its last reset (blind for a short stream, and a
change in the first values becomes its baseline), so it is not used. Each side's threshold is sized for a
mean run of ``ph_arl`` stationary values between false alarms on the reference distribution
(:func:`stream.monitor.cusum.threshold_for`, allowing for a reference-mean error of ``ph_margin_se``
standard errors): the reference profile's bins when the monitor is seeded, else the warm-up values. After
an alarm the side holds until the stream is back at the reference level, so a lasting change is one
detection.
False alarms and delays: ``benchmarks/detection_quality.py``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from river import drift

from stream.contracts.state_codec import StateDecodeError, decode_state, encode_state
from stream.monitor.cusum import MAX_H, threshold_for
from stream.monitor.page_hinkley import PageHinkley

__all__ = ["Detection", "DetectorParams", "MonitorBank", "SignalMonitor", "Standardiser"]

_CHECKPOINT_VERSION = 3  # 1 was a pickle, refused; 2 had River's Page-Hinkley (restored with a fresh one)
# Inputs are clamped to this magnitude: squares of larger (valid, finite) values overflow float64 and would
# leave the running mean and variance infinite, so every later z would be NaN.
_MAX_ABS = 1e100

SignalKey = tuple[str, str, str]

_NORMAL_GRID = np.linspace(-8.0, 8.0, 1601)  # N(0, 1) on a grid: Page-Hinkley's reference without a sample
_NORMAL_WEIGHTS = np.exp(-0.5 * _NORMAL_GRID**2)


def _page_hinkley(p: DetectorParams, z: np.ndarray, w: np.ndarray, n_ref: int) -> PageHinkley:
    """Two-sided Page-Hinkley (a CUSUM with ``k = delta`` against the known mean) whose thresholds give a mean
    run of ``ph_arl`` values per side on the standardised reference values ``z`` (weights ``w``)."""
    if p.ph_threshold is not None:
        return PageHinkley(p.ph_delta, p.ph_threshold)
    zc = z - float((w * z).sum() / w.sum()) if w.sum() > 0 else z  # centred: the reference mean is the baseline
    margin = min(p.ph_margin_se / math.sqrt(max(n_ref, 1)), p.ph_delta / 2)
    up = threshold_for(zc, w, p.ph_delta, p.ph_arl, margin)
    down = threshold_for(-zc, w, p.ph_delta, p.ph_arl, margin)
    if max(up, down) >= MAX_H:  # a constant reference could never alarm: size it as for N(0, 1) instead
        gauss = threshold_for(_NORMAL_GRID, _NORMAL_WEIGHTS, p.ph_delta, p.ph_arl, margin)
        up, down = min(up, gauss), min(down, gauss)
    return PageHinkley(p.ph_delta, up, down)


class Standardiser:
    """Standardise a stream with running (Welford) or fixed reference mean and standard deviation.

    Without a reference, the first ``warmup`` values only learn (Welford) and produce no output. After
    that each value is standardised with the statistics of the values before it (sample std, ``ddof=1``)
    or, if ``freeze`` (the default), with those of the warm-up values only: running statistics absorb a
    real change and turn it into a slow trend of ``z`` that detectors alarm on again and again.

    Parameters
    ----------
    warmup
        Number of leading values that only learn (ignored when a reference is given); at least 2.
    mean, std
        Fixed reference; when both are given the statistics never change.
    clip
        Standardised values are clipped to ``[-clip, clip]``.
    min_std
        Floor of the std (a constant signal gives ``z = 0`` for equal values, ``±clip`` otherwise).
    freeze
        Stop learning after the warm-up.

    Examples
    --------
    >>> s = Standardiser(warmup=2, freeze=False)
    >>> s.transform(np.array([1.0, 3.0, 2.0, 5.0])).tolist()
    [0.0, 3.0]
    """

    def __init__(
        self,
        warmup: int = 500,
        mean: float | None = None,
        std: float | None = None,
        clip: float = 10.0,
        min_std: float = 1e-12,
        freeze: bool = True,
    ) -> None:
        if (mean is None) != (std is None):
            raise ValueError("give both a reference mean and std, or neither")
        if std is not None and not (std > 0 and math.isfinite(std)):
            raise ValueError(f"reference std must be finite and > 0, got {std}")
        if mean is None and warmup < 2:
            raise ValueError(f"warmup must be >= 2 without a reference, got {warmup}")
        self.fixed = mean is not None
        self.warmup = 0 if self.fixed else int(warmup)
        self.clip = float(clip)
        self.min_std = float(min_std)
        self.freeze = freeze
        self.n = 0
        self.mean = float(mean) if mean is not None else 0.0
        self._m2 = 0.0
        self._std = float(std) if std is not None else 0.0
        self.std_at_warmup = 0.0

    @property
    def std(self) -> float:
        """Current standard deviation (reference, or sample std of the values seen; 0 if fewer than 2)."""
        if self.fixed:
            return self._std
        if self.freeze and self.n >= self.warmup:
            return self.std_at_warmup
        return math.sqrt(self._m2 / (self.n - 1)) if self.n > 1 else 0.0

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Standardise finite values ``x`` in order, learn from them, return ``z`` for the non-warm-up ones.

        The output has ``len(x) - skipped`` values, where the first ``skipped = max(0, warmup - n)``
        inputs (``n`` counted before the call) fed the warm-up.
        """
        x = np.clip(np.asarray(x, dtype=np.float64), -_MAX_ABS, _MAX_ABS)
        k = x.size
        if k == 0:
            return np.empty(0)
        if self.fixed:
            self.n += k
            z = (x - self.mean) / self._std
        elif self.freeze:
            skip = min(k, max(0, self.warmup - self.n))
            if skip:
                self._learn(x[:skip])
            self.n += k - skip
            z = (x[skip:] - self.mean) / max(self.std_at_warmup, self.min_std)
        else:
            n0, m0, m2_0 = self.n, self.mean, self._m2
            d = x - m0
            c1 = np.cumsum(d)
            c2 = np.cumsum(d * d)
            skip = min(k, max(0, self.warmup - n0))
            # statistics of the values before element i (i >= skip >= 2 - n0 guarantees >= 2 values)
            n_before = n0 + np.arange(skip, k, dtype=np.float64)
            s1 = np.concatenate(([0.0], c1[:-1]))[skip:]
            s2 = m2_0 + np.concatenate(([0.0], c2[:-1]))[skip:]
            mean_b = m0 + s1 / np.maximum(n_before, 1.0)
            m2_b = np.maximum(s2 - s1 * s1 / np.maximum(n_before, 1.0), 0.0)
            std_b = np.sqrt(m2_b / np.maximum(n_before - 1.0, 1.0))
            z = (x[skip:] - mean_b) / np.maximum(std_b, self.min_std)
            self._fold(float(c1[-1]), float(c2[-1]), k)
        return np.clip(z, -self.clip, self.clip)

    def _learn(self, x: np.ndarray) -> None:
        d = x - self.mean
        self._fold(float(d.sum()), float((d * d).sum()), x.size)
        if self.n >= self.warmup:
            self.std_at_warmup = math.sqrt(self._m2 / (self.n - 1))

    def _fold(self, s1: float, s2: float, k: int) -> None:
        # s1, s2: sum and sum of squares of the new values minus the old mean
        n = self.n + k
        self.n = n
        self.mean = self.mean + s1 / n
        self._m2 = max(self._m2 + s2 - s1 * s1 / n, 0.0)


@dataclass(frozen=True)
class DetectorParams:
    """Parameters of the detectors of one signal (River names; see ``river.drift.ADWIN``/``PageHinkley``)."""

    adwin_delta: float = 2e-5  # detector_calibration.md: at 2e-4, 3.5 false alarms per 1M on lognormal
    adwin_clock: int = 8  # measured: 1σ delay 43 vs 55 values at 32, +0.07 µs/value, FA/1M 1.0 (bernoulli)
    adwin_min_window_length: int = 5
    adwin_grace_period: int = 10
    ph_threshold: float | None = None  # None: sized for ph_arl per side on the reference distribution
    ph_delta: float = 0.25
    ph_arl: float = 1e7
    ph_margin_se: float = 2.0
    warmup: int = 1000
    freeze_standardiser: bool = True
    clip: float = 10.0
    use_adwin: bool = True
    use_page_hinkley: bool = True

    def adwin_params(self) -> dict[str, Any]:
        """ADWIN's constructor arguments."""
        return {
            "delta": self.adwin_delta,
            "clock": self.adwin_clock,
            "min_window_length": self.adwin_min_window_length,
            "grace_period": self.adwin_grace_period,
        }

    def ph_params(self) -> dict[str, Any]:
        """Page-Hinkley's parameters (two-sided; threshold None when sized per signal)."""
        return {"threshold": self.ph_threshold, "delta": self.ph_delta, "arl": self.ph_arl, "mode": "both"}


@dataclass(frozen=True)
class Detection:
    """One drift detection.

    ``position`` is the 0-based index of the triggering value among the finite values this monitor has
    seen (warm-up included); ``source_position`` and ``event_time_ms`` are the caller's position and
    event time of that value. ``estimate_before``/``estimate_after`` are in standardised units (add
    ``scale_mean`` + ``scale_std`` * estimate to get signal units approximately): for ADWIN its window mean
    before the triggering value and its shrunk window mean right after detection; for Page-Hinkley the
    reference level (0) and the mean of the run from the change point to the triggering value.
    ``change_position`` (and its event time) is the estimated first changed value: ADWIN's cut,
    Page-Hinkley's argmin of the cumulative sum.
    """

    detector: str
    model_id: str
    version: str
    signal: str
    position: int
    source_position: int
    event_time_ms: int
    estimate_before: float
    estimate_after: float
    scale_mean: float
    scale_std: float
    params: dict[str, Any] = field(default_factory=dict)
    change_position: int | None = None
    change_time_ms: int | None = None


class PositionClock:
    """Event time of a position among a monitor's values, from the first and last (position, time) of each
    batch (linear in between; stream times are non-decreasing), for the last ``cap`` batches.

    >>> c = PositionClock()
    >>> c.add(0, np.array([100, 110, 120]))
    >>> c.add(3, np.array([200, 300]))
    >>> c.time_of(1), c.time_of(3), c.time_of(9), c.time_of(-1)
    (110, 200, 300, None)
    """

    def __init__(self, cap: int = 1024) -> None:
        self.cap = cap
        self.positions: list[int] = []
        self.times: list[int] = []

    def add(self, first: int, times: np.ndarray) -> None:
        """Record a batch whose first value is at position ``first``."""
        if not len(times):
            return
        self.positions += [int(first), int(first) + len(times) - 1]
        self.times += [int(times[0]), int(times[-1])]
        if len(self.positions) > 2 * self.cap:
            del self.positions[:2], self.times[:2]

    def time_of(self, position: int) -> int | None:
        """Estimated event time (ms) of ``position``; None if older than the batches kept."""
        if not self.positions or position < self.positions[0]:
            return None
        return round(float(np.interp(position, self.positions, self.times)))


class SignalMonitor:
    """ADWIN and two-sided Page-Hinkley over one standardised signal, with counters that survive resets.

    Non-finite values (NaN, ±inf) are skipped and counted in ``n_skipped``; they do not advance positions.
    ``reference_values``/``reference_weights`` (e.g. a profile's bin means and counts) describe the reference
    distribution that sizes Page-Hinkley's thresholds; without them a seeded monitor assumes N(0, 1) scores
    and an unseeded one uses its warm-up values.
    """

    def __init__(
        self,
        model_id: str = "",
        version: str = "",
        signal: str = "",
        params: DetectorParams | None = None,
        reference_mean: float | None = None,
        reference_std: float | None = None,
        reference_values: np.ndarray | None = None,
        reference_weights: np.ndarray | None = None,
        reference_n: int | None = None,
        watch_variance: bool = False,
    ) -> None:
        self.model_id = model_id
        self.version = version
        self.signal = signal
        self.params = params or DetectorParams()
        p = self.params
        self.standardiser = Standardiser(
            p.warmup, reference_mean, reference_std, clip=p.clip, freeze=p.freeze_standardiser
        )
        self.adwin: drift.ADWIN | None = drift.ADWIN(**p.adwin_params()) if p.use_adwin else None
        self.page_hinkley: PageHinkley | None = None  # created once its thresholds are known
        self.watch_variance = watch_variance
        self.variance_ph: PageHinkley | None = None  # Page-Hinkley on the standardised squared z
        self.variance_scale = (1.0, 1.0)  # mean and std of z^2 on the reference
        self._warm: list[float] = []  # warm-up values (unseeded): they size Page-Hinkley's thresholds
        if p.use_page_hinkley and self.standardiser.fixed:
            if reference_values is not None:
                zr = np.clip((np.asarray(reference_values, dtype=np.float64) - self.standardiser.mean)
                             / self.standardiser.std, -p.clip, p.clip)  # fmt: skip
                wr = np.ones(zr.size) if reference_weights is None else np.asarray(reference_weights, float)
            else:
                zr, wr = _NORMAL_GRID, _NORMAL_WEIGHTS
            n_ref = reference_n if reference_n is not None else (int(wr.sum()) if reference_weights is not None
                                                                 else p.warmup)  # fmt: skip
            self._start_page_hinkley(zr, wr, n_ref)
        self.n_seen = 0
        self.clock = PositionClock()
        self.n_skipped = 0
        self.n_detections: dict[str, int] = {"adwin": 0, "page_hinkley": 0}
        # sum and count of the values each detector got since its last reset (for the estimates)
        self._since_reset: dict[str, list[float]] = {"adwin": [0.0, 0.0], "page_hinkley": [0.0, 0.0]}

    def update(
        self, values: np.ndarray, positions: np.ndarray, event_times_ms: np.ndarray
    ) -> list[Detection]:
        """Feed a batch in order; return its detections (ADWIN before Page-Hinkley at equal positions)."""
        x = np.asarray(values, dtype=np.float64)
        pos = np.asarray(positions)
        ts = np.asarray(event_times_ms)
        if not (x.shape == pos.shape == ts.shape) or x.ndim != 1:
            raise ValueError(
                f"values, positions, event_times_ms must be 1-D and equal length, got "
                f"{x.shape}, {pos.shape}, {ts.shape}"
            )
        finite = np.isfinite(x)
        if not finite.all():
            self.n_skipped += int(x.size - finite.sum())
            x, pos, ts = x[finite], pos[finite], ts[finite]
        first = self.n_seen
        if x.size:
            self.clock.add(first, ts)
        z = self.standardiser.transform(x)
        self.n_seen += x.size
        offset = x.size - z.size  # values of this batch consumed by the warm-up
        self._warm_up(x[:offset])
        if z.size == 0:
            return []
        adw, ph = self.adwin, self.page_hinkley
        out: list[Detection] = []
        if adw is not None:
            zl = z.tolist()
            hits_a: list[tuple[int, float, int]] = []
            a_upd = adw.update
            for i, v in enumerate(zl):
                a_upd(v)
                if adw.drift_detected:
                    hits_a.append((i, adw.estimation, adw.width))
            csum = np.concatenate(([0.0], np.cumsum(z)))
            acc = self._since_reset["adwin"]
            base_sum, base_n, start = acc[0], acc[1], 0
            for i, estimate, width in hits_a:
                s_before = base_sum + csum[i] - csum[start]
                n_before = base_n + i - start
                before = s_before / n_before if n_before else 0.0
                at = first + offset + i
                # ADWIN's cut: the values it kept after the detection are the ones after the change
                out.append(self._detection("adwin", at, pos, ts, offset + i, before, estimate, at - int(width) + 1))
                base_sum, base_n, start = 0.0, 0.0, i + 1
            acc[0] = base_sum + csum[-1] - csum[start]
            acc[1] = base_n + z.size - start
            self.n_detections["adwin"] += len(hits_a)
        if ph is not None:
            rows_before = ph.seen  # PH rows count the standardised values only
            base = first + offset - rows_before
            for alarm in ph.update(z):
                out.append(self._detection("page_hinkley", base + alarm.row, pos, ts, offset + alarm.row - rows_before,
                                           0.0, alarm.mean, base + alarm.start, alarm.threshold))  # fmt: skip
                self.n_detections["page_hinkley"] += 1
        vph = self.variance_ph
        if vph is not None:
            rows_before = vph.seen
            base = first + offset - rows_before
            m2, s2 = self.variance_scale
            for alarm in vph.update(np.clip((z * z - m2) / s2, -self.params.clip, self.params.clip)):
                out.append(self._detection("page_hinkley", base + alarm.row, pos, ts, offset + alarm.row - rows_before,
                                           0.0, alarm.mean, base + alarm.start, alarm.threshold,
                                           self.signal + ":variance"))  # fmt: skip
        out.sort(key=lambda d: (d.position, d.detector))
        return out

    def _warm_up(self, x: np.ndarray) -> None:
        """Keep the warm-up values of an unseeded monitor; once the standardiser is ready, size Page-Hinkley's
        thresholds on them (standardised) and forget them."""
        p = self.params
        if not p.use_page_hinkley or self.page_hinkley is not None:
            return
        self._warm += x.tolist()
        st = self.standardiser
        if st.n >= st.warmup and st.n > 0 and st.warmup > 0:
            sd = max(st.std, st.min_std)
            zw = np.clip((np.asarray(self._warm) - st.mean) / sd, -p.clip, p.clip)
            self._start_page_hinkley(zw, np.ones(zw.size), zw.size)
            self._warm = []

    def _start_page_hinkley(self, z: np.ndarray, w: np.ndarray, n_ref: int) -> None:
        """Page-Hinkley on ``z`` and, when watching the variance, on ``z^2`` standardised by its reference mean
        and std (left out when the reference has at most two values: ``z^2`` is then a function of ``z``)."""
        p = self.params
        self.page_hinkley = _page_hinkley(p, z, w, n_ref)
        keep = w > 0
        if not self.watch_variance or np.unique(z[keep]).size <= 2:
            return
        z2 = z * z
        mean = float((w * z2).sum() / w.sum())
        std = float(np.sqrt((w * (z2 - mean) ** 2).sum() / w.sum()))
        if std <= 1e-12:
            return
        self.variance_scale = (mean, std)
        self.variance_ph = _page_hinkley(p, np.clip((z2 - mean) / std, -p.clip, p.clip), w, n_ref)

    def _detection(
        self, name: str, position: int, pos: np.ndarray, ts: np.ndarray, k: int, before: float, after: float,
        change: int | None = None, threshold: float | None = None, signal: str | None = None,
    ) -> Detection:
        p = self.params.adwin_params() if name == "adwin" else self.params.ph_params()
        if threshold is not None:
            p["threshold"] = round(threshold, 3)
        return Detection(
            detector=name,
            model_id=self.model_id,
            version=self.version,
            signal=self.signal if signal is None else signal,
            position=position,
            source_position=int(pos[k]),
            event_time_ms=int(ts[k]),
            estimate_before=float(before),
            estimate_after=float(after),
            scale_mean=self.standardiser.mean,
            scale_std=self.standardiser.std,
            params=p,
            change_position=change,
            change_time_ms=None if change is None else self.clock.time_of(change),
        )

    def to_bytes(self, offsets: dict[str, int]) -> bytes:
        """Checkpoint the monitor (River detectors, standardiser, counters) and the caller's offsets, in the
        explicit format of :mod:`stream.contracts.state_codec` (ADWIN by River's own binary state of its
        buckets, Page-Hinkley by its running sums)."""
        st = self.standardiser
        state = {
            "key": [self.model_id, self.version, self.signal], "params": asdict(self.params),
            "standardiser": {"fixed": st.fixed, "warmup": st.warmup, "clip": st.clip, "min_std": st.min_std,
                             "freeze": st.freeze, "n": st.n, "mean": st.mean, "m2": st._m2, "std": st._std,
                             "std_at_warmup": st.std_at_warmup},
            "n_seen": self.n_seen, "n_skipped": self.n_skipped, "n_detections": dict(self.n_detections),
            "clock": {"cap": self.clock.cap, "positions": list(self.clock.positions), "times": list(self.clock.times)},
            "since_reset": {k: list(v) for k, v in self._since_reset.items()},
            "adwin": None if self.adwin is None else self.adwin._helper.__getstate__(),
            "ph": None if self.page_hinkley is None else self.page_hinkley.state(),
            "warm": list(self._warm),
            "variance": None if self.variance_ph is None else {"ph": self.variance_ph.state(),
                                                                "scale": list(self.variance_scale)},
            "watch_variance": self.watch_variance,
            "offsets": dict(offsets),
        }
        return encode_state("signal_monitor", _CHECKPOINT_VERSION, state)

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[SignalMonitor, dict[str, int]]:
        """Restore a monitor and the offsets saved by :meth:`to_bytes`; StateDecodeError if it is not one."""
        version, state = decode_state(data, "signal_monitor", (2, _CHECKPOINT_VERSION))
        try:
            model_id, version_key, signal = (str(k) for k in state["key"])
            known = {f.name for f in fields(DetectorParams)}
            saved_params = {k: v for k, v in state["params"].items() if k in known}
            if version == 2:  # River's Page-Hinkley parameters mean something else now: use today's
                saved_params = {k: v for k, v in saved_params.items() if not k.startswith("ph_")}
            monitor = cls(model_id, version_key, signal, params=DetectorParams(**saved_params))
            saved = state["standardiser"]
            st = monitor.standardiser
            st.fixed, st.warmup, st.clip, st.min_std = bool(saved["fixed"]), int(saved["warmup"]), \
                float(saved["clip"]), float(saved["min_std"])
            st.freeze, st.n, st.mean = bool(saved["freeze"]), int(saved["n"]), float(saved["mean"])
            st._m2, st._std, st.std_at_warmup = float(saved["m2"]), float(saved["std"]), \
                float(saved["std_at_warmup"])
            monitor.n_seen, monitor.n_skipped = int(state["n_seen"]), int(state["n_skipped"])
            clock = state.get("clock") or {}
            monitor.clock = PositionClock(int(clock.get("cap", monitor.clock.cap)))
            monitor.clock.positions = [int(v) for v in clock.get("positions", [])]
            monitor.clock.times = [int(v) for v in clock.get("times", [])]
            monitor.n_detections = {str(k): int(v) for k, v in state["n_detections"].items()}
            monitor._since_reset = {str(k): [float(x) for x in v] for k, v in state["since_reset"].items()}
            if monitor.adwin is not None and state["adwin"] is not None:
                monitor.adwin._helper.__setstate__(bytes(state["adwin"]))  # River's own decoder of plain numbers
            monitor._warm = [float(v) for v in state.get("warm") or []]
            monitor.watch_variance = bool(state.get("watch_variance", False))
            variance = state.get("variance")
            if variance is not None:
                monitor.variance_ph = PageHinkley.from_state(variance["ph"])
                monitor.variance_scale = (float(variance["scale"][0]), float(variance["scale"][1]))
            p = monitor.params
            if state.get("ph") is not None:
                monitor.page_hinkley = PageHinkley.from_state(state["ph"])
            elif p.use_page_hinkley and (st.fixed or st.n >= st.warmup):
                # a version-2 checkpoint: a fresh seeded Page-Hinkley (N(0, 1) thresholds), from this value on
                monitor.page_hinkley = _page_hinkley(p, _NORMAL_GRID, _NORMAL_WEIGHTS, max(st.n, p.warmup))
                monitor.page_hinkley.seen = max(monitor.n_seen - (0 if st.fixed else st.warmup), 0)
            return monitor, {str(k): int(v) for k, v in state["offsets"].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise StateDecodeError(f"signal_monitor checkpoint refused: {type(exc).__name__}: {exc}") from None


class MonitorBank:
    """Signal monitors keyed by ``(model_id, version, signal)``, created lazily with shared parameters."""

    def __init__(self, params: DetectorParams | None = None) -> None:
        self.params = params or DetectorParams()
        self.monitors: dict[SignalKey, SignalMonitor] = {}

    def get(self, key: SignalKey) -> SignalMonitor:
        """The monitor of ``key``, created with the bank's parameters if new."""
        m = self.monitors.get(key)
        if m is None:
            m = SignalMonitor(*key, params=self.params)
            self.monitors[key] = m
        return m

    def update_many(
        self, signal_key: SignalKey, values: np.ndarray, positions: np.ndarray, times: np.ndarray
    ) -> list[Detection]:
        """Feed a batch of one signal to its monitor; return the detections."""
        return self.get(signal_key).update(values, positions, times)

    def __len__(self) -> int:
        return len(self.monitors)

    def params_dict(self) -> dict[str, Any]:
        """The bank's parameters as a plain dict."""
        return asdict(self.params)
