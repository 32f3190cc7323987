"""Alert state: turns per-window rule conditions into firing and resolved :class:`AlertEvent` s.

One state machine per (model, version, segment, rule):

* ``ok`` → ``firing`` when the condition is active, unless the key is silenced or in cooldown; a firing
  alert does not fire again while it stays firing.
* ``firing`` → ``ok`` (a *resolved* event) after ``resolve_after`` consecutive windows whose condition is
  false; windows without enough data (``active is None``) neither count nor reset the streak.
* After resolving at a window ending at ``t``, the rule cannot fire for windows starting before
  ``t + cooldown_windows * window size`` (flap damping).
* Silences (:meth:`AlertTracker.silence`) suppress *firing* events while ``now < until``; the suppressed
  condition fires once the silence ends if it still holds. Resolved events are never suppressed.

The alert id is the SHA-1 of model, version, segment, rule and the start of the window where the episode
began, so the same episode has the same id across restarts and replays, and its resolved event has the id
of its firing event. Observing a window already seen is a revision (late labels): an identical outcome
emits nothing; a revision to active may fire; a revision to false counts toward resolution if it revises the
latest window, and resolves at once when no window of the episode holds the condition any more (the evidence
that fired it is gone, latest or not). Windows older than the last ``revision_windows`` seen are ignored.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from stream.alerts.rules import (
    LABEL_METRICS,
    Condition,
    DataQualityRule,
    DetectorRule,
    FeatureDriftRule,
    NoDataRule,
    RelativeRule,
    ThresholdRule,
    WindowInputs,
    required_lookback,
)
from stream.contracts.events import AlertEvent

__all__ = ["AlertTracker", "alert_id", "evidence_sql", "message"]

Key = tuple[str, str, str, str]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def alert_id(model_id: str, model_version: str, segment: str, rule: str, episode_start: datetime) -> str:
    """Deterministic id of an alert episode (40 hex characters)."""
    text = "\x1f".join((model_id, model_version, segment, rule, _utc(episode_start).isoformat()))
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass(slots=True)
class _State:
    firing: bool = False
    episode_start: datetime | None = None
    false_streak: int = 0
    cooldown_until: datetime | None = None
    last_window: datetime | None = None
    seen: dict[datetime, bool | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "firing": self.firing,
            "episode_start": None if self.episode_start is None else self.episode_start.isoformat(),
            "false_streak": self.false_streak,
            "cooldown_until": None if self.cooldown_until is None else self.cooldown_until.isoformat(),
            "last_window": None if self.last_window is None else self.last_window.isoformat(),
            "seen": [[w.isoformat(), v] for w, v in self.seen.items()],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> _State:
        def ts(value: str | None) -> datetime | None:
            return None if value is None else datetime.fromisoformat(value)

        return cls(
            firing=data["firing"],
            episode_start=ts(data["episode_start"]),
            false_streak=data["false_streak"],
            cooldown_until=ts(data["cooldown_until"]),
            last_window=ts(data["last_window"]),
            seen={datetime.fromisoformat(w): v for w, v in data["seen"]},
        )


class AlertTracker:
    """Hysteresis, cooldown, silences and deduplication of alerts; see the module docstring.

    Parameters
    ----------
    database
        ClickHouse database named in the evidence queries.
    revision_windows
        How many recent windows per rule are remembered to recognise re-observations.
    """

    def __init__(self, database: str = "driftwarden", revision_windows: int = 64) -> None:
        if revision_windows < 1:
            raise ValueError(f"revision_windows must be at least 1, got {revision_windows}")
        self.database = database
        self.revision_windows = revision_windows
        self._states: dict[Key, _State] = {}
        self._silences: dict[tuple[str, str | None], datetime] = {}
        self.counts: dict[str, int] = {
            "fired": 0,
            "resolved": 0,
            "silenced": 0,
            "cooldown": 0,
            "duplicates": 0,
            "stale": 0,
        }

    def silence(self, model_id: str, rule: str | None, until: datetime) -> None:
        """Mute firing alerts of a model (``rule`` None) or of one rule of a model until ``until``."""
        self._silences[(model_id, rule)] = _utc(until)

    def unsilence(self, model_id: str, rule: str | None = None) -> None:
        """Remove a silence set by :meth:`silence` (no error if there is none)."""
        self._silences.pop((model_id, rule), None)

    def is_silenced(self, model_id: str, rule: str, now: datetime) -> bool:
        """Whether firing alerts of ``rule`` on ``model_id`` are muted at ``now``."""
        now = _utc(now)
        return any(
            (until := self._silences.get(k)) is not None and now < until
            for k in ((model_id, None), (model_id, rule))
        )

    def firing(self) -> list[tuple[Key, str]]:
        """Currently firing alerts as ((model, version, segment, rule), alert id)."""
        return [
            (key, alert_id(*key, st.episode_start))
            for key, st in self._states.items()
            if st.firing and st.episode_start is not None
        ]

    def observe(self, inputs: WindowInputs, conditions: list[Condition], now: datetime) -> list[AlertEvent]:
        """Advance the state of every condition's rule by one window; return the events to publish."""
        now = _utc(now)
        events: list[AlertEvent] = []
        for cond in conditions:
            event = self._observe_one(inputs, cond, now)
            if event is not None:
                events.append(event)
        return events

    def _observe_one(self, inputs: WindowInputs, cond: Condition, now: datetime) -> AlertEvent | None:
        rule = cond.rule
        key: Key = (*inputs.key, rule.name)
        st = self._states.setdefault(key, _State())
        start, active = inputs.window_start, cond.active
        if st.last_window is not None and start <= st.last_window:
            return self._revise(st, key, inputs, cond, now)
        st.last_window = start
        self._remember(st, start, active)
        if st.firing:
            if active is True:
                st.false_streak = 0
            elif active is False:
                st.false_streak += 1
                if st.false_streak >= rule.resolve_after:
                    return self._resolve(st, key, inputs, cond, now)
            return None
        return self._fire(st, key, inputs, cond, now) if active is True else None

    def _revise(
        self, st: _State, key: Key, inputs: WindowInputs, cond: Condition, now: datetime
    ) -> AlertEvent | None:
        start, active = inputs.window_start, cond.active
        if start not in st.seen and (not st.seen or start < min(st.seen)):
            self.counts["stale"] += 1
            return None
        prior = st.seen.get(start)
        if start in st.seen and prior == active:
            self.counts["duplicates"] += 1
            return None
        self._remember(st, start, active)
        latest = start == st.last_window
        if not st.firing:
            return self._fire(st, key, inputs, cond, now) if active is True else None
        if latest and active is True:
            st.false_streak = 0
        elif latest and active is False and prior is True:
            st.false_streak += 1
            if st.false_streak >= cond.rule.resolve_after:
                return self._resolve(st, key, inputs, cond, now)
        if active is False and prior is True and not self._breached_since(st):
            # the revision took away the only evidence: the episode was a false alarm (e.g. labels came late)
            st.false_streak = 0
            return self._resolve(st, key, inputs, cond, now)
        return None

    @staticmethod
    def _breached_since(st: _State) -> bool:
        """Whether any remembered window of the current episode still holds the condition."""
        start = st.episode_start
        return any(v is True for w, v in st.seen.items() if start is None or w >= start)

    def _remember(self, st: _State, start: datetime, active: bool | None) -> None:
        st.seen[start] = active
        if len(st.seen) > self.revision_windows:
            for old in sorted(st.seen)[: len(st.seen) - self.revision_windows]:
                del st.seen[old]

    def _fire(
        self, st: _State, key: Key, inputs: WindowInputs, cond: Condition, now: datetime
    ) -> AlertEvent | None:
        if st.cooldown_until is not None and inputs.window_start < st.cooldown_until:
            self.counts["cooldown"] += 1
            return None
        if self.is_silenced(inputs.model_id, cond.rule.name, now):
            self.counts["silenced"] += 1
            return None
        st.firing, st.episode_start, st.false_streak = True, inputs.window_start, 0
        self.counts["fired"] += 1
        return self._event("firing", alert_id(*key, inputs.window_start), inputs, cond, now, 0)

    def _resolve(
        self, st: _State, key: Key, inputs: WindowInputs, cond: Condition, now: datetime
    ) -> AlertEvent:
        assert st.episode_start is not None
        episode = st.episode_start
        ident = alert_id(*key, episode)
        streak = st.false_streak
        st.firing, st.episode_start, st.false_streak = False, None, 0
        st.cooldown_until = inputs.window_end + inputs.size * cond.rule.cooldown_windows
        self.counts["resolved"] += 1
        return self._event("resolved", ident, inputs, cond, now, streak, since=episode)

    def _event(
        self,
        state: Literal["firing", "resolved"],
        ident: str,
        inputs: WindowInputs,
        cond: Condition,
        now: datetime,
        streak: int,
        since: datetime | None = None,
    ) -> AlertEvent:
        return AlertEvent(
            alert_id=ident,
            state=state,
            severity=cond.rule.severity,
            model_id=inputs.model_id,
            model_version=inputs.model_version,
            segment=inputs.segment,
            rule=cond.rule.name,
            metric=cond.metric,
            observed=cond.observed if cond.observed is None or math.isfinite(cond.observed) else None,
            threshold=cond.threshold,
            window_start=inputs.window_start,
            window_end=inputs.window_end,
            time=now,
            message=message(state, inputs, cond, streak),
            evidence_sql=evidence_sql(inputs, cond, self.database, since),
        )

    def to_bytes(self) -> bytes:
        """Serialise the whole state (JSON) for a restart."""
        return orjson.dumps(
            {
                "database": self.database,
                "revision_windows": self.revision_windows,
                "states": [[list(key), st.to_json()] for key, st in self._states.items()],
                "silences": [[m, r, until.isoformat()] for (m, r), until in self._silences.items()],
                "counts": self.counts,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> AlertTracker:
        """Inverse of :meth:`to_bytes`."""
        data = orjson.loads(raw)
        tracker = cls(data["database"], data["revision_windows"])
        for key, st in data["states"]:
            tracker._states[(key[0], key[1], key[2], key[3])] = _State.from_json(st)
        for model_id, rule, until in data["silences"]:
            tracker._silences[(model_id, rule)] = datetime.fromisoformat(until)
        tracker.counts.update(data["counts"])
        return tracker


def _num(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) < 0.01 or abs(value) >= 1e6):
        return f"{value:.3g}"
    return f"{value:,.2f}"


def _who(inputs: WindowInputs) -> str:
    version = inputs.model_version
    version = f" v{version}" if version.replace(".", "").isdigit() else f" {version}" if version else ""
    segment = f" (segment {inputs.segment})" if inputs.segment else ""
    return f"{inputs.model_id}{version}{segment}"


def _window(inputs: WindowInputs) -> str:
    start, end = inputs.window_start, inputs.window_end
    tail = end.strftime("%H:%M") if end.date() == start.date() else end.strftime("%Y-%m-%d %H:%M")
    return f"the window {start:%Y-%m-%d %H:%M}-{tail} UTC"


def _samples(metric: str, samples: int | None) -> str:
    if samples is None:
        return ""
    noun = "labelled outcomes" if metric in LABEL_METRICS else "predictions"
    return f", {samples:,} {noun}"


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"


def _describe(inputs: WindowInputs, cond: Condition, firing: bool) -> str:
    rule, who, win = cond.rule, _who(inputs), _window(inputs)
    if isinstance(rule, NoDataRule):
        if firing:
            return (f"no predictions from {who} for {_duration(cond.observed)} (threshold {rule.windows} windows, "
                    f"{_duration(cond.threshold)}): is its model server or logger down?")
        return f"predictions from {who} arrive again"
    obs, thr = _num(cond.observed), _num(cond.threshold)
    if isinstance(rule, ThresholdRule):
        verb = ("fell to" if rule.op in ("<", "<=") else "rose to") if firing else "is back at"
        run = f" for {rule.for_windows} consecutive windows" if firing and rule.for_windows > 1 else ""
        return f"{rule.metric} of {who} {verb} {obs} (threshold {thr}){run} in {win}" + _samples(
            rule.metric, cond.samples
        )
    if isinstance(rule, RelativeRule):
        side = "below" if rule.direction == "drop" else "above"
        verb = ("fell to" if rule.direction == "drop" else "rose to") if firing else "is back at"
        return (
            f"{rule.metric} of {who} {verb} {obs}, {'more' if firing else 'no more'} than "
            f"{rule.by_percent:g}% {side} its baseline {_num(cond.baseline)} (threshold {thr}) in {win}"
            + _samples(rule.metric, cond.samples)
        )
    if isinstance(rule, DetectorRule):
        if firing:
            return f"drift detector {', '.join(cond.details)} fired for {who} in {win}"
        return f"no drift detector ({rule.detector}) fired on the {rule.signal} signal of {who} in {win}"
    if isinstance(rule, FeatureDriftRule):
        test = "" if rule.test == "any" else f" ({rule.test})"
        names = f": {', '.join(cond.details)}" if cond.details else ""
        if rule.feature is not None:
            state = "drifted" if firing else "no longer drifts"
            return f"input {rule.feature} of {who} {state}{test} in {win}"
        count, least = len(cond.details), rule.min_features
        return f"{count} input features of {who} drifted{test} (threshold {least}) in {win}{names}"
    assert isinstance(rule, DataQualityRule)
    where = rule.feature if rule.feature is not None else (", ".join(cond.details) or "every feature")
    return f"{rule.check} of {where} for {who} is {obs} (threshold {rule.op} {thr}) in {win}"


def message(
    state: Literal["firing", "resolved"], inputs: WindowInputs, cond: Condition, streak: int = 0
) -> str:
    """One human sentence for an alert event, with the drifted inputs of the window as context."""
    text = _describe(inputs, cond, state == "firing")
    if state == "resolved":
        why = "" if isinstance(cond.rule, NoDataRule) else f"; condition false for {streak} consecutive windows"
        if streak == 0 and not isinstance(cond.rule, NoDataRule):
            why = "; no window of the episode breaches any more (revised by late data)"
        text = f"resolved '{cond.rule.name}': {text}{why}"
    if not isinstance(cond.rule, FeatureDriftRule):
        drifted = sorted({d.feature for d in inputs.drift if d.drifted})
        if drifted:
            text += f"; drifted inputs: {', '.join(drifted)}"
    return text


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ts(value: datetime) -> str:
    return f"toDateTime64({_lit(_utc(value).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3])}, 3, 'UTC')"


def evidence_sql(
    inputs: WindowInputs, cond: Condition, database: str = "driftwarden", since: datetime | None = None
) -> str:
    """A ClickHouse SELECT showing the rows behind a condition, filtered to the model and window(s).

    Metric rules show the windows from ``since`` (default: the first window the rule read) to this one.
    """
    rule, db = cond.rule, database
    model = f"model_id = {_lit(inputs.model_id)} AND model_version = {_lit(inputs.model_version)}"
    start = inputs.window_start
    if isinstance(rule, NoDataRule):
        return (
            f"SELECT window_start, model_version, value AS predictions FROM {db}.window_metrics FINAL "
            f"WHERE model_id = {_lit(inputs.model_id)} AND segment = '' AND metric = 'predictions' "
            "ORDER BY window_start DESC LIMIT 20"
        )
    if isinstance(rule, ThresholdRule | RelativeRule):
        since = since if since is not None else start - required_lookback(rule, inputs.size)
        return (
            f"SELECT window_start, window_end, metric, value, samples FROM {db}.window_metrics FINAL "
            f"WHERE {model} AND segment = {_lit(inputs.segment)} AND metric = {_lit(rule.metric)} "
            f"AND window_start >= {_ts(since)} AND window_start <= {_ts(start)} ORDER BY window_start"
        )
    if isinstance(rule, FeatureDriftRule):
        extra = "" if rule.test == "any" else f" AND test = {_lit(rule.test)}"
        extra += "" if rule.feature is None else f" AND feature = {_lit(rule.feature)}"
        return (
            "SELECT feature, test, statistic, p_value, threshold, drifted, samples "
            f"FROM {db}.feature_drift FINAL WHERE {model} AND segment = {_lit(inputs.segment)} "
            f"AND window_start = {_ts(start)}{extra} "
            "ORDER BY drifted DESC, feature, test"
        )
    if isinstance(rule, DetectorRule):
        extra = "" if rule.detector == "any" else f" AND detector = {_lit(rule.detector)}"
        extra += "" if rule.signal == "any" else f" AND signal = {_lit(rule.signal)}"
        return (
            "SELECT detector, signal, event_time, change_time, position, change_position, estimate_before, "
            "estimate_after "
            f"FROM {db}.drift_events FINAL WHERE {model} "
            f"AND event_time >= {_ts(start)} AND event_time < {_ts(inputs.window_end)}{extra} "
            "ORDER BY event_time"
        )
    extra = "" if rule.feature is None else f" AND feature = {_lit(rule.feature)}"
    return (
        f"SELECT feature, `check`, value, samples, detail FROM {db}.data_quality FINAL "
        f"WHERE {model} AND segment = {_lit(inputs.segment)} AND window_start = {_ts(start)} "
        f"AND `check` = {_lit(rule.check)}{extra} "
        "ORDER BY value DESC"
    )
