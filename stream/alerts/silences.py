"""Alert silences: the :class:`Silence` record, its encoding on the compacted silences topic, and applying it.

A silence mutes *firing* alerts of one model (``rule`` None: every rule) or of one rule of a model until a
UTC time. It travels on the compacted topic :data:`SILENCES_TOPIC`, keyed ``"{model_id}|{rule or '*'}"``,
its value the JSON of the record. Ending a silence early publishes a record of the same key whose ``until``
is not in the future (not a tombstone), so a reader starting from the beginning sees the end too; a
tombstone (null value) is read as an ended silence all the same. The latest record of a key wins, in topic
order. :class:`Silences` keeps that latest record per key and applies it to alert trackers
(:class:`stream.alerts.state.AlertTracker`), including trackers created after the record was read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from stream.contracts.events import _MODEL_ID_PATTERN, Timestamp

__all__ = [
    "SILENCES_TOPIC",
    "Silence",
    "SilenceTarget",
    "Silences",
    "apply",
    "create",
    "decode",
    "encode",
    "ended",
    "key_of",
    "parse_duration",
    "parse_time",
    "resolve_until",
]

SILENCES_TOPIC = "driftwarden-silences"
"""Compacted topic of silence records (one partition)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
_MAX_DURATION = timedelta(days=36500)


class Silence(BaseModel):
    """A silence of a model's alerts (``rule`` None: all its rules) until ``until`` (UTC)."""

    model_config = ConfigDict(val_temporal_unit="milliseconds", extra="ignore", frozen=True)

    model_id: str = Field(min_length=1, max_length=128, pattern=_MODEL_ID_PATTERN, description="Model id.")
    rule: str | None = Field(default=None, min_length=1, description="Rule name; null silences every rule.")
    until: Timestamp = Field(description="End of the silence; a time not in the future means it has ended.")
    reason: str = Field(default="", max_length=2000, description="Why, in words.")
    created_at: Timestamp = Field(description="When the record was published.")
    created_by: str = Field(default="", max_length=256, description="Who published it (login name).")

    @field_validator("rule")
    @classmethod
    def _not_star(cls, value: str | None) -> str | None:
        if value == "*":
            raise ValueError("'*' stands for every rule: leave the rule out instead")
        return value

    @property
    def key(self) -> str:
        """The record key on the silences topic."""
        return key_of(self.model_id, self.rule)

    def active(self, now: datetime) -> bool:
        """Whether the silence mutes alerts at ``now`` (``until`` is exclusive)."""
        return now < self.until


class SilenceTarget(Protocol):
    """What a silence is applied to: the silence API of :class:`stream.alerts.state.AlertTracker`."""

    def silence(self, model_id: str, rule: str | None, until: datetime) -> None: ...

    def unsilence(self, model_id: str, rule: str | None = None) -> None: ...


def key_of(model_id: str, rule: str | None) -> str:
    """The topic key of a model's silence (``rule`` None: every rule).

    >>> key_of("fraud", None), key_of("fraud", "auc-drop")
    ('fraud|*', 'fraud|auc-drop')
    """
    return f"{model_id}|{rule or '*'}"


def encode(silence: Silence) -> tuple[bytes, bytes]:
    """Key and value (UTF-8 JSON) of a silence record."""
    return silence.key.encode(), silence.model_dump_json().encode()


