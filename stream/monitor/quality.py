"""Data-quality checks per window and feature, computed in bulk over a batch of events.

A batch of feature dicts is turned into columns once (:func:`to_columns`); :class:`QualityAccumulator`
then counts, per declared feature: missing values (key absent, None or NaN), type mismatches, values out of
range (declared range, else the reference min/max), categories unseen in the declared list (else the
reference), whether the window is constant, whether the feature never appeared, and keys that are not
declared at all. Accumulators merge by addition and serialise to bytes.

Type rules: a numeric feature accepts int and float (bool and numeric strings are mismatches). A
categorical feature accepts str, int and bool, compared as ``str(value)``; a NaN float counts as missing,
any other float, list or dict as a mismatch. Mismatches are not missing and are left out of the columns.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import orjson

from stream.monitor.profiles import FeatureProfile, Kind

__all__ = [
    "Columns", "FeatureSpec", "QualityAccumulator", "QualityRow", "add_grouped", "columns_from_arrays", "to_columns",
]

MAX_EXAMPLES = 5

_OTHER, _ABSENT, _NONE, _FLOAT, _INT, _BOOL, _STR = range(7)


class _Absent:
    pass


_MISSING_KEY = _Absent()
_TYPE_CODE: dict[type, int] = {
    _Absent: _ABSENT,
    type(None): _NONE,
    float: _FLOAT,
    np.float64: _FLOAT,
    np.float32: _FLOAT,
    np.float16: _FLOAT,
    int: _INT,
    np.int64: _INT,
    np.int32: _INT,
    np.int16: _INT,
    np.int8: _INT,
    np.uint64: _INT,
    np.uint32: _INT,
    np.uint16: _INT,
    np.uint8: _INT,
    bool: _BOOL,
    np.bool_: _BOOL,
    str: _STR,
    np.str_: _STR,
}


@dataclass(frozen=True)
class FeatureSpec:
    """A declared model input: name, kind, optional closed range ``(low, high)``, optional categories."""

    name: str
    kind: Kind
    range: tuple[float, float] | None = None
    categories: tuple[str, ...] | None = None


@dataclass
class Columns:
    """One batch in columnar form.

    ``numeric[name]`` is float64 with NaN for missing or mismatched values; ``categorical[name]`` is an
    object array of ``str`` with None for missing or mismatched values. ``missing``/``mismatch`` are boolean
    masks per declared feature, ``absent`` counts events without the key, ``undeclared`` counts events
    holding each key that is not declared.
    """

    n: int
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, np.ndarray] = field(default_factory=dict)
    missing: dict[str, np.ndarray] = field(default_factory=dict)
    mismatch: dict[str, np.ndarray] = field(default_factory=dict)
    absent: dict[str, int] = field(default_factory=dict)
    undeclared: dict[str, int] = field(default_factory=dict)

    absent_rows: dict[str, np.ndarray] = field(default_factory=dict)  # per-row mask where ``absent`` > 0


_PLAIN_NUMBERS = frozenset({float, int})  # not bool: type(True) is bool


def _codes(col: np.ndarray) -> np.ndarray:
    return np.fromiter(map(_TYPE_CODE.get, map(type, col), repeat(_OTHER)), dtype=np.int8, count=len(col))


def _add_column(out: Columns, spec: FeatureSpec, col: np.ndarray) -> None:
    name, n = spec.name, len(col)
    if spec.kind == "numeric" and col.dtype.kind in "fiu":
        x = col.astype(np.float64)
        out.numeric[name] = x
        out.missing[name] = np.isnan(x)
        out.mismatch[name] = np.zeros(n, dtype=bool)
        out.absent[name] = 0
        return
    obj = col.astype(object) if col.dtype != object else col
    codes = _codes(obj)
    absent = codes == _ABSENT
    out.absent[name] = int(absent.sum())
    if out.absent[name]:
        out.absent_rows[name] = absent
    nullish = absent | (codes == _NONE)
    floats = codes == _FLOAT
    if spec.kind == "numeric":
        ok = floats | (codes == _INT)
        x = np.full(n, np.nan)
        x[ok] = obj[ok].astype(np.float64)
        out.numeric[name] = x
        out.missing[name] = nullish | (ok & np.isnan(x))
        out.mismatch[name] = ~(ok | nullish)
        return
    nan_float = floats & (obj != obj)
    ok = (codes == _STR) | (codes == _INT) | (codes == _BOOL)
    c = np.full(n, None, dtype=object)
    c[ok] = obj[ok].astype(str)
    out.categorical[name] = c
    out.missing[name] = nullish | nan_float
    out.mismatch[name] = ~(ok | nullish | nan_float)


def to_columns(records: Sequence[Mapping[str, object]], specs: Sequence[FeatureSpec]) -> Columns:
    """Turn a batch of feature dicts into :class:`Columns` (one pass per declared feature)."""
    n = len(records)
    out = Columns(n=n)
    for spec, values in zip(specs, _value_lists(records, [s.name for s in specs]), strict=True):
        types = set(map(type, values))
        if n and spec.kind == "numeric" and types <= _PLAIN_NUMBERS:  # the common case, without type codes
            x = np.array(values, dtype=np.float64)
            out.numeric[spec.name], out.missing[spec.name] = x, np.isnan(x)
            out.mismatch[spec.name], out.absent[spec.name] = np.zeros(n, dtype=bool), 0
            continue
        col = np.empty(n, dtype=object)
        col[:] = values
        if n and spec.kind == "categorical" and types == {str}:
            out.categorical[spec.name], out.missing[spec.name] = col, np.zeros(n, dtype=bool)
            out.mismatch[spec.name], out.absent[spec.name] = np.zeros(n, dtype=bool), 0
            continue
        _add_column(out, spec, col)
    declared = {s.name for s in specs}
    for key in set().union(*records) - declared if records else ():
        out.undeclared[str(key)] = sum(key in r for r in records)
    return out


def _value_lists(records: Sequence[Mapping[str, object]], names: list[str]) -> list[Sequence[object]]:
    """The values of each name across the records (`_MISSING_KEY` where a record lacks it): one C-level
    itemgetter call per record and a transpose when every record holds every name, else one pass per name.

    >>> _value_lists([{"a": 1, "b": 2}, {"a": 3, "b": 4}], ["b", "a"])
    [(2, 4), (1, 3)]
    """
    if len(names) > 1 and records:
        try:
            return list(zip(*map(operator.itemgetter(*names), records), strict=True))
        except (KeyError, TypeError):
            pass  # a record lacks a name (or is not a dict): per name below
    return [[r.get(name, _MISSING_KEY) for r in records] for name in names]


def columns_from_arrays(arrays: Mapping[str, np.ndarray], specs: Sequence[FeatureSpec]) -> Columns:
    """Build :class:`Columns` from equal-length arrays keyed by feature (a key not given is absent)."""
    n = len(next(iter(arrays.values()))) if arrays else 0
    out = Columns(n=n)
    for spec in specs:
        if spec.name in arrays:
            _add_column(out, spec, np.asarray(arrays[spec.name]).ravel())
        else:
            col = np.empty(n, dtype=object)
            col[:] = [_MISSING_KEY] * n
            _add_column(out, spec, col)
    declared = {s.name for s in specs}
    out.undeclared = {k: n for k in arrays if k not in declared}
    return out


@dataclass(frozen=True)
class QualityRow:
    """One check result: ``value`` is ``count / n`` for rates and 0/1 for flags."""

    feature: str
    check: str
    value: float
    n: int
    count: int
    examples: tuple[str, ...] = ()


def _new_state() -> dict[str, Any]:
    return {
        "absent": 0, "missing": 0, "mismatch": 0, "valid": 0, "out_of_range": 0, "new": 0,
        "examples": [], "min": None, "max": None, "first": None, "varied": False,
    }  # fmt: skip


class QualityAccumulator:
    """Mergeable data-quality counts for one window.

    Parameters
    ----------
    specs
        Declared features.
    profile
        Reference profile, the fallback for ranges (min/max) and known categories.

    Examples
    --------
    >>> acc = QualityAccumulator([FeatureSpec("x", "numeric", range=(0.0, 1.0))])
    >>> acc.add([{"x": 0.5}, {"x": 3.0}, {"x": "a"}, {"y": 1}])
    >>> [(r.check, r.value) for r in acc.results() if r.check.endswith("rate")]
    [('missing_rate', 0.25), ('type_mismatch_rate', 0.25), ('out_of_range_rate', 0.5)]
    """

    def __init__(
        self, specs: Sequence[FeatureSpec], profile: Mapping[str, FeatureProfile] | None = None
    ) -> None:
        self.specs = tuple(specs)
        self.profile = dict(profile or {})
        self.n = 0
        self.state: dict[str, dict[str, Any]] = {s.name: _new_state() for s in self.specs}
        self.undeclared: dict[str, int] = {}
        self._ranges = {s.name: self._range(s) for s in self.specs}
        self._known = {s.name: self._categories(s) for s in self.specs}

    def _range(self, spec: FeatureSpec) -> tuple[float, float] | None:
        if spec.range is not None:
            return (float(spec.range[0]), float(spec.range[1]))
        p = self.profile.get(spec.name)
        if p is not None and p.min is not None and p.max is not None:
            return (p.min, p.max)
        return None

    def _categories(self, spec: FeatureSpec) -> np.ndarray | None:
        if spec.categories is not None:
            return np.array([str(c) for c in spec.categories], dtype=str)
        p = self.profile.get(spec.name)
        if p is not None and p.kind == "categorical":
            return np.array(p.categories, dtype=str)
        return None

    def add(self, records: Sequence[Mapping[str, object]]) -> None:
        """Count a batch of feature dicts."""
        self.add_columns(to_columns(records, self.specs))

    def add_columns(self, cols: Columns) -> None:
        """Count a batch already in columnar form (from :func:`to_columns` or :func:`columns_from_arrays`)."""
        self.n += cols.n
        for key, c in cols.undeclared.items():
            self.undeclared[key] = self.undeclared.get(key, 0) + c
        for spec in self.specs:
            st = self.state[spec.name]
            missing, mismatch = cols.missing[spec.name], cols.mismatch[spec.name]
            valid = ~(missing | mismatch)
            st["absent"] += cols.absent[spec.name]
            st["missing"] += int(missing.sum())
            st["mismatch"] += int(mismatch.sum())
            n_valid = int(valid.sum())
            st["valid"] += n_valid
            if n_valid == 0:
                continue
            if spec.kind == "numeric":
                x = cols.numeric[spec.name][valid]
                lo, hi = float(x.min()), float(x.max())
                self._merge_numeric(st, lo, hi)
                rng = self._ranges[spec.name]
                if rng is not None:
                    st["out_of_range"] += int(np.count_nonzero((x < rng[0]) | (x > rng[1])))
            else:
                v = cols.categorical[spec.name][valid].astype(str)
                first = str(v[0])
                self._merge_first(st, first, bool((v != first).any()))
                known = self._known[spec.name]
                if known is not None:
                    new = v[~np.isin(v, known)]
                    st["new"] += int(new.size)
                    self._merge_examples(st, dict.fromkeys(new.tolist()))

    @staticmethod
    def _merge_numeric(st: dict[str, Any], lo: float | None, hi: float | None) -> None:
        if lo is None or hi is None:
            return
        st["min"] = lo if st["min"] is None else min(st["min"], lo)
        st["max"] = hi if st["max"] is None else max(st["max"], hi)

    @staticmethod
    def _merge_first(st: dict[str, Any], first: str | None, varied: bool) -> None:
        if first is None:
            return
        if st["first"] is None:
            st["first"] = first
        st["varied"] = st["varied"] or varied or st["first"] != first

    @staticmethod
    def _merge_examples(st: dict[str, Any], new: Iterable[str]) -> None:
        ex: list[str] = st["examples"]
        for e in new:
            if len(ex) >= MAX_EXAMPLES:
                break
            if e not in ex:
                ex.append(e)

    def merge(self, other: QualityAccumulator) -> QualityAccumulator:
        """Add ``other``'s counts into this accumulator (same specs) and return it."""
        if [s.name for s in other.specs] != [s.name for s in self.specs]:
            raise ValueError("cannot merge quality accumulators declared for different features")
        self.n += other.n
        for key, c in other.undeclared.items():
            self.undeclared[key] = self.undeclared.get(key, 0) + c
        for name, o in other.state.items():
            st = self.state[name]
            for k in ("absent", "missing", "mismatch", "valid", "out_of_range", "new"):
                st[k] += o[k]
            self._merge_numeric(st, o["min"], o["max"])
            self._merge_first(st, o["first"], o["varied"])
            self._merge_examples(st, o["examples"])
        return self

    def results(self) -> list[QualityRow]:
        """Rows per declared feature, then one ``undeclared_feature`` row per unknown key.

        Every feature gets missing_rate, type_mismatch_rate, constant (1 when at least two valid values
        are all equal) and never_present; numeric features with a known range get out_of_range_rate,
        categorical features with known categories get new_category_rate (with up to 5 examples).
        """
        rows: list[QualityRow] = []
        n = self.n
        for spec in self.specs:
            st, name = self.state[spec.name], spec.name
            valid = st["valid"]
            rows.append(QualityRow(name, "missing_rate", _rate(st["missing"], n), n, st["missing"]))
            rows.append(QualityRow(name, "type_mismatch_rate", _rate(st["mismatch"], n), n, st["mismatch"]))
            if spec.kind == "numeric" and self._ranges[name] is not None:
                oor = st["out_of_range"]
                rows.append(QualityRow(name, "out_of_range_rate", _rate(oor, valid), valid, oor))
            if spec.kind == "categorical" and self._known[name] is not None:
                new = st["new"]
                rows.append(
                    QualityRow(
                        name, "new_category_rate", _rate(new, valid), valid, new, tuple(st["examples"])
                    )
                )
            if spec.kind == "numeric":
                constant = valid >= 2 and st["min"] == st["max"]
            else:
                constant = valid >= 2 and not st["varied"]
            rows.append(QualityRow(name, "constant", float(constant), valid, int(constant)))
            never = n > 0 and st["absent"] == n
            rows.append(QualityRow(name, "never_present", float(never), n, int(never)))
        for key in sorted(self.undeclared):
            c = self.undeclared[key]
            rows.append(QualityRow(key, "undeclared_feature", _rate(c, n), n, c))
        return rows

    def to_bytes(self) -> bytes:
        """Serialise the counts (not the specs or profile)."""
        return orjson.dumps({"v": 1, "n": self.n, "state": self.state, "undeclared": self.undeclared})

    @classmethod
    def from_bytes(
        cls, data: bytes, specs: Sequence[FeatureSpec], profile: Mapping[str, FeatureProfile] | None = None
    ) -> QualityAccumulator:
        """Restore an accumulator written by :meth:`to_bytes` for the same specs."""
        d = orjson.loads(data)
        acc = cls(specs, profile)
        if set(d["state"]) != set(acc.state):
            raise ValueError("stored quality counts were written for different features")
        acc.n = int(d["n"])
        acc.state = d["state"]
        acc.undeclared = {str(k): int(v) for k, v in d["undeclared"].items()}
        return acc


