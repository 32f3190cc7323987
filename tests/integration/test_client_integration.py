"""The producer SDK and the produce/models commands against the real embedded broker (tansu)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from aiokafka.partitioner import murmur2
from typer.testing import CliRunner

from stream.cli.models import models_app, read_models
from stream.cli.produce import produce_app
from stream.client import AsyncProducer, Producer
from stream.config import Settings
from stream.contracts.events import decode_ground_truth, decode_predictions
from stream.kafka.embedded import EmbeddedBroker
from stream.monitor.profiles import FeatureProfile
from stream.runtime.service import ensure_topics
from tests.integration.kafka import read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    with EmbeddedBroker() as running:
        bootstrap = running.bootstrap_servers
        asyncio.run(ensure_topics(bootstrap, Settings(kafka_bootstrap_servers=bootstrap)))
        yield bootstrap


@pytest.fixture
def env(kafka: str, tmp_path: Path) -> dict[str, str]:
    return {"DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS": kafka, "DRIFTWARDEN_DATA_DIR": str(tmp_path / "data")}


def test_sdk_publishes_predictions_keyed_by_id(kafka: str, tmp_path: Path) -> None:
    s = Settings(kafka_bootstrap_servers=kafka, data_dir=tmp_path, topic_predictions="sdk-predictions")
    asyncio.run(ensure_topics(kafka, s))
    events = [{"prediction_id": f"id-{i}", "model_id": "m", "timestamp": 1_700_000_000_000 + i,
               "features": {"x": i / 7, "c": "ab"[i % 2]}, "prediction": i % 2, "score": (i % 100) / 100}
              for i in range(1000)]
    with Producer(settings=s) as producer:
        assert producer.bootstrap_servers == kafka
        producer.send_predictions(events[:500])
        for event in events[500:]:
            producer.send_prediction(event)
        producer.flush()
        assert (producer.sent, producer.failed) == (1000, 0)
    records = asyncio.run(read_topic(kafka, "sdk-predictions"))
    assert len(records) == 1000
    decoded, rejected = decode_predictions([value for _, _, value in records])
    assert rejected == []
    by_key = {key: (partition, event) for (partition, key, _), event in zip(records, decoded, strict=True)}
    assert set(by_key) == {f"id-{i}".encode() for i in range(1000)}
    for key, (partition, got) in by_key.items():
        assert got.prediction_id.encode() == key
        assert partition == (murmur2(key) & 0x7FFFFFFF) % s.topic_partitions  # Kafka's default partitioner
    seventh = by_key[b"id-7"][1]
    assert (seventh.features, seventh.score) == ({"x": 1.0, "c": "b"}, 0.07)
    assert int(seventh.timestamp.timestamp() * 1000) == 1_700_000_000_007


def test_async_sdk_publishes_ground_truth(kafka: str, tmp_path: Path) -> None:
    s = Settings(kafka_bootstrap_servers=kafka, data_dir=tmp_path, topic_ground_truth="sdk-labels")
    asyncio.run(ensure_topics(kafka, s))

    async def produce() -> tuple[int, int]:
        async with AsyncProducer(settings=s) as producer:
            await producer.send_ground_truths([{"prediction_id": f"g{i}", "label": i, "timestamp": 0}
                                               for i in range(50)])
            await producer.send_ground_truth({"prediction_id": "last", "label": "x", "timestamp": 0})
            await producer.flush()
            return producer.sent, producer.failed

    assert asyncio.run(produce()) == (51, 0)
    records = asyncio.run(read_topic(kafka, "sdk-labels"))
    events, rejected = decode_ground_truth([v for _, _, v in records])
    assert rejected == [] and sorted(e.prediction_id for e in events) == sorted([f"g{i}" for i in range(50)] + ["last"])


def test_produce_command_sends_valid_lines_and_reports_the_rest(kafka: str, env: dict[str, str],
                                                                tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    good = [orjson.dumps({"prediction_id": f"cli-{i}", "label": 1, "timestamp": 0}) for i in range(3)]
    path.write_bytes(b"\n".join([good[0], b"", b"{bad", good[1], b'{"prediction_id": "z"}', good[2]]) + b"\n")
    rejects = tmp_path / "rejects.txt"
    before = len(asyncio.run(read_topic(kafka, "ground_truth")))
    result = CliRunner().invoke(produce_app, ["ground-truth", str(path), "--max-errors", "1",
                                              "--rejects", str(rejects)], env=env)
    assert result.exit_code == 1, result.output
    assert "sent 3 ground-truth events" in result.output and "rejected 2 lines" in result.output
    assert "line 3: not_json" in result.output and "line 5:" not in result.output
    assert rejects.read_text().splitlines() == [
        "line 3: not_json: message is not valid JSON: key must be a string at line 1 column 2",
        "line 5: missing_field: field 'label': field required",
    ]
    records = asyncio.run(read_topic(kafka, "ground_truth"))
    assert len(records) - before == 3
    ok = tmp_path / "ok.jsonl"
    ok.write_bytes(good[0] + b"\n")
    assert CliRunner().invoke(produce_app, ["ground-truth", str(ok)], env=env).exit_code == 0


def test_models_register_then_list_and_show(kafka: str, env: dict[str, str], tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.gamma(2.0, 3.0, size=400), 3)
    region = rng.choice(["eu", "us", "apac"], size=400, p=[0.5, 0.3, 0.2])
    reference = tmp_path / "reference.csv"
    reference.write_text("x,region\n" + "".join(f"{v!r},{r}\n" for v, r in zip(x.tolist(), region, strict=True)))
    spec = tmp_path / "spec.yaml"
    spec.write_text("model_id: fraud-v\ntask: regression\nfeatures:\n  - {name: x, type: numeric}\n"
                    "  - {name: region, type: categorical}\n")
    runner = CliRunner()
    result = runner.invoke(models_app, ["register", str(spec), "--reference", str(reference), "--bins", "8"], env=env)
    assert result.exit_code == 0, result.output
    assert "registered model fraud-v" in result.output

    listed = runner.invoke(models_app, ["list"], env=env, terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "fraud-v" in listed.output and "2 features" in listed.output

    shown = runner.invoke(models_app, ["show", "fraud-v"], env=env)
    assert shown.exit_code == 0, shown.output
    assert orjson.loads(shown.output)["profile"]["region"]["categories"] == 3

    registry, bad = asyncio.run(read_models(env["DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS"], "models"))
    assert bad == 0
    model = registry.get("fraud-v")
    assert model is not None and model.profile is not None
    numeric = FeatureProfile.from_dict(model.profile["x"])
    edges = np.asarray(numeric.edges)
    assert np.array_equal(edges, np.unique(np.quantile(x, np.arange(1, 8) / 8, method="inverted_cdf")))
    # bins are (-inf, e1], (e1, e2], ..., (ek, inf): np.histogram of -x over the negated edges counts exactly those
    counts, _ = np.histogram(-x, bins=np.concatenate([[-np.inf], -edges[::-1], [np.inf]]))
    assert list(numeric.counts) == counts[::-1].tolist()
    categorical = FeatureProfile.from_dict(model.profile["region"])
    assert dict(zip(categorical.categories, categorical.counts, strict=True)) == Counter(region.tolist())

    spec.write_text("model_id: fraud-v\nversion: '2'\ntask: regression\n")
    assert runner.invoke(models_app, ["register", str(spec)], env=env).exit_code == 0
    registry, _ = asyncio.run(read_models(env["DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS"], "models"))
    latest = registry.get("fraud-v")
    assert latest is not None and (latest.spec.version, latest.profile) == ("2", None)
