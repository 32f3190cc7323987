"""The producer SDK (with an injected transport, no server), the JSONL reader and model-spec loading."""

from __future__ import annotations

import calendar
import io
import json
import math
import os
import socket
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from rich.console import Console

from stream.cli.models import load_spec, profile_summary, reference_profile
from stream.cli.produce import LineError, _Report, parse_jsonl
from stream.client import (
    AsyncProducer,
    DeliveryError,
    Producer,
    encode_ground_truth,
    encode_prediction,
    resolve_bootstrap,
)
from stream.config import Settings
from stream.contracts.events import ContractError, GroundTruthEvent, Limits, PredictionEvent, _event_models
from stream.contracts.registry import RegisteredModel
from stream.errors import UserError

TS = "2024-03-01T12:00:00.250+01:00"
TS_MS = calendar.timegm((2024, 3, 1, 11, 0, 0)) * 1000 + 250


def prediction(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"prediction_id": "p-1", "model_id": "churn", "timestamp": TS,
                             "features": {"x": 1.5, "c": "eu"}, "prediction": "1", "score": 0.75}
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.fail = fail

    def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.messages.append((topic, key, value))

    async def async_send(self, topic: str, key: bytes, value: bytes) -> None:
        self(topic, key, value)


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path, kafka_bootstrap_servers=None, **kw)


# --- encoding ---------------------------------------------------------------------------------------


def test_encoded_prediction_is_compact_json_with_epoch_ms_and_utf8_key() -> None:
    key, value = encode_prediction(prediction(prediction_id="été-7", features={"x": math.nan, "n": None}))
    assert key == "été-7".encode()
    assert b" " not in value
    decoded = json.loads(value)
    assert decoded == {"prediction_id": "été-7", "model_id": "churn", "model_version": "1", "timestamp": TS_MS,
                       "features": {"x": None, "n": None}, "prediction": "1", "score": 0.75, "segment": {}}


def test_encoded_ground_truth_round_trips_through_the_contract() -> None:
    key, value = encode_ground_truth({"prediction_id": "p-1", "label": 0, "timestamp": 1709290800250.9,
                                      "business": {"revenue": 2.5}})
    assert key == b"p-1"
    assert orjson.loads(value) == {"prediction_id": "p-1", "label": 0, "timestamp": TS_MS,
                                   "business": {"revenue": 2.5}}


def test_event_instances_are_accepted_and_revalidated_under_other_limits() -> None:
    event = PredictionEvent.model_validate(prediction(features={"a": 1, "b": 2, "c": 3}))
    assert encode_prediction(event)[0] == b"p-1"
    with pytest.raises(ContractError) as info:
        encode_prediction(event, Limits(max_features=2))
    assert info.value.reason == "too_many_features"


def test_ground_truth_instances_are_revalidated_under_other_limits() -> None:
    event = GroundTruthEvent.model_validate({"prediction_id": "p-12345", "label": 1, "timestamp": TS})
    assert encode_ground_truth(event)[0] == b"p-12345"
    with pytest.raises(ContractError) as info:
        encode_ground_truth(event, Limits(max_id_length=4))
    assert info.value.reason == "string_too_long"


