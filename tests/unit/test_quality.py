import math

import numpy as np
import pytest

from stream.monitor.profiles import profile_categorical, profile_numeric
from stream.monitor.quality import (
    Columns,
    FeatureSpec,
    QualityAccumulator,
    QualityRow,
    _add_column,
    columns_from_arrays,
    to_columns,
)

SPECS = [
    FeatureSpec("age", "numeric", range=(0.0, 120.0)),
    FeatureSpec("income", "numeric"),
    FeatureSpec("country", "categorical", categories=("de", "fr")),
    FeatureSpec("plan", "categorical"),
]

RECORDS: list[dict[str, object]] = [
    {"age": 30, "income": 1000.0, "country": "de", "plan": "basic"},
    {"age": 150.5, "income": float("nan"), "country": "us", "plan": "basic"},
    {"age": "31", "income": 5.0e6, "country": 7, "plan": None},
    {"age": None, "income": True, "country": ["x"], "plan": "pro", "extra": 1},
    {"income": -3.0, "country": float("nan"), "plan": 2.5, "extra": 2, "other": "z"},
    {"age": np.float64(-1.0), "income": np.int64(20), "country": "uk", "plan": "basic"},
]

PROFILE = {
    "income": profile_numeric(np.array([0.0, 10.0, 2000.0, 100000.0])),
    "plan": profile_categorical(np.array(["basic", "pro", "basic"], dtype=object)),
}


def rows_by(rows: list[QualityRow]) -> dict[tuple[str, str], QualityRow]:
    return {(r.feature, r.check): r for r in rows}