def _one_line(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"])
    return (f"field '{where}': " if where else "") + first["msg"].removeprefix("Value error, ")


def decode(value: bytes | str) -> Silence:
    """Parse a silence record's value; raises ValueError with one line when it is not a valid silence."""
    try:
        return Silence.model_validate_json(value)
    except ValidationError as exc:
        raise ValueError(f"bad silence record: {_one_line(exc)}") from None


def create(model_id: str, rule: str | None, until: datetime, now: datetime, reason: str = "",
           created_by: str = "") -> Silence:
    """A new silence record created at ``now``; raises ValueError with one line when a field is invalid."""
    try:
        return Silence(model_id=model_id, rule=rule, until=until, reason=reason, created_at=now,
                       created_by=created_by)
    except ValidationError as exc:
        raise ValueError(f"invalid silence: {_one_line(exc)}") from None


def ended(model_id: str, rule: str | None, now: datetime, reason: str = "", created_by: str = "") -> Silence:
    """The record that ends a silence at ``now`` (its ``until`` is ``now``, so it is not active after)."""
    return create(model_id, rule, now, now, reason, created_by)


def _from_key(key: bytes) -> Silence:
    """An ended silence for a tombstone's key."""
    model_id, sep, rule = key.decode("utf-8", "replace").partition("|")
    if not sep:
        raise ValueError(f"bad silence key {key!r}: expected 'model|rule' or 'model|*'")
    try:
        return ended(model_id, None if rule == "*" else rule, _EPOCH)
    except ValueError as exc:
        raise ValueError(f"bad silence key {key!r}: {str(exc).removeprefix('invalid silence: ')}") from None


def apply(tracker: SilenceTarget, silence: Silence, now: datetime | None = None) -> bool:
    """Set (when active at ``now``, default the wall clock) or remove the silence on ``tracker``.

    Returns whether the silence is active.
    """
    now = datetime.now(UTC) if now is None else now
    if silence.active(now):
        tracker.silence(silence.model_id, silence.rule, silence.until)
        return True
    tracker.unsilence(silence.model_id, silence.rule)
    return False


class Silences:
    """The latest silence record of every key, in topic order; applies them to trackers by model id."""

    def __init__(self) -> None:
        self._by_model: dict[str, dict[str | None, Silence]] = {}

    def __len__(self) -> int:
        return sum(len(rules) for rules in self._by_model.values())

    def add(self, silence: Silence) -> None:
        """Record ``silence``; it replaces the previous record of its key."""
        self._by_model.setdefault(silence.model_id, {})[silence.rule] = silence

    def apply_message(self, key: bytes | None, value: bytes | None) -> Silence:
        """Decode and record one topic record (a tombstone ends its key's silence); raises ValueError."""
        if value is None:
            if key is None:
                raise ValueError("bad silence record: neither key nor value")
            silence = _from_key(key)
        else:
            silence = decode(value)
        self.add(silence)
        return silence

    def all(self) -> list[Silence]:
        """Every latest record, active or not, ordered by model id then rule (model-wide first)."""
        out: list[Silence] = []
        for model_id in sorted(self._by_model):
            rules = self._by_model[model_id]
            out.extend(rules[rule] for rule in sorted(rules, key=lambda r: (r is not None, r or "")))
        return out

    def active(self, now: datetime) -> list[Silence]:
        """The records active at ``now``, ordered like :meth:`all`."""
        return [s for s in self.all() if s.active(now)]

    def apply_to(self, trackers: Iterable[tuple[str, SilenceTarget]], now: datetime | None = None) -> int:
        """Apply the records of each ``(model_id, tracker)``'s model to it; return how many were applied.

        Idempotent: calling it again (for instance with trackers created since) changes nothing else.
        """
        now = datetime.now(UTC) if now is None else now
        applied = 0
        for model_id, tracker in trackers:
            for silence in self._by_model.get(model_id, {}).values():
                apply(tracker, silence, now)
                applied += 1
        return applied


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as ``90m``, ``2h``, ``1d`` or ``1h30m`` (units s, m, h, d, w).

    >>> parse_duration("90m"), parse_duration("1d")
    (datetime.timedelta(seconds=5400), datetime.timedelta(days=1))
    >>> parse_duration("2x")
    Traceback (most recent call last):
    ...
    ValueError: invalid duration '2x': write a number and a unit (s, m, h, d or w), e.g. 90m, 2h or 1d
    """
    compact = text.strip().lower().replace(" ", "")
    if not compact or _PART.sub("", compact):
        raise ValueError(
            f"invalid duration {text!r}: write a number and a unit (s, m, h, d or w), e.g. 90m, 2h or 1d"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    if seconds == 0:
        raise ValueError(f"invalid duration {text!r}: it must be longer than zero")
    if seconds > _MAX_DURATION.total_seconds():
        raise ValueError(f"invalid duration {text!r}: at most 36500d (100 years)")
    return timedelta(seconds=seconds)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or an offset; none means UTC) into a UTC datetime."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"invalid time {text!r}: use RFC 3339, e.g. 2030-01-31T18:00:00Z") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def resolve_until(duration: str | None, until: str | None, now: datetime) -> datetime:
    """The end of a new silence from exactly one of a duration (from ``now``) or an RFC 3339 time."""
    if (duration is None) == (until is None):
        raise ValueError("give exactly one of --for DURATION (e.g. 2h) or --until TIME (RFC 3339)")
    if duration is not None:
        return now + parse_duration(duration)
    assert until is not None
    end = parse_time(until)
    if end <= now:
        raise ValueError(f"--until {until} is not in the future (now is {now:%Y-%m-%dT%H:%M:%SZ})")
    return end
