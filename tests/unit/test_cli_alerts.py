"""Silences (duration parsing, encoding, applying to a real AlertTracker) and the pure parts of `alerts`."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from stream.alerts.rules import Condition, WindowInputs, parse_rules
from stream.alerts.silences import (
    Silences,
    apply,
    create,
    decode,
    encode,
    ended,
    parse_duration,
    parse_time,
    resolve_until,
)
from stream.alerts.state import AlertTracker
from stream.cli import common
from stream.cli.alerts import LIST_COLUMNS, alerts_app, event_line, format_rows, human, list_query
from stream.contracts.events import AlertEvent
from stream.errors import UserError

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# ---- durations and times -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("90m", 90 * 60), ("2h", 7200), ("1d", 86400), ("30s", 30), ("1w", 604800), ("1h30m", 5400),
    (" 2H ", 7200), ("1d 12h", 129600), ("36500d", 36500 * 86400),
])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(("text", "why"), [
    ("", "write a number and a unit"), ("90", "write a number and a unit"), ("2x", "write a number and a unit"),
    ("h", "write a number and a unit"), ("-1h", "write a number and a unit"), ("1.5h", "write a number"),
    ("0m", "longer than zero"), ("0h0m", "longer than zero"), ("36501d", "at most 36500d"),
])
def test_parse_duration_errors_are_one_line(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        parse_duration(text)
    assert "\n" not in str(info.value) and repr(text) in str(info.value)


def test_parse_time_normalises_to_utc() -> None:
    assert parse_time("2030-01-31T18:00:00Z") == datetime(2030, 1, 31, 18, tzinfo=UTC)
    assert parse_time("2030-01-31T18:00:00+02:00") == datetime(2030, 1, 31, 16, tzinfo=UTC)
    naive = parse_time("2030-01-31 18:00")
    assert naive == datetime(2030, 1, 31, 18, tzinfo=UTC) and naive.tzinfo is UTC
    with pytest.raises(ValueError, match="invalid time 'tomorrow': use RFC 3339"):
        parse_time("tomorrow")


def test_resolve_until() -> None:
    assert resolve_until("2h", None, NOW) == datetime(2024, 5, 1, 14, tzinfo=UTC)
    assert resolve_until(None, "2024-05-01T14:00:00+01:00", NOW) == datetime(2024, 5, 1, 13, tzinfo=UTC)
    with pytest.raises(ValueError, match="not in the future"):
        resolve_until(None, "2024-05-01T12:00:00Z", NOW)  # equal to now: already over
    for duration, until in ((None, None), ("2h", "2030-01-01T00:00:00Z")):
        with pytest.raises(ValueError, match="exactly one of --for"):
            resolve_until(duration, until, NOW)


# ---- the record and its encoding -----------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    s = create("fraud", "auc-drop", NOW + timedelta(hours=2), NOW, "deploy", "alice")
    key, value = encode(s)
    assert key == b"fraud|auc-drop"
    assert orjson.loads(value) == {"model_id": "fraud", "rule": "auc-drop", "until": "2024-05-01T14:00:00Z",
                                   "reason": "deploy", "created_at": "2024-05-01T12:00:00Z", "created_by": "alice"}
    assert decode(value) == s and decode(value.decode()) == s
    whole = create("fraud", None, NOW + timedelta(minutes=1), NOW)
    assert encode(whole)[0] == b"fraud|*" and decode(encode(whole)[1]).rule is None


def test_decode_accepts_epoch_millis_and_offsets() -> None:
    value = b'{"model_id": "m", "until": 1714564800000, "created_at": "2024-05-01T13:00:00+01:00"}'
    s = decode(value)
    assert s.until == NOW and s.created_at == NOW and s.rule is None and s.reason == ""


@pytest.mark.parametrize(("value", "why"), [
    (b"{not json", "bad silence record: "),
    (b'{"model_id": "m"}', "field 'until': Field required"),
    (b'{"model_id": "bad id", "until": 0, "created_at": 0}', "field 'model_id'"),
    (b'{"model_id": "m", "rule": "*", "until": 0, "created_at": 0}', "leave the rule out"),
])
def test_decode_errors_are_one_line(value: bytes, why: str) -> None:
    with pytest.raises(ValueError, match=why) as info:
        decode(value)
    assert "\n" not in str(info.value)


def test_create_and_ended() -> None:
    with pytest.raises(ValueError, match="invalid silence: field 'model_id'"):
        create("", None, NOW, NOW)
    end = ended("fraud", "r", NOW)
    assert (end.until, end.created_at, end.key) == (NOW, NOW, "fraud|r")
    assert not end.active(NOW) and end.active(NOW - timedelta(microseconds=1))


# ---- applying to a real AlertTracker -------------------------------------------------------------------


T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
W = timedelta(minutes=5)


def fire_once(tracker: AlertTracker, rule_name: str, i: int, now: datetime) -> list[AlertEvent]:
    rule = parse_rules([{"name": rule_name, "kind": "threshold", "metric": "accuracy", "op": "<", "value": 0.8,
                         "resolve_after": 1, "cooldown_windows": 0}], defaults=False)[0]
    inputs = WindowInputs("fraud", "1", "", T0 + i * W, T0 + (i + 1) * W, {})
    return tracker.observe(inputs, [Condition(rule, True, "accuracy", 0.7, 0.8, 100)], now)


def test_apply_model_wide_silence_mutes_every_rule_until_it_ends() -> None:
    tracker = AlertTracker()
    assert apply(tracker, create("fraud", None, NOW + timedelta(hours=1), NOW), NOW) is True
    assert tracker.is_silenced("fraud", "acc", NOW) and tracker.is_silenced("fraud", "other", NOW)
    assert not tracker.is_silenced("fraud", "acc", NOW + timedelta(hours=1))  # until is exclusive
    assert not tracker.is_silenced("churn", "acc", NOW)
    assert fire_once(tracker, "acc", 0, NOW) == [] and tracker.counts["silenced"] == 1
    assert apply(tracker, ended("fraud", None, NOW), NOW) is False
    assert not tracker.is_silenced("fraud", "acc", NOW)
    assert [e.state for e in fire_once(tracker, "acc", 1, NOW)] == ["firing"]


def test_apply_rule_silence_only_mutes_that_rule_and_expired_records_unsilence() -> None:
    tracker = AlertTracker()
    apply(tracker, create("fraud", "acc", NOW + timedelta(minutes=5), NOW), NOW)
    assert tracker.is_silenced("fraud", "acc", NOW) and not tracker.is_silenced("fraud", "other", NOW)
    assert [e.state for e in fire_once(tracker, "other", 0, NOW)] == ["firing"]
    # the same record applied once it is over removes the silence from the tracker
    assert apply(tracker, create("fraud", "acc", NOW + timedelta(minutes=5), NOW), NOW + timedelta(hours=1)) is False
    assert orjson.loads(tracker.to_bytes())["silences"] == []


def test_silences_book_latest_record_wins_and_reaches_later_trackers() -> None:
    book = Silences()
    first = create("fraud", None, NOW + timedelta(hours=2), NOW, "a")
    book.apply_message(*encode(first))
    book.apply_message(*encode(create("fraud", "acc", NOW + timedelta(hours=1), NOW)))
    book.apply_message(*encode(create("churn", None, NOW + timedelta(hours=3), NOW)))
    book.apply_message(*encode(ended("fraud", None, NOW + timedelta(minutes=1))))
    assert len(book) == 3
    assert [(s.model_id, s.rule) for s in book.all()] == [("churn", None), ("fraud", None), ("fraud", "acc")]
    later = NOW + timedelta(minutes=2)
    assert [(s.model_id, s.rule) for s in book.active(later)] == [("churn", None), ("fraud", "acc")]

    fraud, churn, other = AlertTracker(), AlertTracker(), AlertTracker()  # created after every record
    assert book.apply_to([("fraud", fraud), ("churn", churn), ("other", other)], later) == 3
    assert fraud.is_silenced("fraud", "acc", later) and not fraud.is_silenced("fraud", "x", later)
    assert churn.is_silenced("churn", "x", later) and not other.is_silenced("other", "x", later)
    assert orjson.loads(fraud.to_bytes())["silences"] == [["fraud", "acc", "2024-05-01T13:00:00+00:00"]]
    assert orjson.loads(other.to_bytes())["silences"] == []  # other models' records are not applied to it


def test_silences_book_tombstone_ends_and_bad_records_raise() -> None:
    book = Silences()
    book.apply_message(*encode(create("fraud", "r|x", NOW + timedelta(hours=1), NOW)))
    end = book.apply_message(b"fraud|r|x", None)
    assert (end.model_id, end.rule, end.active(NOW)) == ("fraud", "r|x", False)
    assert book.active(NOW) == [] and len(book) == 1
    assert book.apply_message(b"fraud|*", None).rule is None
    for key, value in ((None, None), (b"nobar", None), (b"bad id|*", None), (b"k", b"[]")):
        with pytest.raises(ValueError, match="bad silence"):
            book.apply_message(key, value)
    assert Silences().apply_to([("fraud", AlertTracker())]) == 0


# ---- alerts list ---------------------------------------------------------------------------------------


def test_list_query_filters_and_escapes() -> None:
    head = ("SELECT toString(time) AS time_utc, state, if(alert_id IN (SELECT alert_id FROM db.alerts WHERE "
            "state = 'resolved'), 'resolved', 'firing') AS episode, severity, model_id, model_version, segment, rule, "
            "metric, observed, threshold, message, alert_id FROM db.alerts FINAL")
    tail = " ORDER BY time DESC, alert_id, state DESC LIMIT 50"
    assert list_query("db", since=None) == head + tail
    # 24h before 2024-05-01 12:00:00.250 UTC, written independently of the code under test
    now = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    assert list_query("db", "m'x\\", "resolved", timedelta(hours=24), 50, now) == head + (
        " WHERE time >= toDateTime64('2024-04-30 12:00:00.250', 3, 'UTC') AND model_id = 'm\\'x\\\\' "
        "AND state = 'resolved'") + tail
    # "--" and "/*" inside literals are escaped, so no literal reads as a comment
    for model in ("a--b", "a/*b*/", "x'; DROP TABLE db.alerts; --"):
        statement = list_query("db", model, since=None)
        assert "--" not in statement and "/*" not in statement
    assert "model_id = 'a-\\x2D-b/\\x2Ac'" in list_query("db", "a---b/*c", since=None)
    with pytest.raises(UserError, match="unknown state 'open': use firing or resolved"):
        list_query("db", state="open")
    with pytest.raises(UserError, match="--limit must be at least 1"):
        list_query("db", limit=0)


def row(**over: Any) -> list[Any]:
    base = {"time_utc": "2024-05-01 12:05:00.000", "state": "firing", "episode": "resolved", "severity": "critical",
            "model_id": "fraud",
            "model_version": "1", "segment": "", "rule": "auc-drop", "metric": "auc", "observed": 0.61,
            "threshold": 0.7, "message": "auc of fraud v1 fell to 0.61", "alert_id": "a" * 40}
    base.update(over)
    return [base[c] for c in LIST_COLUMNS]


def test_format_rows_csv_json_and_table() -> None:
    rows = [row(), row(state="resolved", observed=None, threshold=float("nan"),
                       time_utc=datetime(2024, 5, 1, 12, 10, tzinfo=UTC), message='comma, "quote"')]
    parsed = list(csv.reader(io.StringIO(str(format_rows(LIST_COLUMNS, rows, "csv")))))
    assert parsed[0] == list(LIST_COLUMNS) and len(parsed) == 3
    assert parsed[2][LIST_COLUMNS.index("message")] == 'comma, "quote"'
    assert parsed[2][LIST_COLUMNS.index("time_utc")] == "2024-05-01T12:10:00+00:00"
    assert parsed[2][LIST_COLUMNS.index("observed")] == "" and parsed[2][LIST_COLUMNS.index("threshold")] == ""
    data = json.loads(str(format_rows(LIST_COLUMNS, rows, "json")))
    assert data[0] == dict(zip(LIST_COLUMNS, row(), strict=True))
    assert data[1]["observed"] is None and data[1]["threshold"] is None
    assert format_rows(LIST_COLUMNS, [], "json") == "[]\n"
    assert format_rows(LIST_COLUMNS, [], "csv") == ",".join(LIST_COLUMNS) + "\n"
    table = format_rows(LIST_COLUMNS, rows, "table")
    assert not isinstance(table, str)
    assert [c.header for c in table.columns] == ["time_utc", "state", "episode", "severity", "model_id",
                                                 "model_version", "segment", "rule", "message", "alert_id"]
    assert [str(c) for c in table.columns[-1]._cells] == ["a" * 12, "a" * 12]


@dataclass
class FakeQuery:
    """Stands in for `stream.cli.common.run_query`: records statements, answers with ``rows``."""

    statements: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)

    def __call__(self, statement: str) -> tuple[list[str], list[list[Any]]]:
        self.statements.append(statement)
        return list(LIST_COLUMNS), self.rows


@pytest.fixture
def fake_query(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeQuery:
    monkeypatch.setenv("DRIFTWARDEN_DATA_DIR", str(tmp_path))
    fake = FakeQuery()
    monkeypatch.setattr(common, "run_query", fake)
    return fake


def test_list_command_empty_and_filled(fake_query: FakeQuery) -> None:
    runner = CliRunner()
    empty = runner.invoke(alerts_app, ["list", "--model", "fraud", "--state", "firing"])
    assert empty.exit_code == 0, empty.output
    assert empty.output == "no alerts in the last 24h for model fraud in state firing\n"
    last = fake_query.statements[-1]
    assert "model_id = 'fraud' AND state = 'firing'" in last and last.endswith("LIMIT 50")
    assert runner.invoke(alerts_app, ["list", "--since", "all", "-f", "json"]).output == "[]\n"
    assert "FINAL WHERE" not in fake_query.statements[-1]
    fake_query.rows = [row(), row(state="resolved")]
    filled = runner.invoke(alerts_app, ["list", "--limit", "2", "--since", "90m"])
    assert filled.exit_code == 0, filled.output
    assert filled.output.count("auc of fraud v1 fell to 0.61") == 2 and "2 alerts (limit 2 reached)" in filled.output
    assert fake_query.statements[-1].endswith("LIMIT 2") and "time >= toDateTime64(" in fake_query.statements[-1]


@pytest.mark.parametrize(("args", "message"), [
    (["list", "--since", "yesterday"], "--since: invalid duration 'yesterday'"),
    (["list", "--format", "xml"], "unknown format 'xml'"),
    (["list", "--state", "open"], "unknown state 'open'"),
])
def test_list_command_rejects_bad_options(fake_query: FakeQuery, args: list[str], message: str) -> None:
    result = CliRunner().invoke(alerts_app, args)
    assert isinstance(result.exception, UserError) and message in str(result.exception)
    assert fake_query.statements == []


def test_silence_command_rejects_bad_input_before_touching_kafka(monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTWARDEN_DATA_DIR", str(tmp_path))  # no service, no Kafka configured
    runner = CliRunner()
    for args, message in ((["silence", "m"], "exactly one of --for"),
                          (["silence", "m", "--for", "2x"], "invalid duration '2x'"),
                          (["silence", "bad id", "--for", "1h"], "invalid silence: field 'model_id'"),
                          (["silence", "m", "--until", "2000-01-01T00:00:00Z"], "not in the future")):
        result = runner.invoke(alerts_app, args)
        assert isinstance(result.exception, UserError) and message in str(result.exception), args


# ---- formatting ----------------------------------------------------------------------------------------


def alert(**over: Any) -> AlertEvent:
    base: dict[str, Any] = {
        "alert_id": "0123456789abcdef" * 2, "state": "firing", "severity": "warning", "model_id": "fraud",
        "model_version": "2", "segment": "region=eu", "rule": "acc", "metric": "accuracy",
        "time": datetime(2024, 5, 1, 14, 5, 9, tzinfo=timezone(timedelta(hours=2))),
        "message": "accuracy of fraud v2 fell to 0.70", "evidence_sql": "SELECT 1",
    }
    return AlertEvent.model_validate(base | over)


def test_event_line_text_and_styles() -> None:
    line = event_line(alert())
    assert line.plain == ("2024-05-01 12:05:09Z  FIRING    warning   fraud v2 [region=eu]  acc  #0123456789ab  "
                          "accuracy of fraud v2 fell to 0.70")
    styles = {line.plain[s.start:s.end]: str(s.style) for s in line.spans}
    assert styles["FIRING  "] == "bold red" and styles["warning "] == "yellow"
    resolved = event_line(alert(state="resolved", severity="critical", segment=""))
    styles = {resolved.plain[s.start:s.end]: str(s.style) for s in resolved.spans}
    assert styles["RESOLVED"] == "bold green" and styles["critical"] == "bold red"
    assert " fraud v2  acc  #0123456789ab " in resolved.plain  # same id as its firing event
    assert styles["#0123456789ab"] == "magenta"


def test_human() -> None:
    assert [human(timedelta(seconds=s)) for s in (0, 59, 60, 3599, 3600, 86399, 86400 + 61, -5)] == [
        "0s", "59s", "1m", "59m 59s", "1h", "23h 59m", "1d 1m", "0s"]
