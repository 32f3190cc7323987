"""The model-spec JSON Schema describes the rule parameters that decide whether a rule can fire, with the
defaults the rule models really use."""

from __future__ import annotations

import json
from pathlib import Path

from stream.alerts.rules import _BY_KIND, KINDS, NoDataRule, RelativeRule, ThresholdRule, parse_rules
from stream.contracts.events import RULE_SCHEMA

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "model_spec.schema.json"
PARAMETERS = ("min_samples", "for_windows", "resolve_after", "cooldown_windows", "windows")


def default(kind: str, name: str) -> object:
    return _BY_KIND[kind].model_fields[name].default


def test_the_schema_names_every_kind_and_the_defaults_of_the_rule_models() -> None:
    props = RULE_SCHEMA["properties"]
    assert props["kind"]["enum"] == list(KINDS), "add the new kind to RULE_SCHEMA in stream/contracts/events.py"
    assert props["min_samples"]["default"] == default("threshold", "min_samples") == default("relative", "min_samples")
    assert props["for_windows"]["default"] == default("threshold", "for_windows")
    assert props["windows"]["default"] == default("no_data", "windows")
    for name in ("resolve_after", "cooldown_windows", "severity"):
        values = {kind: default(kind, name) for kind in KINDS if kind != "no_data"}
        assert set(values.values()) == {props[name]["default"]}, (name, values)
    assert f"default {default('no_data', 'resolve_after')}" in props["resolve_after"]["description"]
    assert f"default {default('no_data', 'cooldown_windows')}" in props["cooldown_windows"]["description"]
    for name in PARAMETERS:
        field = next(c.model_fields[name] for c in (ThresholdRule, RelativeRule, NoDataRule) if name in c.model_fields)
        bound = [m for m in field.metadata if hasattr(m, "ge")]
        assert props[name]["minimum"] == bound[0].ge and props[name]["description"], name


def test_the_exported_model_spec_schema_carries_the_rule_parameters() -> None:
    items = json.loads(SCHEMA.read_text())["properties"]["rules"]["items"]
    assert items == RULE_SCHEMA
    # what the schema calls a rule is what parse_rules accepts
    assert parse_rules([{"kind": "threshold", "metric": "accuracy", "op": "<", "value": 0.8, "min_samples": 30,
                         "for_windows": 2, "resolve_after": 1, "cooldown_windows": 0}, {"disable": "default-no-data"}])