@pytest.mark.parametrize("kind", [0, 1], ids=["prediction", "ground_truth"])
@pytest.mark.parametrize("limits", [Limits(), Limits(max_id_length=40)], ids=["default", "other"])
def test_an_instance_of_the_class_enforcing_the_limits_is_trusted(
    kind: int, limits: Limits, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = prediction() if kind == 0 else {"prediction_id": "p-1", "label": 1, "timestamp": TS}
    event: Any = _event_models(limits)[kind].model_validate(data)
    encode: Callable[[Any, Limits], tuple[bytes, bytes]] = (encode_prediction, encode_ground_truth)[kind]
    expected = encode(event, limits)
    for name in ("validate_prediction", "validate_ground_truth"):
        monkeypatch.setattr(f"stream.client.{name}", lambda *_: pytest.fail("validated again"))
    assert encode(event, limits) == expected


BAD_PREDICTIONS = [
    (prediction(timestamp=None), "missing_field", "timestamp"),
    (prediction(prediction_id=None), "missing_field", "prediction_id"),
    (prediction(score="0.7"), "wrong_type", "score"),
    (prediction(score=1.5), "invalid_value", "score"),
    (prediction(score=math.inf), "invalid_value", "score"),
    (prediction(model_id="bad id!"), "invalid_value", "model_id"),
    (prediction(timestamp="yesterday"), "wrong_type", "timestamp"),
    (prediction(prediction_id="x" * 129), "string_too_long", "prediction_id"),
    (prediction(features={f"f{i}": i for i in range(501)}), "too_many_features", "features"),
    (prediction(features={"big": "x" * 2000}), "string_too_long", "features.big"),
]


@pytest.mark.parametrize(("event", "reason", "field"), BAD_PREDICTIONS)
def test_invalid_prediction_raises_before_sending(event: dict[str, Any], reason: str, field: str,
                                                  tmp_path: Path) -> None:
    sink = Recorder()
    producer = Producer(settings=settings(tmp_path), send=sink)
    with pytest.raises(ContractError) as info:
        producer.send_prediction(event)
    assert info.value.reason == reason
    assert f"'{field}'" in str(info.value)
    assert "\n" not in str(info.value)
    assert sink.messages == [] and producer.sent == 0


def test_not_a_mapping_and_too_large_are_rejected(tmp_path: Path) -> None:
    sink = Recorder()
    producer = Producer(settings=settings(tmp_path), send=sink, limits=Limits(max_message_bytes=200))
    with pytest.raises(ContractError) as info:
        producer.send_prediction(["not", "a", "mapping"])  # type: ignore[arg-type]
    assert info.value.reason == "wrong_type"
    with pytest.raises(ContractError) as info:
        producer.send_prediction(prediction(segment={"region": "e" * 100}))
    assert info.value.reason == "too_large"
    assert "above the limit of 200 bytes" in str(info.value)
    producer.send_prediction(prediction())
    assert len(sink.messages) == 1


def test_invalid_ground_truth_raises(tmp_path: Path) -> None:
    sink = Recorder()
    producer = Producer(settings=settings(tmp_path), send=sink)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"prediction_id": "a", "timestamp": TS}, "missing_field"),
        ({"prediction_id": "a", "label": [1], "timestamp": TS}, "wrong_type"),
        ({"prediction_id": "a", "label": 1, "timestamp": TS, "business": {"r": math.nan}}, "invalid_value"),
    ]
    for event, reason in cases:
        with pytest.raises(ContractError) as info:
            producer.send_ground_truth(event)
        assert info.value.reason == reason
    assert sink.messages == []


def test_bulk_send_is_all_or_nothing(tmp_path: Path) -> None:
    sink = Recorder()
    producer = Producer(settings=settings(tmp_path), send=sink)
    events = [prediction(prediction_id=f"p{i}") for i in range(5)]
    events[3] = prediction(prediction_id="p3", score=2.0)
    with pytest.raises(ContractError) as info:
        producer.send_predictions(events)
    assert info.value.reason == "invalid_value"
    assert str(info.value).startswith("event 3: field 'score'")
    assert sink.messages == []
    events[3] = prediction(prediction_id="p3")
    assert producer.send_predictions(iter(events)) == 5
    assert [k for _, k, _ in sink.messages] == [f"p{i}".encode() for i in range(5)]
    assert producer.sent == 5


def test_topics_come_from_settings(tmp_path: Path) -> None:
    sink = Recorder()
    with Producer(settings=settings(tmp_path, topic_predictions="p2", topic_ground_truth="g2",
                                    topic_models="m2"), send=sink) as producer:
        producer.send_prediction(prediction())
        producer.send_ground_truths([{"prediction_id": "p-1", "label": "1", "timestamp": TS}])
        spec = load_spec_text(tmp_path, "model_id: m\ntask: regression\n")
        producer.send_model(RegisteredModel(spec=spec))
    assert [(t, k) for t, k, _ in sink.messages] == [("p2", b"p-1"), ("g2", b"p-1"), ("m2", b"m")]


def test_failed_deliveries_are_counted_and_reported_once(tmp_path: Path) -> None:
    producer = Producer(settings=settings(tmp_path), send=Recorder(fail=True))
    producer.send_predictions([prediction(prediction_id="a"), prediction(prediction_id="b")])
    assert (producer.sent, producer.failed) == (0, 2)
    with pytest.raises(DeliveryError, match="2 messages could not be delivered"):
        producer.flush()
    producer.flush()


async def test_async_producer_validates_and_counts(tmp_path: Path) -> None:
    sink = Recorder()
    async with AsyncProducer(settings=settings(tmp_path), send=sink.async_send) as producer:
        with pytest.raises(ContractError) as info:
            await producer.send_prediction(prediction(features={"x": [1, 2]}))
        assert info.value.reason == "wrong_type"
        await producer.send_prediction(prediction())
        assert await producer.send_predictions([prediction(prediction_id="q")]) == 1
        await producer.send_ground_truth({"prediction_id": "q", "label": True, "timestamp": 0})
    assert [(t, k) for t, k, _ in sink.messages] == [("predictions", b"p-1"), ("predictions", b"q"),
                                                     ("ground_truth", b"q")]
    assert (producer.sent, producer.failed) == (3, 0)


