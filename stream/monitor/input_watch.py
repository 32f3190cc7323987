"""Online detectors on every model input (and the output), seeded from the reference profile: no warm-up.

Each value is turned into a *reference score* by its bin of the reference profile (the bin index that window
counting computes anyway), a table lookup:

- numeric: the normal score of its mid-rank in the reference, ``ndtri((F(bin-) + F(bin)) / 2)``, so any
  continuous or discrete input becomes about N(0, 1) under the reference, whatever its distribution;
- categorical: its surprise ``-ln p(category)`` (``p = 0.5 / n`` for a category the reference never saw),
  which rises when rare or new categories become more frequent and falls when the common ones do.

Scores are clipped to ±4 and standardised to mean 0, variance 1 under the reference counts. A two-sided
CUSUM (:class:`stream.monitor.cusum.CusumBank`) watches each input's score (signal ``input:<name>``) and, for
numeric inputs, its squared score, standardised likewise (``input:<name>:variance``: a spread change with an
unchanged mean). The output pseudo-feature is watched the same way (signals ``score``/``prediction`` and
``...:variance``). Missing values count as 0 (no evidence either way). A constant reference feature keeps
unstandardised scores (0 on its value, ``±ndtri(1 - 0.5 / n)`` off it: 3.3 for n = 1,000), so a move off
the constant alarms within a few values.

Categorical inputs also get an online test on their category frequencies (signal ``input:<name>:frequency``):
one two-sided CUSUM (``k = 0.25``: a frequency change is a small shift in standard deviations, p = 0.4 -> 0.6
is 0.41) per category on its standardised indicator ``(1[x = c] - p_c) / sqrt(p_c (1 - p_c))``
(``p_c`` its reference frequency; the slot of categories the reference never saw has ``p = 0.5 / n``), so a
shift of mass between categories that leaves the mean surprise unchanged is seen. The indicator's two-point
distribution is known exactly, so each side's threshold solves Lundberg's equation for it, sized for a mean
run of ``arl x K`` values per category (``K`` categories of the feature): the feature as a whole keeps about
one false alarm per ``arl`` values per side. Detections name the category (``params["category"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import ndtri

from stream.monitor.cusum import CusumAlarm, CusumBank, threshold_for
from stream.monitor.detectors import PositionClock
from stream.monitor.profiles import FeatureProfile, reference_counts

__all__ = ["InputWatch", "WatchParams", "score_tables"]

SCORE_CLIP = 4.0


@dataclass(frozen=True)
class WatchParams:
    """CUSUM reference value ``k`` (half the shift, in reference standard deviations, detected fastest) and the
    run length between false alarms each side of each signal is sized for (:func:`threshold_for`, with the
    reference mean's error of ``margin_se`` standard errors, ``margin_se / sqrt(n_ref)``, allowed for)."""

    k: float = 0.5
    arl: float = 1e7
    margin_se: float = 2.0
    enabled: bool = True
    frequencies: bool = True
    k_frequency: float = 0.25  # category indicators: frequency changes are small in standard deviations


def _standardise(z: np.ndarray, w: np.ndarray) -> np.ndarray:
    total = w.sum()
    if total <= 0:
        return np.zeros_like(z)
    mean = float((w * z).sum() / total)
    sd = float(np.sqrt((w * (z - mean) ** 2).sum() / total))
    return z - mean if sd < 1e-9 else (z - mean) / sd


def score_tables(profile: FeatureProfile) -> tuple[np.ndarray, np.ndarray | None]:
    """Score of each bin (slot) for the mean signal, and for the variance signal (numeric only); both have
    mean 0 and variance 1 under the reference counts (unless the reference has a single value).

    >>> from stream.monitor.profiles import profile_numeric
    >>> mean, var = score_tables(profile_numeric(np.array([1.0, 2.0, 3.0, 4.0]), edges=[1.0, 2.0, 3.0]))
    >>> np.round(mean, 2).tolist()
    [-1.36, -0.38, 0.38, 1.36]
    """
    c = reference_counts(profile).astype(np.float64)
    n = c.sum()
    if n <= 0:
        return np.zeros(c.size), (np.zeros(c.size) if profile.kind == "numeric" else None)
    if profile.kind == "numeric":
        u = np.clip((np.cumsum(c) - c / 2) / n, 0.5 / n, 1 - 0.5 / n)
        raw = ndtri(u)
    else:
        raw = -np.log(np.maximum(c / n, 0.5 / n))
    mean = _standardise(np.clip(_standardise(raw, c), -SCORE_CLIP, SCORE_CLIP), c)
    if profile.kind != "numeric":
        return mean, None
    return mean, _standardise(np.clip(_standardise(mean**2, c), -SCORE_CLIP, SCORE_CLIP), c)


def _thresholds(table: np.ndarray, w: np.ndarray, params: WatchParams) -> tuple[float, float]:
    n = float(w.sum())
    margin = params.margin_se / np.sqrt(n) if n > 0 else 0.0
    margin = min(margin, params.k / 2)
    return (threshold_for(table, w, params.k, params.arl, margin),
            threshold_for(-table, w, params.k, params.arl, margin))  # fmt: skip


def _columns(h: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    if not h:
        return np.ones(0), np.ones(0)
    up, down = zip(*h, strict=True)
    return np.asarray(up), np.asarray(down)


class InputWatch:
    """The CUSUMs of one model version's inputs, fed per batch with the bin indices of every input.

    ``signals`` maps each profile name to its signal name (e.g. ``"income" -> "input:income"``).
    """

    def __init__(
        self, profiles: Mapping[str, FeatureProfile], signals: Mapping[str, str], params: WatchParams
    ) -> None:
        self.names = list(profiles)
        self.signals = [signals[name] for name in self.names]
        self.params = params
        tables = [score_tables(profiles[name]) for name in self.names]
        weights = [reference_counts(profiles[name]) for name in self.names]
        # one extra 0 at the end of each table: index -1 (missing) reads it
        self.mean_tables = [np.append(m, 0.0) for m, _ in tables]
        self.var_names = [i for i, (_, v) in enumerate(tables) if v is not None]
        self.var_tables = [np.append(v, 0.0) for _, v in tables if v is not None]
        h_mean = [_thresholds(m, w, params) for (m, _), w in zip(tables, weights, strict=True)]
        h_var = [_thresholds(tables[i][1], weights[i], params) for i in self.var_names]  # type: ignore[arg-type]
        self.clock = PositionClock()
        self.mean = CusumBank(len(self.names), params.k, *_columns(h_mean))
        self.variance = CusumBank(len(self.var_names), params.k, *_columns(h_var))
        # category frequencies: one column per (categorical input, slot)
        self.freq_input: list[int] = []  # column -> index of its input
        self.freq_slot: list[int] = []  # column -> slot (category index; the last slot is 'new')
        self.freq_labels: list[str] = []
        self.freq_tables: list[tuple[int, np.ndarray]] = []  # (input, (slots + 1) x its columns: row = value's slot)
        hit: list[float] = []
        miss: list[float] = []
        h_freq: list[tuple[float, float]] = []
        for j, name in enumerate(self.names):
            prof = profiles[name]
            if prof.kind != "categorical" or not params.frequencies:
                continue
            c = weights[j].astype(np.float64)
            n = float(c.sum())
            if n <= 0 or c.size < 2:
                continue
            labels = [*prof.categories, "__new__"]
            p_all = np.where(c > 0, c / n, 0.5 / n)
            first = len(hit)
            for slot, p in enumerate(p_all.tolist()):
                sd = float(np.sqrt(p * (1 - p)))
                if sd <= 0:
                    continue
                a, b = (1 - p) / sd, -p / sd
                values, w = np.array([a, b]), np.array([p, 1 - p])
                per = WatchParams(params.k_frequency, params.arl * c.size, params.margin_se)
                h_freq.append(_thresholds(values, w * n, per))
                hit.append(a)
                miss.append(b)
                self.freq_input.append(j)
                self.freq_slot.append(slot)
                self.freq_labels.append(labels[slot])
            slots = np.asarray(self.freq_slot[first:])
            table = np.zeros((c.size + 1, slots.size))  # the last row (index -1, missing) stays 0: no evidence
            table[: c.size] = np.asarray(miss[first:])
            table[slots, np.arange(slots.size)] = hit[first:]
            self.freq_tables.append((j, table))
        self.frequency = CusumBank(len(self.freq_input), params.k_frequency, *_columns(h_freq))

    def update(self, idx: Sequence[np.ndarray]) -> list[tuple[str, CusumAlarm, float]]:
        """Feed the bin indices of one batch (one array per name, equal lengths, -1 = missing); return
        ``(signal, alarm, mean score of the alarmed run)`` per alarm, by row."""
        if len(idx) != len(self.names):
            raise ValueError(f"need bin indices of {len(self.names)} inputs, got {len(idx)}")
        rows = idx[0].size if idx else 0
        if rows == 0:
            return []
        z = np.empty((rows, len(self.names)))
        for j, (table, ix) in enumerate(zip(self.mean_tables, idx, strict=True)):
            z[:, j] = table[ix]
        out = [(self.signals[a.column], a, self._run_mean(z[:, a.column], a)) for a in self.mean.update(z)]
        if self.var_names:
            v = np.empty((rows, len(self.var_names)))
            for j, (table, col) in enumerate(zip(self.var_tables, self.var_names, strict=True)):
                v[:, j] = table[idx[col]]
            for a in self.variance.update(v):
                out.append((self.signals[self.var_names[a.column]] + ":variance", a, self._run_mean(v[:, a.column], a)))
        if self.freq_input:
            f = np.concatenate([table[idx[j]] for j, table in self.freq_tables], axis=1)  # one lookup per input
            for a in self.frequency.update(f):
                signal = self.signals[self.freq_input[a.column]] + ":frequency"
                out.append((signal, a, self._run_mean(f[:, a.column], a)))
        out.sort(key=lambda t: t[1].row)
        return out

    def _run_mean(self, col: np.ndarray, alarm: CusumAlarm) -> float:
        """Mean score of the alarmed run (the part of it in this batch)."""
        first = self.mean.seen - col.size  # both banks advance together; row numbers are shared
        lo = max(alarm.start - first, 0)
        hi = alarm.row - first + 1
        return float(col[lo:hi].mean()) if hi > lo else float("nan")

    def state(self) -> dict[str, Any]:
        """Plain state for a checkpoint (names and the two CUSUM banks' numbers)."""
        return {
            "names": self.names, "mean": self.mean.state(), "variance": self.variance.state(),
            "frequency": self.frequency.state(), "clock": [self.clock.positions, self.clock.times],
        }  # fmt: skip

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state` on a watch built from the same profiles."""
        if list(state["names"]) != self.names:
            raise ValueError("input watch checkpoint is of other inputs; start it afresh")
        self.mean = CusumBank.from_state(state["mean"])
        self.variance = CusumBank.from_state(state["variance"])
        frequency = state.get("frequency")  # absent before issue 18's frequency CUSUMs: they start afresh
        if frequency is not None and len(frequency["up"]) == self.frequency.m:
            self.frequency = CusumBank.from_state(frequency)
        else:
            self.frequency.seen = self.mean.seen
        self.clock.positions, self.clock.times = (list(x) for x in state["clock"])
