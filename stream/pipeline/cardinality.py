"""Cardinality limits, pure: the first ``limit`` distinct values of a key are kept, later new ones fold into
`OTHER` (and are counted), so that windows, monitors and join keys stay bounded however many versions or
segment values producers send. One helper for every such limit (model versions, segment values; the segment
top-K of drift reuses it).

State is plain (a dict of lists) for checkpoints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

OTHER = "__other__"


class BoundedValues:
    """Distinct values admitted per key, at most ``limit`` each; the rest fold into `OTHER`.

    >>> b = BoundedValues(limit=2)
    >>> [b.fold("region", v) for v in ("eu", "us", "eu", "asia", "us")], b.folded
    (['eu', 'us', 'eu', '__other__', 'us'], 1)
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a cardinality limit must be at least 1, got {limit}")
        self.limit = limit
        self.admitted: dict[str, set[str]] = {}
        self.order: dict[str, list[str]] = {}  # admission order (the checkpointed form)
        self.folded = 0

    def fold(self, key: str, value: str) -> str:
        seen = self.admitted.get(key)
        if seen is None:
            seen = self.admitted[key] = set()
            self.order[key] = []
        if value in seen:
            return value
        if len(seen) < self.limit and value != OTHER:
            seen.add(value)
            self.order[key].append(value)
            return value
        self.folded += 1
        return OTHER

    def fold_all(self, key: str, values: Sequence[str]) -> list[str]:
        """`fold` of many values of one key (a fast path when all are admitted already)."""
        seen = self.admitted.get(key)
        if seen is not None and seen.issuperset(values):
            return list(values)
        return [self.fold(key, v) for v in values]

    def fold_segments(self, model_id: str, fields: Sequence[str],
                      segments: Sequence[Mapping[str, str]]) -> list[Mapping[str, str]]:
        """Segments with the values of ``fields`` beyond the limit (per model and field) folded."""
        if not fields:
            return list(segments)
        out: list[Mapping[str, str]] = []
        for segment in segments:
            folded: dict[str, str] | None = None
            for name in fields:
                value = segment.get(name)
                if value is not None and self.fold(f"{model_id}\x00{name}", value) != value:
                    folded = folded or dict(segment)
                    folded[name] = OTHER
            out.append(segment if folded is None else folded)
        return out

    def state(self) -> dict[str, Any]:
        return {"limit": self.limit, "order": {k: list(v) for k, v in self.order.items()}, "folded": self.folded}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], limit: int | None = None) -> BoundedValues:
        out = cls(limit or int(state["limit"]))
        out.order = {k: list(v) for k, v in state["order"].items()}
        out.admitted = {k: set(v) for k, v in out.order.items()}
        out.folded = int(state["folded"])
        return out
