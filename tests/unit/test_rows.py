"""Rows of the outcomes table, built from an internal batch record."""

from __future__ import annotations

import math

from stream.pipeline.ingest import _new_batch
from stream.pipeline.rows import OUTCOME_COLUMNS, outcome_rows_of


def test_outcome_rows_carry_every_column_with_times_in_epoch_milliseconds() -> None:
    batch = _new_batch("m", 0)
    o = batch["outs"]
    shared = {"region": "eu", "tier": "gold"}
    for pid, seg, label, pred, score in [("a", shared, 1.0, "1", 0.25), ("b", shared, "no", 2.0, math.nan),
                                         ("c", {}, "yes", 0.0, 1.0)]:
        for name, value in [("src", 0), ("off", 7), ("pid", pid), ("ver", "2"), ("seg", seg), ("ts", 1000),
                            ("lts", 5000), ("label", label), ("pred", pred), ("score", score),
                            ("biz", {"revenue": 3.5})]:
            o[name].append(value)
    rows = outcome_rows_of(batch)
    assert [len(r) for r in rows] == [len(OUTCOME_COLUMNS)] * 3
    by_column = [dict(zip(OUTCOME_COLUMNS, r, strict=True)) for r in rows]
    assert [r["prediction_id"] for r in by_column] == ["a", "b", "c"]
    assert [r["segment"] for r in by_column] == ["region=eu,tier=gold", "region=eu,tier=gold", ""]
    assert [(r["label"], r["prediction"]) for r in by_column] == [("1", "1"), ("no", "2"), ("yes", "0")]
    assert [r["score"] for r in by_column] == [0.25, None, 1.0]  # NaN (no score) is NULL
    assert {(r["prediction_time"], r["label_time"], r["version"]) for r in by_column} == {(1000, 5000, 5000)}
    assert by_column[0]["model_id"] == "m" and by_column[0]["business"] == {"revenue": 3.5}


def test_no_outcomes_no_rows() -> None:
    assert outcome_rows_of(_new_batch("m", 0)) == []