# --- where to produce -------------------------------------------------------------------------------


def test_bootstrap_prefers_the_running_service_then_configuration(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime.json"
    with socket.socket() as listening:  # this process plays the service: it owns the web port
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        runtime.write_text(json.dumps({"pid": os.getpid(), "bootstrap_servers": "127.0.0.1:1111",
                                       "embedded_broker": True, "web_url": f"http://127.0.0.1:{port}"}))
        configured = Settings(data_dir=tmp_path, kafka_bootstrap_servers="kafka:9092")
        assert resolve_bootstrap(configured) == ("127.0.0.1:1111", True)
        forged = {"pid": os.getppid(), "bootstrap_servers": "127.0.0.1:1111", "web_url": f"http://127.0.0.1:{port}"}
        runtime.write_text(json.dumps(forged))  # a live pid that does not own the port
        assert resolve_bootstrap(configured) == ("kafka:9092", False)
        runtime.write_text(json.dumps({**forged, "pid": os.getpid(), "web_url": f"http://10.1.2.3:{port}"}))
        assert resolve_bootstrap(configured) == ("kafka:9092", False)  # not this machine
        dead = 2**22 + 12345  # above the default pid_max (4194304), so no such process
        runtime.write_text(json.dumps({**forged, "pid": dead}))
        assert resolve_bootstrap(configured) == ("kafka:9092", False)
        real = tmp_path / "elsewhere.json"
        real.write_text(json.dumps({**forged, "pid": os.getpid()}))
        runtime.unlink()
        runtime.symlink_to(real)  # links are not followed
        assert resolve_bootstrap(configured) == ("kafka:9092", False)
    runtime.unlink()
    with pytest.raises(UserError, match="driftwarden up"):
        resolve_bootstrap(settings(tmp_path))
    with pytest.raises(UserError, match="DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS"):
        AsyncProducer(settings=settings(tmp_path))


# --- JSON Lines reader ------------------------------------------------------------------------------


def _lines(*rows: Any) -> list[bytes]:
    return [r if isinstance(r, bytes) else orjson.dumps(r) + b"\n" for r in rows]


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_jsonl_reader_numbers_lines_skips_blanks_and_rejects_bad_json(chunk: int) -> None:
    lines = _lines(
        b"\xef\xbb\xbf" + orjson.dumps(prediction(prediction_id="a")) + b"\r\n",  # 1: BOM, CRLF
        b"\n",  # 2: blank
        b"   \t\n",  # 3: blank
        b"{not json\n",  # 4
        prediction(prediction_id="b"),  # 5
        b"[1, 2]\n",  # 6
        prediction(prediction_id="c", timestamp=None),  # 7
        prediction(prediction_id="d"),  # 8 (no newline at the end)
    )
    lines[-1] = lines[-1].rstrip(b"\n")
    valid: list[tuple[int, str]] = []
    errors: list[LineError] = []
    for ok, bad in parse_jsonl(lines, "predictions", chunk=chunk):
        valid += [(n, e.prediction_id) for n, e in ok]
        errors += bad
    assert valid == [(1, "a"), (5, "b"), (8, "d")]
    assert [(e.line, e.reason) for e in sorted(errors, key=lambda e: e.line)] == [
        (4, "not_json"), (6, "wrong_type"), (7, "missing_field")]
    assert str(sorted(errors, key=lambda e: e.line)[2]) == "line 7: missing_field: field 'timestamp': field required"


def test_jsonl_reader_empty_input_and_size_limit() -> None:
    assert list(parse_jsonl([], "ground_truth")) == []
    assert list(parse_jsonl([b"\n", b"\n"], "ground_truth")) == []
    row = orjson.dumps({"prediction_id": "a", "label": "x" * 200, "timestamp": 0})
    [(ok, bad)] = parse_jsonl([row], "ground_truth", Limits(max_message_bytes=100))
    assert ok == [] and [(e.line, e.reason) for e in bad] == [(1, "too_large")]


def test_report_shows_at_most_max_errors_and_writes_all_rejects() -> None:
    shown = io.StringIO()
    rejects = io.StringIO()
    report = _Report(Console(file=shown, width=200), None, 2, rejects)
    errors = [LineError(n, "not_json", f"bad [red]{n}[/red]") for n in (3, 9, 12)]
    report.reject(errors)
    report.close()
    assert shown.getvalue().splitlines() == ["line 3: not_json: bad [red]3[/red]", "line 9: not_json: bad [red]9[/red]"]
    assert rejects.getvalue().splitlines() == [str(e) for e in errors]
    assert report.rejected == 3


# --- model specs and reference profiles -------------------------------------------------------------


def load_spec_text(tmp_path: Path, text: str, name: str = "spec.yaml") -> Any:
    path = tmp_path / name
    path.write_text(text)
    return load_spec(path)


SPEC = """model_id: churn
task: binary_classification
positive_class: "1"
features:
  - {name: x, type: numeric}
  - {name: c, type: categorical}
"""


def test_spec_loads_from_yaml_and_json(tmp_path: Path) -> None:
    spec = load_spec_text(tmp_path, SPEC)
    assert (spec.model_id, spec.task, [f.name for f in spec.features]) == ("churn", "binary_classification", ["x", "c"])
    as_json = json.dumps(spec.model_dump(mode="json"))
    assert load_spec_text(tmp_path, as_json, "spec.json") == spec


@pytest.mark.parametrize(("text", "name", "message"), [
    ("model_id: m\ntask: [unclosed\n", "s.yaml", "invalid YAML at line 3"),
    ('{"model_id": "m",}', "s.json", "invalid JSON at line 1 column 18"),
    ("- a\n- b\n", "s.yaml", "must be a mapping of fields, not list"),
    ("", "s.yaml", "not NoneType"),
    ("model_id: m\ntask: binary_classification\n", "s.yaml", "binary_classification needs positive_class"),
    ("model_id: m\ntask: regression\nfeatures: [{name: x, type: text}]\n", "s.yaml",
     "field 'features.0.type': Input should be 'numeric' or 'categorical'"),
    ("model_id: m\ntask: regression\ncolour: red\n", "s.yaml", "field 'colour': Extra inputs are not permitted"),
    ("task: sorting\n", "s.yaml", "(and 1 more)"),
])
def test_bad_specs_give_one_line_errors(tmp_path: Path, text: str, name: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        load_spec_text(tmp_path, text, name)
    assert message in str(info.value)
    assert str(info.value).startswith(str(tmp_path / name))
    assert "\n" not in str(info.value)


def test_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"cannot read .*nope\.yaml: No such file"):
        load_spec(tmp_path / "nope.yaml")


def test_reference_profile_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=301)
    x[[5, 17]] = np.nan
    c = rng.choice(["a", "b", "c"], size=301).astype(object)
    c[3] = None
    path = tmp_path / "ref.csv"
    path.write_text("x,c,unused\n" + "".join(
        f"{'' if np.isnan(v) else repr(float(v))},{'' if k is None else k},0\n" for v, k in zip(x, c, strict=True)))
    spec = load_spec_text(tmp_path, SPEC)
    profile = reference_profile(spec, path, bins=4)
    present = x[~np.isnan(x)]
    edges = np.unique(np.quantile(present, [0.25, 0.5, 0.75], method="inverted_cdf"))
    assert profile["x"].edges == tuple(edges)
    lower = np.concatenate([[-np.inf], edges])
    upper = np.concatenate([edges, [np.inf]])
    expected = [int(((present > lo) & (present <= hi)).sum()) for lo, hi in zip(lower, upper, strict=True)]
    assert list(profile["x"].counts) == expected
    assert (profile["x"].n, profile["x"].missing) == (301, 2)
    counts = Counter(k for k in c if k is not None)
    assert dict(zip(profile["c"].categories, profile["c"].counts, strict=True)) == counts
    assert profile["c"].missing == 1
    summary = profile_summary(RegisteredModel(spec=spec, profile={k: v.to_dict() for k, v in profile.items()}))
    assert summary["profile"]["x"]["bins"] == len(expected)
    assert summary["profile"]["c"]["top"] == dict(counts.most_common())


def test_reference_profile_errors(tmp_path: Path) -> None:
    spec = load_spec_text(tmp_path, SPEC)
    path = tmp_path / "ref.csv"
    path.write_text("x,other\n1,2\n")
    with pytest.raises(UserError, match="has no column 'c'"):
        reference_profile(spec, path)
    with pytest.raises(UserError, match="no such file"):
        reference_profile(spec, tmp_path / "missing.csv")
    bare = load_spec_text(tmp_path, "model_id: m\ntask: regression\n", "bare.yaml")
    with pytest.raises(UserError, match="lists no features"):
        reference_profile(bare, path)