def add_grouped(accs: Sequence[QualityAccumulator | None], cols: Columns, group: np.ndarray) -> None:
    """Count row ``i`` of ``cols`` into ``accs[group[i]]`` (``-1``: no group): the counts `add_columns` gives
    on each group's rows, in a few array passes per feature instead of one `add_columns` per group (segments).
    Every accumulator has the same specs and profile; a group with rows needs one (not None). Undeclared keys
    are not counted (the batch has no per-row record of them: they are checked on the whole model)."""
    first = next((a for a in accs if a is not None), None)
    if first is None or cols.n == 0:
        return
    k = len(accs)
    g = np.where(group >= 0, group, k)  # rows of no group go to a last, ignored bucket
    sizes = np.bincount(g, minlength=k + 1)
    present = [int(j) for j in np.flatnonzero(sizes[:k])]
    for j in present:
        accs[j].n += int(sizes[j])  # type: ignore[union-attr]
    order = np.argsort(g, kind="stable")
    g_sorted = g[order]

    zeros = np.zeros(k + 1, dtype=np.int64)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(g[mask], minlength=k + 1) if mask.any() else zeros

    for spec in first.specs:
        name = spec.name
        missing, mismatch = cols.missing[name], cols.mismatch[name]
        n_missing, n_mismatch = count(missing), count(mismatch)
        if n_missing is zeros and n_mismatch is zeros:  # the common case: every value valid
            valid, n_valid = np.ones(cols.n, dtype=bool), sizes
        else:
            valid = ~(missing | mismatch)
            n_valid = count(valid)
        absent_rows = cols.absent_rows.get(name)
        n_absent = count(absent_rows) if absent_rows is not None else np.zeros(k + 1, dtype=np.int64)
        extra: dict[int, tuple[Any, ...]] = {}
        if spec.kind == "numeric":
            x = np.where(valid, cols.numeric[name], np.nan)[order]
            rng = first._ranges[name]
            oor = count(valid & ((cols.numeric[name] < rng[0]) | (cols.numeric[name] > rng[1]))) \
                if rng is not None else None
            starts = np.searchsorted(g_sorted, present)  # the present groups are contiguous and non-empty
            x = x[: starts[-1] + sizes[present[-1]]]
            lows, highs = np.fmin.reduceat(x, starts).tolist(), np.fmax.reduceat(x, starts).tolist()
            for j, lo_x, hi_x in zip(present, lows, highs, strict=True):
                if n_valid[j]:
                    extra[j] = (lo_x, hi_x, 0 if oor is None else int(oor[j]))
        else:
            rows = np.flatnonzero((valid & (g < k))[order])  # valid rows of a group, sorted by group
            v = cols.categorical[name][order[rows]].astype(str)
            gv = g_sorted[rows]
            starts = np.searchsorted(gv, present)
            firsts = v[np.minimum(starts, max(v.size - 1, 0))] if v.size else v
            known = first._known[name]
            new = ~np.isin(v, known) if known is not None else np.zeros(v.size, dtype=bool)
            varied = np.zeros(k + 1, dtype=bool)
            if v.size:
                pos = np.searchsorted(present, gv)  # index into present of each valid row's group
                varied[np.unique(gv[v != firsts[pos]])] = True
            n_new = np.bincount(gv[new], minlength=k + 1)
            for j, lo in zip(present, starts.tolist(), strict=True):
                if n_valid[j]:
                    examples = dict.fromkeys(v[new & (gv == j)].tolist()) if n_new[j] else {}
                    extra[j] = (str(v[lo]), bool(varied[j]), int(n_new[j]), examples)
        absent_l, missing_l, mismatch_l, valid_l = (a.tolist() for a in (n_absent, n_missing, n_mismatch, n_valid))
        for j in present:
            acc = accs[j]
            assert acc is not None
            st = acc.state[name]
            st["absent"] += absent_l[j]
            st["missing"] += missing_l[j]
            st["mismatch"] += mismatch_l[j]
            st["valid"] += valid_l[j]
            if j not in extra:
                continue
            if spec.kind == "numeric":
                lo_x, hi_x, n_oor = extra[j]
                acc._merge_numeric(st, lo_x, hi_x)
                st["out_of_range"] += n_oor
            else:
                first_v, is_varied, n_new_j, examples = extra[j]
                acc._merge_first(st, first_v, is_varied)
                if known is not None:
                    st["new"] += n_new_j
                    acc._merge_examples(st, examples)


def _rate(count: int, n: int) -> float:
    return count / n if n else 0.0
