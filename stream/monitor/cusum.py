"""Two-sided CUSUM on many standardised streams at once, vectorised per batch, with change-point estimates.

Page's CUSUM for a mean shift of a stream ``z`` that is N(0, 1)-like when nothing changed: the upper statistic
``S+_t = max(0, S+_{t-1} + z_t - k)`` and the lower ``S-_t = max(0, S-_{t-1} - z_t - k)``; an alarm when either
exceeds ``h``, then both restart at 0. The change point estimate is the first value of the run that raised the
statistic (the value after its last zero), the maximum-likelihood change point of the CUSUM (Page 1954).

A batch of ``T`` values of ``m`` streams is a ``T x m`` array processed with ``cumsum``/``minimum.accumulate``
(Lindley's recursion: ``S_t = C_t - min(-S_0, min_{s<=t} C_s)`` with ``C`` the cumulative sum of ``z - k``),
so the cost per value is a few numpy operations, not a Python loop. Alarms are rare; the rows after an alarm
of a stream are processed again from a zero statistic.

Defaults (``k = 0.5``, ``h = 15``): by Siegmund's approximation, an average run length of ~2e7 values per side
between false alarms for N(0, 1) input, and ~30 values to detect a 1σ mean shift; measured in
``benchmarks/detection_quality.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CusumAlarm", "CusumBank", "threshold_for"]

MAX_H = 1e6  # a side that can never alarm (its increments are never positive) gets this threshold


@dataclass(frozen=True)
class CusumAlarm:
    """One alarm: stream ``column``; ``row`` and ``start`` are 0-based positions among the values that stream
    has seen (``start`` = estimated first changed value); ``side`` is ``"up"`` or ``"down"``."""

    column: int
    row: int
    start: int
    side: str
    statistic: float
    threshold: float


class CusumBank:
    """Two-sided CUSUM of ``m`` streams fed together (one column each).

    Examples
    --------
    >>> bank = CusumBank(1, k=0.5, h=4.0)
    >>> z = np.concatenate([np.zeros(10), np.full(10, 1.5)])[:, None]
    >>> [(a.row, a.start, a.side) for a in bank.update(z)]  # restarts after an alarm
    [(14, 10, 'up'), (19, 15, 'up')]
    """

    def __init__(
        self, m: int, k: float = 0.5, h: float | np.ndarray = 15.0, h_down: float | np.ndarray | None = None
    ) -> None:
        self.k = float(k)
        self.h_up = np.broadcast_to(np.asarray(h, dtype=np.float64), (m,)).copy()
        self.h_down = self.h_up.copy() if h_down is None else np.broadcast_to(
            np.asarray(h_down, dtype=np.float64), (m,)).copy()  # fmt: skip
        if k < 0 or (self.h_up <= 0).any() or (self.h_down <= 0).any():
            raise ValueError(f"CUSUM needs thresholds > 0 and k >= 0, got h={h}, h_down={h_down}, k={k}")
        self.seen = 0
        self.up = np.zeros(m)
        self.down = np.zeros(m)
        self.start_up = np.zeros(m, dtype=np.int64)  # first row of the current run of each statistic
        self.start_down = np.zeros(m, dtype=np.int64)
        self.alarms = np.zeros(m, dtype=np.int64)

    @property
    def m(self) -> int:
        """Number of streams."""
        return int(self.up.size)

    def update(self, z: np.ndarray) -> list[CusumAlarm]:
        """Feed a ``T x m`` batch (rows in time order; NaN counts as 0); return its alarms by row."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.m:
            raise ValueError(f"need a T x {self.m} batch, got shape {z.shape}")
        rows = z.shape[0]
        if rows == 0:
            return []
        z = np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
        pre = (self.up.copy(), self.down.copy(), self.start_up.copy(), self.start_down.copy())
        up_s, up_start, up_hit = _side(z - self.k, pre[0], pre[2], self.seen, self.h_up)
        dn_s, dn_start, dn_hit = _side(-z - self.k, pre[1], pre[3], self.seen, self.h_down)
        self.up, self.start_up = up_s[-1].copy(), up_start
        self.down, self.start_down = dn_s[-1].copy(), dn_start
        out: list[CusumAlarm] = []
        for j in np.flatnonzero((up_hit < rows) | (dn_hit < rows)).tolist():
            out += self._column(z[:, j], j, float(pre[0][j]), float(pre[1][j]), int(pre[2][j]), int(pre[3][j]))
        self.seen += rows
        out.sort(key=lambda a: (a.row, a.column))
        return out

    def _column(self, z: np.ndarray, j: int, up0: float, dn0: float, su0: int, sd0: int) -> list[CusumAlarm]:
        """Re-run stream ``j`` of this batch from its pre-batch state, restarting after each alarm."""
        out: list[CusumAlarm] = []
        i, rows = 0, z.size
        while i < rows:
            seg = z[i:, None]
            offset = self.seen + i
            up_s, su, up_hit = _side(seg - self.k, np.array([up0]), np.array([su0]), offset, self.h_up[j : j + 1])
            dn_s, sd, dn_hit = _side(-seg - self.k, np.array([dn0]), np.array([sd0]), offset, self.h_down[j : j + 1])
            t_up, t_dn = int(up_hit[0]), int(dn_hit[0])
            t = min(t_up, t_dn)
            if t >= seg.shape[0]:
                up0, dn0, su0, sd0 = float(up_s[-1, 0]), float(dn_s[-1, 0]), int(su[0]), int(sd[0])
                break
            side = "up" if t_up <= t_dn else "down"
            stats = (up_s if side == "up" else dn_s)[: t + 1, 0]
            zeros = np.flatnonzero(stats[:-1] <= 0.0)
            start = offset + int(zeros[-1]) + 1 if zeros.size else (su0 if side == "up" else sd0)
            h = self.h_up[j] if side == "up" else self.h_down[j]
            out.append(CusumAlarm(j, offset + t, int(start), side, float(stats[-1]), float(h)))
            self.alarms[j] += 1
            up0 = dn0 = 0.0
            su0 = sd0 = offset + t + 1
            i += t + 1
        self.up[j], self.down[j], self.start_up[j], self.start_down[j] = up0, dn0, su0, sd0
        return out

    # --- checkpoints --------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Plain state (numbers and lists) for a checkpoint."""
        return {
            "k": self.k, "h_up": self.h_up.tolist(), "h_down": self.h_down.tolist(), "seen": self.seen,
            "up": self.up.tolist(), "down": self.down.tolist(),
            "start_up": self.start_up.tolist(), "start_down": self.start_down.tolist(),
            "alarms": self.alarms.tolist(),
        }  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> CusumBank:
        """Inverse of :meth:`state`."""
        bank = cls(len(state["up"]), state["k"], np.asarray(state["h_up"]), np.asarray(state["h_down"]))
        bank.seen = int(state["seen"])
        bank.up = np.asarray(state["up"], dtype=np.float64)
        bank.down = np.asarray(state["down"], dtype=np.float64)
        bank.start_up = np.asarray(state["start_up"], dtype=np.int64)
        bank.start_down = np.asarray(state["start_down"], dtype=np.int64)
        bank.alarms = np.asarray(state["alarms"], dtype=np.int64)
        return bank


