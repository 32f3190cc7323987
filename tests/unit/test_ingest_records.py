"""Records that cannot be events (tombstones, empty values, no key, headers only, arbitrary bytes) become dead
letters with their own reason; the ingest stage never raises and accounts for every record."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.contracts.events import Limits
from stream.contracts.registry import Registry
from stream.pipeline.ingest import Ingest, RawRecord

T0 = 1_767_225_600_000


def _ingest() -> Ingest:
    return Ingest(Registry(), Limits(), "predictions", "ground_truth", max_delay_ms=60_000)


def _prediction(pid: str) -> bytes:
    return orjson.dumps({"prediction_id": pid, "model_id": "m", "timestamp": T0, "prediction": "yes",
                         "features": {"x": 1.0}})


def _label(pid: str) -> bytes:
    return orjson.dumps({"prediction_id": pid, "label": "yes", "timestamp": T0 + 1})


def test_each_unusable_record_gets_its_own_reason_on_both_topics() -> None:
    records: list[RawRecord] = []
    for topic in ("predictions", "ground_truth"):
        base = len(records)
        records += [
            RawRecord(topic, 0, base, b"p-1", None),
            RawRecord(topic, 0, base + 1, b"p-1", b""),
            RawRecord(topic, 0, base + 2, None, _prediction("p-1") if topic == "predictions" else _label("p-1")),
            RawRecord(topic, 0, base + 3, b"p-1", None, (("trace", b"abc"),)),
        ]
    result = _ingest().process(records)
    got = [(d.topic, d.offset, d.reason) for d in result.dead_letters]
    assert sorted(got) == sorted([(t, o, r) for t, base in (("predictions", 0), ("ground_truth", 4))
                                  for o, r in zip(range(base, base + 4),
                                                  ("null_value", "empty_value", "null_key", "headers_only"),
                                                  strict=True)])
    assert result.accepted == 0 and result.batches == {}
    letter = next(d for d in result.dead_letters if d.reason == "null_value")
    assert letter.raw == "" and letter.key == "p-1" and "tombstone" in letter.error


def test_valid_pairs_after_unusable_records_are_joined() -> None:
    records = [RawRecord("predictions", 0, 0, b"a", None), RawRecord("predictions", 0, 1, b"a", _prediction("a")),
               RawRecord("ground_truth", 0, 0, None, _label("a")), RawRecord("ground_truth", 0, 1, b"a", _label("a"))]
    result = _ingest().process(records)
    assert [d.reason for d in result.dead_letters] == ["null_value", "null_key"]
    assert result.accepted == 2
    assert result.batches[("m", 0)]["outs"]["pid"] == ["a"]


_values = st.one_of(
    st.none(), st.just(b""), st.binary(max_size=200),
    st.sampled_from([b"{}", b"[]", b"null", b"\x00\x00\x00\x00\x01", b'{"prediction_id": null}']),
    st.text(max_size=8).map(_prediction), st.text(max_size=8).map(_label),
)
_records = st.tuples(
    st.sampled_from(["predictions", "ground_truth"]),
    st.integers(0, 2),
    st.one_of(st.none(), st.binary(max_size=20)),
    _values,
    st.lists(st.tuples(st.text(max_size=5), st.one_of(st.none(), st.binary(max_size=5))), max_size=3),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_records, max_size=40), st.lists(_records, max_size=20))
def test_ingest_never_raises_and_accounts_for_every_record(first: list[Any], second: list[Any]) -> None:
    ingest = _ingest()
    offsets: dict[tuple[str, int], int] = {}

    def raw(batch: list[Any]) -> list[RawRecord]:
        out = []
        for topic, partition, key, value, headers in batch:
            offset = offsets.get((topic, partition), 0)
            offsets[(topic, partition)] = offset + 1
            out.append(RawRecord(topic, partition, offset, key, value, tuple(headers)))
        return out

    for batch in (raw(first), raw(second)):
        result = ingest.process(batch)
        assert result.accepted + len(result.dead_letters) + result.replayed == len(batch)
        assert {(d.topic, d.partition, d.offset) for d in result.dead_letters} <= {
            (r.topic, r.partition, r.offset) for r in batch}
        assert len({(d.topic, d.partition, d.offset) for d in result.dead_letters}) == len(result.dead_letters)
