"""Page-Hinkley test of a standardised stream against a known (reference) mean, vectorised per batch.

With the pre-change mean known (``z`` standardised by the reference, so mean 0), Page-Hinkley's statistic for
an increase is ``U_t = sum_{s < i <= t} (z_i - delta)`` maximised over ``s``, i.e. Lindley's recursion
``U_t = max(0, U_{t-1} + z_t - delta)``, and likewise ``D_t`` for a decrease with ``-z_t``; an alarm when a
side exceeds its threshold. The change point is the argmin of the cumulative sum: the first value of the run
that crossed (the value after the side's last zero).

After an alarm that side *holds*: its statistic is clamped at the threshold and it raises no further alarm
until the statistic has fallen back to 0 (the stream has returned to the reference level for about
``threshold / delta`` values), so a lasting change is one detection, not one every ``threshold / shift``
values; the other side goes on. Each side is a few numpy operations per batch (``cumsum`` and running
extremes); rows are processed again only around alarms and while a side holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PHAlarm", "PageHinkley"]


@dataclass(frozen=True)
class PHAlarm:
    """One alarm: ``row`` and ``start`` (estimated first changed value) are 0-based positions among the values
    fed; ``statistic`` is the run's sum of ``z - delta`` (up) or ``-z - delta`` (down); ``mean`` is the run's
    mean of ``z``."""

    row: int
    start: int
    side: str
    statistic: float
    threshold: float
    mean: float


class PageHinkley:
    """Two-sided Page-Hinkley test with a known mean of 0 and thresholds ``h_up``/``h_down``.

    Examples
    --------
    >>> ph = PageHinkley(delta=0.25, h_up=4.0)
    >>> z = np.concatenate([np.zeros(10), np.full(10, 1.5), np.zeros(30)])
    >>> [(a.row, a.start, a.side) for a in ph.update(z)]  # one alarm for the whole excursion
    [(13, 10, 'up')]
    """

    def __init__(self, delta: float, h_up: float, h_down: float | None = None) -> None:
        h_down = h_up if h_down is None else h_down
        if delta < 0 or not (h_up > 0 and h_down > 0):
            raise ValueError(f"Page-Hinkley needs thresholds > 0 and delta >= 0, got {h_up}, {h_down}, {delta}")
        self.delta = float(delta)
        self.h = {"up": float(h_up), "down": float(h_down)}
        self.seen = 0
        self.stat = {"up": 0.0, "down": 0.0}
        self.start = {"up": 0, "down": 0}
        self.held = {"up": False, "down": False}
        self.alarms = 0

    def update(self, z: np.ndarray) -> list[PHAlarm]:
        """Feed standardised values in order (NaN counts as 0); return the alarms of this batch by row."""
        z = np.nan_to_num(np.asarray(z, dtype=np.float64).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
        if z.size == 0:
            return []
        out = self._side("up", z - self.delta) + self._side("down", -z - self.delta)
        self.seen += z.size
        self.alarms += len(out)
        out.sort(key=lambda a: (a.row, a.side))
        return out

    def _side(self, side: str, x: np.ndarray) -> list[PHAlarm]:
        h, s, start, held = self.h[side], self.stat[side], self.start[side], self.held[side]
        out: list[PHAlarm] = []
        i, n = 0, x.size
        while i < n:
            c = np.cumsum(x[i:])
            if held:  # clamped at h from above until it is back at 0
                stat = s + c - np.maximum(np.maximum.accumulate(c) + s - h, 0.0)
                back = np.flatnonzero(stat <= 0.0)
                if back.size == 0:
                    s = float(stat[-1])
                    break
                j = int(back[0])
                held, s, start = False, 0.0, self.seen + i + j + 1
                i += j + 1
                continue
            stat = c - np.minimum(np.minimum.accumulate(c), -s)  # Lindley's recursion from s
            over = np.flatnonzero(stat > h)
            last = int(over[0]) if over.size else n - i - 1
            zeros = np.flatnonzero(stat[: last + 1] <= 0.0)
            if zeros.size:
                start = self.seen + i + int(zeros[-1]) + 1
            if not over.size:
                s = float(stat[-1])
                break
            total = float(stat[last])
            row = self.seen + i + last
            mean = total / (row - start + 1) + self.delta
            out.append(PHAlarm(row, start, side, total, h, mean if side == "up" else -mean))
            held, s = True, h
            i += last + 1
        self.stat[side], self.start[side], self.held[side] = s, start, held
        return out

    def state(self) -> dict[str, Any]:
        """Plain state (numbers) for a checkpoint."""
        return {"delta": self.delta, "h": dict(self.h), "seen": self.seen, "stat": dict(self.stat),
                "start": dict(self.start), "held": dict(self.held), "alarms": self.alarms}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PageHinkley:
        """Inverse of :meth:`state`."""
        ph = cls(float(state["delta"]), float(state["h"]["up"]), float(state["h"]["down"]))
        ph.seen, ph.alarms = int(state["seen"]), int(state["alarms"])
        ph.stat = {k: float(state["stat"][k]) for k in ("up", "down")}
        ph.start = {k: int(state["start"][k]) for k in ("up", "down")}
        ph.held = {k: bool(state["held"][k]) for k in ("up", "down")}
        return ph