def _side(
    x: np.ndarray, s0: np.ndarray, start0: np.ndarray, offset: int, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One side of the CUSUM over a batch of increments ``x`` (T x m) from statistics ``s0``: the statistic
    per row and column, the run start after the batch, and the first row above ``h`` per column (T if none)."""
    c = np.cumsum(x, axis=0)
    s = c - np.minimum(np.minimum.accumulate(c, axis=0), -s0)
    rows = x.shape[0]
    zero = s <= 0.0
    last_zero = rows - 1 - np.argmax(zero[::-1], axis=0)
    start = np.where(zero.any(axis=0), offset + last_zero + 1, start0)
    over = s > h
    hit = np.where(over.any(axis=0), np.argmax(over, axis=0), rows)
    return s, start, hit


def threshold_for(values: np.ndarray, weights: np.ndarray, k: float, arl: float, margin: float = 0.0) -> float:
    """Threshold ``h`` of the upper CUSUM of iid increments ``values - k`` (distribution: ``weights``) whose
    mean run length between false alarms is at least about ``arl``: ``h = ln(arl) / theta``, ``theta > 0`` the
    root of ``E exp(theta (X - k + margin)) = 1`` (Lundberg's exponent: an excursion reaches ``h`` with
    probability at most ``exp(-theta h)``). ``margin`` shifts the values up, covering an error of the
    reference mean. For N(0, 1), ``theta = 2 (k - margin)``; skewed inputs get a larger ``h``.

    >>> from scipy.stats import norm
    >>> grid = np.linspace(-8, 8, 4001)
    >>> round(threshold_for(grid, norm.pdf(grid), 0.5, 1e7), 2)  # ln(1e7) / 1
    16.12
    """
    x = np.asarray(values, dtype=np.float64) - k + margin
    w = np.asarray(weights, dtype=np.float64)
    keep = w > 0
    x, w = x[keep], w[keep] / w[keep].sum()
    if x.size == 0 or x.max() <= 0:
        return MAX_H
    if float((w * x).sum()) >= 0:
        raise ValueError("the CUSUM increments need a negative mean (k larger than the mean shift margin)")
    logw = np.log(w)

    def f(theta: float) -> float:
        a = logw + theta * x
        top = a.max()
        return float(top + np.log(np.exp(a - top).sum()))

    hi = 1.0
    while f(hi) <= 0:
        hi *= 2
    lo = 0.0
    for _ in range(60):  # bisection: f < 0 on (0, theta*), f > 0 beyond
        mid = (lo + hi) / 2
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    theta = (lo + hi) / 2
    return min(float(np.log(arl) / theta), MAX_H)
