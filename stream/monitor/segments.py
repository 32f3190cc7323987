"""Segment dimensions of a model and their top-K values by volume, pure.

A *dimension* is a declared segment field (``region``) or, where the spec asks for it, the intersection of two
(``region&tier``). Drift statistics and data quality are kept per segment of every dimension, but only for
the ``K`` values of a dimension with the most events (``monitor.segment_top_k``); every other value counts in
the dimension's ``__other__`` segment, so a high-cardinality field costs at most ``K + 1`` sketches per window
and dimension. Segment keys are ``field=value``, the way ``window_metrics`` names its segments, and
``a=x&b=y`` for an intersection (``a&b=__other__`` for the rest of it).

Volumes are counted over every prediction (also while a reference is being built) and halved whenever a new
window opens, so the ranking follows the traffic of the last few windows. A window's members are fixed when
the window opens (the top K at that moment), so that all its events are routed the same way. The counter
keeps at most ``max(8 K, 64)`` values: beyond that the smaller half is dropped, so a stream of ever new
values cannot grow it either.

State is plain data for checkpoints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from stream.contracts.events import ModelSpec

__all__ = ["OTHER", "SegmentRanker", "dimension_values", "dimensions_of", "segment_key"]

OTHER = "__other__"
_JOIN = "\x1f"  # joins the values of an intersection inside the ranker (rendered as a=x&b=y in keys)


def dimensions_of(spec: ModelSpec) -> list[tuple[str, ...]]:
    """The segment dimensions of a model: each segment field and protected attribute, then each declared
    intersection; none when ``monitor.segment_top_k`` is 0.

    >>> from stream.contracts.events import ModelSpec
    >>> s = ModelSpec(model_id="m", task="regression", segment_fields=["region", "tier"],
    ...               segment_intersections=[["region", "tier"]])
    >>> dimensions_of(s)
    [('region',), ('tier',), ('region', 'tier')]
    """
    if spec.monitor.segment_top_k == 0:
        return []
    fields = [*spec.segment_fields, *(a for a in spec.protected_attributes if a not in spec.segment_fields)]
    return [(f,) for f in fields] + [tuple(pair) for pair in spec.segment_intersections]


def dimension_name(dim: tuple[str, ...]) -> str:
    return "&".join(dim)


def dimension_values(dim: tuple[str, ...], segments: Sequence[Mapping[str, str]]) -> list[str | None]:
    """Each event's value of a dimension (None when the event lacks one of its fields).

    >>> dimension_values(("a", "b"), [{"a": "x", "b": "y"}, {"a": "x"}])
    ['x\\x1fy', None]
    """
    if len(dim) == 1:
        name = dim[0]
        return [s.get(name) for s in segments]
    a, b = dim
    return [None if (va := s.get(a)) is None or (vb := s.get(b)) is None else f"{va}{_JOIN}{vb}"
            for s in segments]


def segment_key(dim: tuple[str, ...], value: str) -> str:
    """The segment key of a dimension's value (``OTHER`` included).

    >>> segment_key(("region",), "eu"), segment_key(("a", "b"), "x\\x1fy"), segment_key(("a", "b"), OTHER)
    ('region=eu', 'a=x&b=y', 'a&b=__other__')
    """
    if value == OTHER:
        return f"{dimension_name(dim)}={OTHER}"
    return "&".join(f"{f}={v}" for f, v in zip(dim, value.split(_JOIN), strict=True))


class SegmentRanker:
    """Volume per value of every dimension and the top ``k`` of each.

    >>> r = SegmentRanker(k=2)
    >>> r.observe("region", ["eu", "us", "eu", "asia", "eu", "us", None])
    >>> r.members("region")
    ['eu', 'us']
    """

    def __init__(self, k: int, capacity: int | None = None) -> None:
        if k < 1:
            raise ValueError(f"segment_top_k must be at least 1, got {k}")
        self.k = k
        self.capacity = capacity or max(8 * k, 64)
        self.volumes: dict[str, dict[str, float]] = {}

    def observe(self, dim: str, values: Sequence[str | None]) -> None:
        """Count a batch of values of dimension ``dim`` (None: not counted)."""
        counted = Counter(values)
        counted.pop(None, None)
        if not counted:
            return
        volumes = self.volumes.setdefault(dim, {})
        for value, n in counted.items():
            assert value is not None
            volumes[value] = volumes.get(value, 0.0) + n
        if len(volumes) > self.capacity:  # keep the larger half: new rare values cannot grow it
            kept = sorted(volumes.items(), key=lambda kv: (-kv[1], kv[0]))[: self.capacity // 2]
            self.volumes[dim] = dict(kept)

    def members(self, dim: str) -> list[str]:
        """The ``k`` values with the most volume (ties by value), largest first."""
        volumes = self.volumes.get(dim, {})
        ranked = sorted(volumes.items(), key=lambda kv: (-kv[1], kv[0]))
        return [value for value, _ in ranked[: self.k] if value != OTHER]

    def decay(self) -> None:
        """Halve every volume (called when a new window opens)."""
        for volumes in self.volumes.values():
            for value in volumes:
                volumes[value] *= 0.5

    def state(self) -> dict[str, Any]:
        return {"k": self.k, "volumes": {d: dict(v) for d, v in self.volumes.items()}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], k: int) -> SegmentRanker:
        out = cls(k)
        out.volumes = {str(d): {str(v): float(n) for v, n in vol.items()} for d, vol in state["volumes"].items()}
        return out
