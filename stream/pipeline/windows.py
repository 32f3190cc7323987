"""Tumbling event-time windows per model, version and segment, each holding a `WindowAccumulator`.

A prediction counts in the window of its own timestamp, and so does its outcome when the label arrives later:
late labels revise old windows. A window is *closed* once the model's watermark (max event time seen minus the
allowed lateness, or wall-clock time when the stream idles) passes its end. It is still kept, and revised by
late labels, until the event-time watermark has passed its end plus the maximum label delay; then it is
evicted, and items that still arrive for it are counted as too late and dropped. Every change marks the window
dirty; the sink rewrites dirty windows (ReplacingMergeTree: the newest row wins).
Segment ``""`` is the whole model; each declared segment field adds rows ``field=value``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stream.contracts.events import ModelSpec
from stream.metrics.window import WindowAccumulator

WindowKey = tuple[str, str, str, int]  # model_id, model_version, segment, window_start_ms
# An input partition with no prediction of a model for this long (wall clock) stops holding its watermark back.
SOURCE_IDLE_MS = 60_000


def segment_keys(segment: Mapping[str, str], fields: Sequence[str]) -> list[str]:
    """The segment rows an event counts in: always ``""`` (all), plus one per declared field it carries.

    >>> segment_keys({"region": "eu", "tier": "gold"}, ["region"])
    ['', 'region=eu']
    """
    return [""] + [f"{name}={segment[name]}" for name in fields if name in segment]


def segment_fields_of(spec: ModelSpec) -> list[str]:
    """The fields that get segment rows: the declared segment fields, then protected attributes (fairness)."""
    return [*spec.segment_fields, *(a for a in spec.protected_attributes if a not in spec.segment_fields)]


def _codes(values: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """An integer code per value (distinct values in order of first appearance) and the values of the codes.

    >>> codes, of = _codes(["b", "a", "b"]); codes.tolist(), of
    ([0, 1, 0], ['b', 'a'])
    """
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return np.zeros(len(values), np.int64), distinct
    code = {value: i for i, value in enumerate(distinct)}
    return np.fromiter(map(code.__getitem__, values), np.int64, len(values)), distinct


@dataclass
class ModelClock:
    max_event_ms: int = 0
    watermark_ms: int = 0  # event time: max event time - allowed lateness; drives eviction
    idle_ms: int = 0  # wall clock - lateness while the stream idles; may close windows, never evicts them
    # per input partition: (max event time, wall clock when last seen); the watermark follows the slowest
    sources: dict[int, tuple[int, float]] = field(default_factory=dict)
    expected: int = 0  # input partitions 0..expected-1 exist: one not seen yet holds the watermark back
    # per input partition: (the ingest's join clock, wall clock when last told). Eviction waits for it: the
    # labels topic may be read far behind the predictions, and their outcomes must still find their windows
    joined: dict[int, tuple[int, float]] = field(default_factory=dict)
    since: float = field(default_factory=lambda: time.time() * 1000)  # wall clock the clock started waiting

    def refresh(self, now_ms: float) -> None:
        """After a restore: nothing was read yet, so no partition has been silent for long."""
        self.since = now_ms
        self.sources = {p: (ts, now_ms) for p, (ts, _) in self.sources.items()}
        self.joined = {p: (ts, now_ms) for p, (ts, _) in self.joined.items()}

    def evictable_until(self, now_ms: float) -> float:
        """Event time before which windows may be evicted: the watermark, held back by the join clock of
        every input partition heard from within `SOURCE_IDLE_MS`."""
        held = [ts for ts, seen in self.joined.values() if now_ms - seen <= SOURCE_IDLE_MS]
        return min([self.watermark_ms, *held])


@dataclass
class WindowStore:
    """All open windows of the models one aggregator partition owns."""

    spec_for: Callable[[str], ModelSpec]
    windows: dict[WindowKey, WindowAccumulator] = field(default_factory=dict)
    dirty: set[WindowKey] = field(default_factory=set)  # changed since the last sink write
    changed: set[WindowKey] = field(default_factory=set)  # changed since the last checkpoint
    closed: set[WindowKey] = field(default_factory=set)
    clocks: dict[str, ModelClock] = field(default_factory=lambda: defaultdict(ModelClock))
    evicted_until: dict[str, int] = field(default_factory=dict)  # model -> windows starting before are gone
    too_late: int = 0  # items for windows already evicted (older than the maximum label delay): counted, dropped
    too_late_by_model: dict[str, int] = field(default_factory=dict)  # the same, per model

    def _size_ms(self, spec: ModelSpec) -> int:
        return spec.monitor.window_seconds * 1000

    def _groups(
        self, model_id: str, versions: Sequence[str], segments: Sequence[Mapping[str, str]], ts_ms: np.ndarray
    ) -> dict[WindowKey, np.ndarray]:
        """Positions of the events of each window row (ascending), grouped with integer codes per batch."""
        spec = self.spec_for(model_id)
        size = self._size_ms(spec)
        starts = ts_ms - np.mod(ts_ms, size)
        fields = segment_fields_of(spec)
        horizon = self.evicted_until.get(model_id, -(2**62))
        live = np.flatnonzero(starts >= horizon)  # an evicted window: re-creating it would overwrite the full row
        late = len(starts) - live.size
        if late:
            self.too_late += late
            self.too_late_by_model[model_id] = self.too_late_by_model.get(model_id, 0) + late
        groups: dict[WindowKey, np.ndarray] = {}
        if live.size == 0:
            return groups
        rows = live.tolist()
        everyone = late == 0
        version_code, version_of = _codes(versions if everyone else [versions[i] for i in rows])
        start_of, start_code = np.unique(starts[live], return_inverse=True)
        n_starts = len(start_of)
        for name in ("", *fields):
            if name:
                values = [seg.get(name) for seg in segments] if everyone else [segments[i].get(name) for i in rows]
                value_code, value_of = _codes(values)
            else:
                value_code, value_of = np.zeros(live.size, np.int64), [None]
            combined = (version_code * len(value_of) + value_code) * n_starts + start_code.reshape(-1)
            order = np.argsort(combined, kind="stable")
            ordered = combined[order]
            cuts = np.flatnonzero(ordered[1:] != ordered[:-1]) + 1
            for chunk, code in zip(np.split(order, cuts), ordered[np.r_[0, cuts]].tolist(), strict=True):
                rest, s = divmod(code, n_starts)
                v, g = divmod(rest, len(value_of))
                value = value_of[g]
                if name and value is None:  # events without this segment field
                    continue
                segment = f"{name}={value}" if name else ""
                groups[(model_id, version_of[v], segment, int(start_of[s]))] = live[chunk]
        return groups

    def _window(self, key: WindowKey) -> WindowAccumulator:
        acc = self.windows.get(key)
        if acc is None:
            spec = self.spec_for(key[0])
            acc = WindowAccumulator(spec.task, spec.positive_class, spec.business_values)
            self.windows[key] = acc
        return acc

    def add_predictions(
        self, model_id: str, versions: Sequence[str], segments: Sequence[Mapping[str, str]],
        ts_ms: np.ndarray,
        predictions: np.ndarray, scores: np.ndarray, latency_ms: np.ndarray, source: int = 0, sources: int = 0,
    ) -> None:
        for key, idx in self._groups(model_id, versions, segments, ts_ms).items():
            sel = np.asarray(idx)
            self._window(key).add_predictions(predictions[sel], scores[sel], latency_ms[sel])
            self.dirty.add(key)
            self.changed.add(key)
        if ts_ms.size:
            self._observe(model_id, int(ts_ms.max()), source, sources)

    def add_outcomes(
        self, model_id: str, versions: Sequence[str], segments: Sequence[Mapping[str, str]],
        ts_ms: np.ndarray,
        y_true: np.ndarray, y_pred: np.ndarray, scores: np.ndarray, business: Mapping[str, np.ndarray],
    ) -> None:
        for key, idx in self._groups(model_id, versions, segments, ts_ms).items():
            sel = np.asarray(idx)
            self._window(key).add_outcomes(y_true[sel], y_pred[sel], scores[sel],
                                           {k: v[sel] for k, v in business.items()})
            self.dirty.add(key)
            self.changed.add(key)

    def note_joined(self, model_id: str, source: int, joined_until_ms: int) -> None:
        """The ingest stage's join clock of input partition ``source`` (see `ModelClock.evictable_until`)."""
        clock = self.clocks[model_id]
        previous = clock.joined.get(source, (joined_until_ms, 0.0))[0]
        clock.joined[source] = (max(previous, joined_until_ms), time.time() * 1000)

    def _observe(self, model_id: str, max_ts_ms: int, source: int = 0, sources: int = 0) -> None:
        """Advance the model's watermark: the max event time of its *slowest* input partition, minus lateness.

        Partitions are read at different speeds (a batch consumer may read one partition's whole backlog
        before another's first record); following the fastest would evict windows that a slower partition
        still has predictions for. ``sources`` is the number of input partitions: one not seen yet holds the
        watermark back like a slow one. A partition silent for `SOURCE_IDLE_MS` of wall-clock time (no
        traffic for this model there) stops holding it back until it is seen again.
        """
        clock = self.clocks[model_id]
        clock.max_event_ms = max(clock.max_event_ms, max_ts_ms)
        clock.expected = max(clock.expected, sources)
        now = time.time() * 1000
        previous = clock.sources.get(source, (max_ts_ms, now))[0]
        clock.sources[source] = (max(previous, max_ts_ms), now)
        if len(clock.sources) < clock.expected and now - clock.since <= SOURCE_IDLE_MS \
                and any(p not in clock.sources for p in range(clock.expected)):
            return
        live = [ts for ts, seen in clock.sources.values() if now - seen <= SOURCE_IDLE_MS]
        frontier = min(live) if live else clock.max_event_ms
        lateness = self.spec_for(model_id).monitor.allowed_lateness_seconds * 1000
        clock.watermark_ms = max(clock.watermark_ms, frontier - lateness)

    def advance_idle(self, now_ms: int) -> None:
        """The stream is idle: windows whose end is before wall-clock time minus lateness may close.

        Only closing uses the wall clock; eviction waits for event time, so that replaying old data after a
        pause does not drop windows that labels can still revise.
        """
        for model_id, clock in self.clocks.items():
            lateness = self.spec_for(model_id).monitor.allowed_lateness_seconds * 1000
            clock.idle_ms = max(clock.idle_ms, now_ms - lateness)

    def close_due(self) -> list[WindowKey]:
        """Windows whose end the watermark has passed since the last call (each returned once)."""
        newly: list[WindowKey] = []
        for key in self.windows:
            if key in self.closed:
                continue
            spec = self.spec_for(key[0])
            clock = self.clocks[key[0]]
            if key[3] + self._size_ms(spec) <= max(clock.watermark_ms, clock.idle_ms):
                self.closed.add(key)
                newly.append(key)
        return newly

    def evict(self) -> list[WindowKey]:
        """Drop closed windows older than the maximum label delay; no label can revise them any more."""
        gone = []
        now_ms = time.time() * 1000
        until = {model_id: clock.evictable_until(now_ms) for model_id, clock in self.clocks.items()}
        for key in list(self.closed):
            spec = self.spec_for(key[0])
            end = key[3] + self._size_ms(spec)
            if end + spec.monitor.max_label_delay_seconds * 1000 <= until.get(key[0], -(2**62)) \
                    and key not in self.dirty:
                del self.windows[key]
                self.closed.discard(key)
                self.changed.discard(key)
                self.evicted_until[key[0]] = max(self.evicted_until.get(key[0], key[3] + 1), key[3] + 1)
                gone.append(key)
        return gone

    def take_dirty(self) -> list[tuple[WindowKey, int, WindowAccumulator]]:
        """Windows changed since the last call, with their end (ms); clears the dirty set."""
        out = []
        for key in sorted(self.dirty):
            out.append((key, key[3] + self._size_ms(self.spec_for(key[0])), self.windows[key]))
        self.dirty.clear()
        return out