def test_to_columns_values_and_masks() -> None:
    cols = to_columns(RECORDS, SPECS)
    assert cols.n == 6
    np.testing.assert_array_equal(cols.numeric["age"], [30.0, 150.5, np.nan, np.nan, np.nan, -1.0])
    np.testing.assert_array_equal(cols.missing["age"], [0, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(cols.mismatch["age"], [0, 0, 1, 0, 0, 0])
    assert cols.absent == {"age": 1, "income": 0, "country": 0, "plan": 0}
    np.testing.assert_array_equal(cols.numeric["income"], [1000.0, np.nan, 5.0e6, np.nan, -3.0, 20.0])
    np.testing.assert_array_equal(cols.missing["income"], [0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(cols.mismatch["income"], [0, 0, 0, 1, 0, 0])  # bool is not a number
    assert cols.categorical["country"].tolist() == ["de", "us", "7", None, None, "uk"]
    np.testing.assert_array_equal(cols.missing["country"], [0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(cols.mismatch["country"], [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(cols.mismatch["plan"], [0, 0, 0, 0, 1, 0])  # a non-NaN float
    assert cols.undeclared == {"extra": 2, "other": 1}


def test_accumulator_rates_hand_computed() -> None:
    acc = QualityAccumulator(SPECS, PROFILE)
    acc.add(RECORDS)
    r = rows_by(acc.results())
    assert (r["age", "missing_rate"].count, r["age", "missing_rate"].n) == (2, 6)
    assert r["age", "missing_rate"].value == pytest.approx(2 / 6)
    assert r["age", "type_mismatch_rate"].value == pytest.approx(1 / 6)
    # age: valid 30, 150.5, -1 against the declared range [0, 120]
    assert (r["age", "out_of_range_rate"].count, r["age", "out_of_range_rate"].n) == (2, 3)
    # income: valid 1000, 5e6, -3, 20 against the reference range [0, 100000]
    assert (r["income", "out_of_range_rate"].count, r["income", "out_of_range_rate"].n) == (2, 4)
    nc = r["country", "new_category_rate"]
    assert (nc.count, nc.n) == (3, 4) and nc.examples == ("us", "7", "uk")
    plan = r["plan", "new_category_rate"]  # known categories from the reference profile
    assert (plan.count, plan.n) == (0, 4) and plan.examples == ()
    assert r["plan", "missing_rate"].count == 1 and r["plan", "type_mismatch_rate"].count == 1
    assert all(r[f, "constant"].value == 0.0 for f in ("age", "income", "country", "plan"))
    assert all(r[f, "never_present"].value == 0.0 for f in ("age", "income", "country", "plan"))
    assert r["extra", "undeclared_feature"].value == pytest.approx(2 / 6)
    assert r["other", "undeclared_feature"].count == 1


def test_checks_skipped_without_range_or_categories() -> None:
    acc = QualityAccumulator(SPECS)  # no reference: income has no range, plan no categories
    acc.add(RECORDS)
    checks = {(r.feature, r.check) for r in acc.results()}
    assert ("income", "out_of_range_rate") not in checks
    assert ("plan", "new_category_rate") not in checks
    assert ("age", "out_of_range_rate") in checks and ("country", "new_category_rate") in checks


def test_constant_and_never_present() -> None:
    specs = [FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical"), FeatureSpec("gone", "numeric")]
    acc = QualityAccumulator(specs)
    acc.add([{"x": 2.0, "c": "a"}, {"x": 2, "c": "a"}, {"x": None, "c": None}])
    r = rows_by(acc.results())
    assert r["x", "constant"].value == 1.0 and r["x", "constant"].n == 2
    assert r["c", "constant"].value == 1.0
    assert r["gone", "never_present"].value == 1.0 and r["gone", "missing_rate"].value == 1.0
    assert r["gone", "constant"].value == 0.0  # no valid values
    acc.add([{"x": 2.5, "c": "a"}])
    r = rows_by(acc.results())
    assert r["x", "constant"].value == 0.0 and r["c", "constant"].value == 1.0
    single = QualityAccumulator(specs)
    single.add([{"x": 1.0, "c": "a"}])
    assert rows_by(single.results())["x", "constant"].value == 0.0  # one value is not a constant column


def test_merge_and_bytes_equal_single_pass() -> None:
    whole = QualityAccumulator(SPECS, PROFILE)
    whole.add(RECORDS)
    a, b = QualityAccumulator(SPECS, PROFILE), QualityAccumulator(SPECS, PROFILE)
    a.add(RECORDS[:2])
    b.add(RECORDS[2:])
    restored = QualityAccumulator.from_bytes(b.to_bytes(), SPECS, PROFILE)
    assert a.merge(restored).results() == whole.results()
    with pytest.raises(ValueError, match="different features"):
        a.merge(QualityAccumulator(SPECS[:1]))


def test_merge_detects_constant_change_across_parts() -> None:
    specs = [FeatureSpec("x", "numeric"), FeatureSpec("c", "categorical")]
    a, b = QualityAccumulator(specs), QualityAccumulator(specs)
    a.add([{"x": 1.0, "c": "p"}, {"x": 1.0, "c": "p"}])
    b.add([{"x": 1.0, "c": "q"}, {"x": 3.0, "c": "q"}])
    r = rows_by(a.merge(b).results())
    assert r["x", "constant"].value == 0.0 and r["c", "constant"].value == 0.0


def test_examples_are_capped() -> None:
    spec = [FeatureSpec("c", "categorical", categories=("a",))]
    acc = QualityAccumulator(spec)
    acc.add([{"c": f"n{i}"} for i in range(20)])
    row = rows_by(acc.results())["c", "new_category_rate"]
    assert row.count == 20 and len(row.examples) == 5


def test_empty_batch() -> None:
    acc = QualityAccumulator(SPECS, PROFILE)
    acc.add([])
    rows = acc.results()
    assert rows and all(r.value == 0.0 and r.n == 0 for r in rows)
    assert not any(math.isnan(r.value) for r in rows)


def test_columns_from_arrays_matches_records() -> None:
    arrays = {
        "age": np.array([30.0, np.nan, 200.0]),
        "income": np.array([1, 2, 3]),
        "country": np.array(["de", None, "it"], dtype=object),
        "extra": np.zeros(3),
    }
    records: list[dict[str, object]] = [
        {"age": 30.0, "income": 1, "country": "de", "extra": 0.0},
        {"age": float("nan"), "income": 2, "country": None, "extra": 0.0},
        {"age": 200.0, "income": 3, "country": "it", "extra": 0.0},
    ]
    from_arrays, from_records = QualityAccumulator(SPECS, PROFILE), QualityAccumulator(SPECS, PROFILE)
    from_arrays.add_columns(columns_from_arrays(arrays, SPECS))
    from_records.add(records)
    assert from_arrays.results() == from_records.results()
    r = rows_by(from_arrays.results())
    assert r["plan", "never_present"].value == 1.0 and r["age", "out_of_range_rate"].count == 1


@pytest.mark.parametrize("values", [
    [1.5, 2, float("nan"), -3.25],  # plain numbers: the fast path
    [1.5, None, "x", True],  # mixed: the typed path
    ["a", "b", "c", "a"],
    ["a", None, 3, float("nan")],
])
def test_the_fast_column_path_equals_the_typed_one(values: list[object]) -> None:
    specs = [FeatureSpec("num", "numeric"), FeatureSpec("cat", "categorical")]
    fast = to_columns([{"num": v, "cat": v} for v in values], specs)
    for spec in specs:
        col = np.empty(len(values), dtype=object)
        col[:] = values
        typed = Columns(n=len(values))
        _add_column(typed, spec, col)
        for part in ("numeric", "categorical", "missing", "mismatch"):
            got, want = getattr(fast, part).get(spec.name), getattr(typed, part).get(spec.name)
            assert (got is None) == (want is None), (part, spec.name)
            if want is not None:
                np.testing.assert_array_equal(got, want)
        assert fast.absent[spec.name] == typed.absent[spec.name]
