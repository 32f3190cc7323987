"""Pairs the labelled outcomes of a champion and its challengers by ``prediction_id``, per champion window,
into the paired counts of `stream.metrics.comparison` (pure logic, no I/O).

The ingest stage sends a copy of every labelled outcome of a model in a champion/challenger group to the
champion's batch record (section ``cmp``), so that one aggregator sees both sides of each request. An
outcome waits here until its partner arrives (the champion's waits for every challenger); a request counts
in the window of the champion's prediction time. Waiting outcomes older than the champion's window store
keeps (``expire``), or beyond ``max_waiting`` per champion, are dropped and counted in ``unpaired``.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from stream.contracts.events import ModelSpec
from stream.metrics.classification import Metrics
from stream.metrics.comparison import Comparison, PairedCounts, compare

COMPARISON_COLUMNS = ("champion_id", "challenger_id", "window_start", "window_end", "metric", "pairs",
                      "champion_value", "challenger_value", "difference", "agreement", "champion_only",
                      "challenger_only", "statistic", "p_value", "test", "verdict", "version", "updated_at")

Key = tuple[str, str, int]  # champion, challenger, window start (ms)
_Side = tuple[int, Any, Any]  # prediction ts, label, prediction


def _same(a: Any, b: Any, regression: bool) -> bool:
    if regression:
        return bool(abs(float(a) - float(b)) <= 1e-9 * max(1.0, abs(float(a))))
    return _text(a) == _text(b)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Pairing:
    """Waiting outcomes and the paired counts of every (champion, challenger, window)."""

    def __init__(self, spec_for: Callable[[str], ModelSpec], max_waiting: int = 1_000_000) -> None:
        self.spec_for = spec_for
        self.max_waiting = max_waiting
        self.waiting: dict[str, dict[str, dict[str, _Side]]] = {}  # champion -> prediction_id -> model -> side
        self.counts: dict[Key, PairedCounts] = {}
        self.dirty: set[Key] = set()
        self.unpaired = 0
        self._expired: dict[str, int] = {}  # champion -> the last ``before_ms`` of expire

    def add(self, champion: str, cmp: Mapping[str, list[Any]], keep: np.ndarray) -> set[tuple[str, int]]:
        """Add the ``cmp`` section of a champion's batch record (``keep``: items not replayed); return the
        (champion, window start) of the windows that got pairs."""
        spec = self.spec_for(champion)
        regression = spec.task == "regression"
        size = spec.monitor.window_seconds * 1000
        waiting = self.waiting.setdefault(champion, {})
        pairs: dict[Key, list[tuple[_Side, _Side]]] = {}
        for i in np.flatnonzero(keep).tolist():
            model, pid = cmp["mid"][i], cmp["pid"][i]
            side: _Side = (int(cmp["ts"][i]), cmp["label"][i], cmp["pred"][i])
            entry = waiting.get(pid)
            if entry is None:
                entry = waiting[pid] = {}
            entry[model] = side
            if model == champion:
                partners = [m for m in entry if m != champion]
            else:
                partners = [model] if champion in entry else []
            base = entry.get(champion)
            for other in partners:
                if base is None:
                    break
                start = base[0] - base[0] % size
                pairs.setdefault((champion, other, start), []).append((base, entry.pop(other)))
        if len(waiting) > self.max_waiting:
            for pid in list(waiting)[:len(waiting) - self.max_waiting]:
                self.unpaired += len(waiting.pop(pid))
        touched: set[tuple[str, int]] = set()
        for key, items in pairs.items():
            counts = self.counts.get(key)
            if counts is None:
                counts = self.counts[key] = PairedCounts()
            agree = np.fromiter((_same(a[2], b[2], regression) for a, b in items), bool, len(items))
            if regression:
                counts.add_regression(np.array([abs(float(a[2]) - float(a[1])) for a, _ in items]),
                                      np.array([abs(float(b[2]) - float(b[1])) for _, b in items]), agree)
            else:
                counts.add_classification(np.fromiter((_same(a[2], a[1], False) for a, _ in items), bool, len(items)),
                                          np.fromiter((_same(b[2], b[1], False) for _, b in items), bool, len(items)),
                                          agree)
            self.dirty.add(key)
            touched.add((key[0], key[2]))
        return touched

    def result(self, key: Key) -> Comparison:
        spec = self.spec_for(key[0])
        return compare(self.counts[key], "regression" if spec.task == "regression" else "classification",
                       spec.monitor.comparison_p_value, spec.monitor.comparison_min_pairs)

    def metrics(self, champion: str, start: int) -> Metrics:
        """The comparison metrics of a champion's window, by challenger (see the README)."""
        out: Metrics = {}
        for key in self.counts:
            if key[0] == champion and key[2] == start:
                r = self.result(key)
                score = {"challenger_better": 1.0, "champion_better": -1.0, "no_difference": 0.0}.get(r.verdict,
                                                                                                    math.nan)
                out[f"challenger_{r.metric}_difference:{key[1]}"] = (r.difference, r.pairs)
                out[f"challenger_p_value:{key[1]}"] = (r.p_value, r.pairs)
                out[f"challenger_agreement:{key[1]}"] = (r.agreement, r.pairs)
                out[f"challenger_verdict:{key[1]}"] = (score, r.pairs)
        return out

    def rows(self, now: dt.datetime | None = None) -> list[tuple[Any, ...]]:
        """Rows for ``model_comparisons`` of every comparison changed since the last call."""
        now = now or dt.datetime.now(dt.UTC)
        version = time.time_ns()
        rows = []
        for key in sorted(self.dirty):
            if key not in self.counts:
                continue
            r = self.result(key)
            end = key[2] + self.spec_for(key[0]).monitor.window_seconds * 1000
            rows.append((key[0], key[1], key[2], end, r.metric, r.pairs, r.champion_value, r.challenger_value,
                         r.difference, r.agreement, r.champion_only, r.challenger_only, r.statistic, r.p_value,
                         r.test, r.verdict, version, now))
        self.dirty.clear()
        return rows

    def expire(self, champion: str, before_ms: int) -> None:
        """Forget the windows before ``before_ms`` of a champion and the outcomes still waiting for them (a
        no-op unless ``before_ms`` moved since the last call: it scans the waiting outcomes)."""
        if self._expired.get(champion, -(2**62)) >= before_ms:
            return
        self._expired[champion] = before_ms
        for key in [k for k in self.counts if k[0] == champion and k[2] < before_ms]:
            del self.counts[key]
            self.dirty.discard(key)
        waiting = self.waiting.get(champion, {})
        for pid in [p for p, entry in waiting.items() if all(s[0] < before_ms for s in entry.values())]:
            self.unpaired += len(waiting.pop(pid))

    def state(self) -> dict[str, Any]:
        return {"waiting": self.waiting, "unpaired": self.unpaired,
                "counts": [[*k, c.to_list()] for k, c in self.counts.items()], "dirty": [list(k) for k in self.dirty]}

    def load(self, state: Mapping[str, Any]) -> None:
        self.waiting = {c: {p: {m: tuple(s) for m, s in e.items()} for p, e in w.items()}  # type: ignore[misc]
                        for c, w in state.get("waiting", {}).items()}
        self.unpaired = int(state.get("unpaired", 0))
        self.counts = {(c, m, int(s)): PairedCounts.from_list(v) for c, m, s, v in state.get("counts", [])}
        self.dirty = {(c, m, int(s)) for c, m, s in state.get("dirty", [])}
