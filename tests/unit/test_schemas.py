"""Tests of the generated JSON Schema files in schemas/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stream.contracts.events import REASONS, PredictionEvent
from stream.contracts.schemas import EXAMPLES, SCHEMAS, export, render, stale

REPO_SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schema_files_are_up_to_date() -> None:
    assert stale(REPO_SCHEMAS) == [], "run `driftwarden schemas export` after changing stream/contracts/events.py"


def test_one_schema_and_one_example_file_per_event_type() -> None:
    assert set(SCHEMAS) == {
        "prediction_event",
        "ground_truth_event",
        "model_spec",
        "alert_event",
        "dead_letter",
    }
    expected = {f"{n}.schema.json" for n in SCHEMAS} | {f"examples/{n}.json" for n in SCHEMAS}
    assert set(render()) == expected


def test_export_writes_stable_files_and_stale_detects_changes(tmp_path: Path) -> None:
    assert sorted(stale(tmp_path)) == sorted(render())
    written = export(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(render())
    assert stale(tmp_path) == []
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    target = tmp_path / "prediction_event.schema.json"
    target.write_text(target.read_text(encoding="utf-8").replace('"maxLength": 128', '"maxLength": 64'))
    (tmp_path / "examples" / "dead_letter.json").unlink()
    assert stale(tmp_path) == ["prediction_event.schema.json", "examples/dead_letter.json"]
    export(tmp_path)
    assert stale(tmp_path) == []


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_examples_validate_against_their_model(name: str) -> None:
    model, mode = SCHEMAS[name]
    assert EXAMPLES[name]
    for example in EXAMPLES[name]:
        parsed = model.model_validate_json(json.dumps(example))
        assert model.model_validate(example) == parsed
        if mode == "serialization":
            # Outputs are documented as they appear on the wire.
            assert parsed.model_dump(mode="json") == example


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_schema_files_hold_examples_and_describe_every_property(name: str) -> None:
    schema = json.loads(render()[f"{name}.schema.json"])
    example_file = json.loads(render()[f"examples/{name}.json"])
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["examples"] == EXAMPLES[name]
    assert example_file == EXAMPLES[name][0]
    for example in schema["examples"]:
        assert set(schema.get("required", [])) <= set(example) <= set(schema["properties"])
    objects: list[dict[str, Any]] = [schema, *schema.get("$defs", {}).values()]
    for obj in objects:
        for prop, definition in obj["properties"].items():
            assert definition.get("description"), f"{name}: property {prop} has no description"


def test_prediction_examples_show_both_timestamp_forms() -> None:
    forms = {type(example["timestamp"]) for example in EXAMPLES["prediction_event"]}
    assert forms == {int, str}
    times = [PredictionEvent.model_validate(example).timestamp for example in EXAMPLES["prediction_event"]]
    assert [t.isoformat() for t in times] == [
        "2024-05-01T12:00:00.123000+00:00",
        "2024-05-01T12:00:00.123000+00:00",
    ]


def test_prediction_schema_carries_the_limits() -> None:
    schema = json.loads(render()["prediction_event.schema.json"])
    properties = schema["properties"]
    assert properties["prediction_id"]["maxLength"] == 128
    assert properties["features"]["maxProperties"] == 500
    assert properties["features"]["propertyNames"] == {"maxLength": 1024, "minLength": 1}
    assert [(t["type"], t.get("format")) for t in properties["timestamp"]["anyOf"]] == [
        ("string", "date-time"),
        ("number", None),
    ]
    assert schema["required"] == ["prediction_id", "model_id", "timestamp", "prediction"]


def test_dead_letter_schema_lists_reason_codes() -> None:
    schema = json.loads(render()["dead_letter.schema.json"])
    assert schema["properties"]["reason"]["enum"] == list(REASONS)
