"""Join state pairing predictions with ground-truth labels, for one partition (pure logic, no I/O).

A prediction is keyed by (``prediction_id``, ``model_id``), so a champion and its challengers can score the same
request; a label by ``prediction_id`` (it reaches every model that scored the request) or, when it names its
model (``targets``), by both. One :class:`JoinState` serves one partition of the two
co-partitioned topics; the caller hands it batches and persists :meth:`JoinState.snapshot` with the consumed
offsets of both topics (a restored state must be replayed from exactly those offsets, otherwise replayed
predictions are reported as duplicates). All times are epoch milliseconds (int).

Semantics
---------
- **Prediction first**: it waits (columnar, see *Memory*) until its label arrives, then one pair is emitted.
- **Label first**: the label waits, and the pair is emitted when the prediction arrives.
- **Expiry** happens only in :meth:`JoinState.expire` (``now_ms`` is the caller's clock, a watermark or the
  wall clock): a prediction waiting longer than ``max_delay_ms`` (``now_ms - ts_ms > max_delay_ms``,
  prediction time) is removed and counted as unlabelled; a label waiting longer than ``max_delay_ms``
  (label time) is removed and counted as an orphan. Both are returned in :class:`Expired`. Joining itself
  never looks at delays, so a label that comes before the next ``expire`` call still joins; a label that
  comes after its prediction expired waits in turn and ends as an orphan.
- **Joined ids are remembered** for ``max_delay_ms`` after their join time ``max(prediction ts, label ts)``,
  as sorted ``uint64`` hash arrays with their join times, to recognise duplicates: 16 bytes per pair
  (``pair_keys``), plus 16 for the ``prediction_id`` of a label that named no model.
- **Several models, one request**: a label that names no model joins every waiting prediction of its id.
  When one of those models is *shared* (:meth:`JoinState.set_shared`: it has a champion or challengers), the
  label also stays waiting (not an orphan when it expires), so a prediction of another model arriving later
  within ``max_delay_ms`` still gets it; otherwise it is used up, as with one model.
- **Duplicate predictions** (an id already waiting or joined within the memory for the same model, or
  repeated in one batch)
  are not stored: their batch indices are returned in ``JoinResult.rejected`` for the caller to dead-letter.
- **Duplicate labels**, policy ``"first"`` (default): every later label for an id that already has one
  (waiting or joined, or earlier in the batch) is counted in ``duplicate_labels``, ignored and its index
  returned in ``rejected``. Policy ``"latest"``: a later label replaces the earlier one. A waiting label is
  simply overwritten. For a joined id two rows are emitted, in this order: a **retraction** (``sign = -1``)
  that repeats the previously emitted pair exactly (old label, label time, business), then the new pair
  (``sign = +1``). An aggregator that weights every row by ``sign`` (counts, sums, confusion matrices,
  histograms) ends with exactly the metrics of the latest labels; state that cannot subtract (drift
  detectors) should skip retractions. An exact redelivery (same label, label time and business) is treated
  as a duplicate and ignored. To retract, policy ``"latest"`` keeps every joined pair in memory for
  ``max_delay_ms`` (a few hundred bytes each); ``"first"`` keeps only the 16-byte hash entry. Labels repeated
  within one batch are collapsed first (the last one wins, the others are rejected).

Ids are keyed by a 64-bit hash (MurmurHash3-style mixing of the UTF-8 bytes, computed with numpy, stable
across processes). Two distinct ids collide with probability 2**-64: with ``n`` ids held at once (waiting
plus remembered) the chance that a new id collides with any of them is about ``n / 2**64`` (5e-13 for
``n = 1e7``), and over ``m`` ids in total the chance of any collision is below ``m**2 / 2**65`` (3e-6 for
``m = 1e10``). A collision makes the second prediction a duplicate, or joins a label to the wrong prediction.

Memory: a waiting prediction takes one dict entry (hash -> slot) plus 40 bytes of numpy columns (hash,
model key, time, numeric prediction, prediction code, score) in a table that grows by 1.5x and reuses freed
slots; about 160-200 bytes in all (``benchmarks/join_memory.py``). String and boolean predictions are
interned (meant for class labels: the table is never pruned); float and integer predictions are stored
numerically and returned with their type (int or float).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["Expired", "JoinResult", "JoinState", "JoinStats", "PendingPrediction", "hash_ids", "pair_keys"]

Value = str | float | int | bool
DuplicatePolicy = Literal["first", "latest"]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
HashArray = npt.NDArray[np.uint64]

_FREE_TS = int(np.iinfo(np.int64).max)
_FLOAT_CODE = -1
_INT_CODE = -2
_MAX_EXACT_INT = 2**53
_MAGIC = b"DWJOIN1\n"
_SNAPSHOT_VERSION = 2  # 1: predictions keyed by prediction_id alone (restored by migration)
_PRED_DTYPES = {"hash": np.uint64, "model": np.int32, "ts": np.int64, "num": np.float64, "code": np.int32,
                "score": np.float64}
_LABEL_DTYPES = {"hash": np.uint64, "ts": np.int64, "target": np.uint64, "id": object, "label": object,
                 "business": object}

_M64 = 0xFFFFFFFFFFFFFFFF
_SEED = 0x9E3779B97F4A7C15
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(x: HashArray, r: int) -> HashArray:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


def hash_ids(ids: Sequence[str]) -> HashArray:
    """Stable 64-bit hashes of ids (MurmurHash3-style mixing of their UTF-8 bytes, 8 bytes at a time).

    Examples
    --------
    >>> h = hash_ids(["a", "b", "a"])
    >>> bool(h[0] == h[2]), bool(h[0] == h[1]), h.dtype.name
    (True, False, 'uint64')
    """
    n = len(ids)
    if n == 0:
        return np.empty(0, np.uint64)
    lens = np.fromiter(map(len, ids), np.int64, n)
    buf = "".join(ids).encode()
    if len(buf) != int(lens.sum()):
        encoded = [s.encode() for s in ids]
        lens = np.fromiter(map(len, encoded), np.int64, n)
        buf = b"".join(encoded)
    raw = np.frombuffer(buf, np.uint8)
    longest = int(lens.max())
    width = max(8, -(-longest // 8) * 8)
    if longest == width and int(lens.min()) == width:
        mat = raw.reshape(n, width)
    else:
        mat = np.zeros((n, width), np.uint8)
        mat[np.arange(width) < lens[:, None]] = raw
    words = mat.view("<u8").astype(np.uint64, copy=False)
    n_words = (lens + 7) // 8
    all_words = int(n_words.min())
    h = np.full(n, _SEED, np.uint64) ^ lens.astype(np.uint64)
    for j in range(width // 8):
        k = _rotl(words[:, j] * np.uint64(_C1), 31) * np.uint64(_C2)
        mixed = _rotl(h ^ k, 27) * np.uint64(5) + np.uint64(0x52DCE729)
        h = mixed if all_words > j else np.where(n_words > j, mixed, h)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    h ^= h >> np.uint64(33)
    return h


def pair_keys(hashes: HashArray, salts: HashArray) -> HashArray:
    """Keys of (prediction_id, model_id) pairs from the hashes of both (a 64-bit finaliser of their mix).

    >>> h, m = hash_ids(["p1", "p1"]), hash_ids(["champ", "chall"])
    >>> k = pair_keys(h, m)
    >>> bool(k[0] != k[1]), bool(k[0] != h[0]), bool(pair_keys(h[:1], m[:1])[0] == k[0])
    (True, True, True)
    """
    x = hashes ^ (salts * np.uint64(_C1))
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(29)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(32)
    return x


def _objects(values: Iterable[Any], n: int) -> npt.NDArray[np.object_]:
    return np.fromiter(values, object, n)


class _Table:
    """Columns of fixed dtype with a free-slot stack; a slot is live while its ``ts`` is not ``_FREE_TS``."""

    def __init__(self, dtypes: Mapping[str, Any], cols: Mapping[str, np.ndarray] | None = None) -> None:
        self.dtypes = dict(dtypes)
        if cols is None:
            cols = {name: np.empty(0, dt) for name, dt in self.dtypes.items()}
        self.cols: dict[str, np.ndarray] = dict(cols)
        self.high = len(self.cols["ts"])
        self._free = np.empty(0, np.int64)
        self._n_free = 0

    def alloc(self, k: int) -> IntArray:
        reused = min(k, self._n_free)
        self._n_free -= reused
        fresh = k - reused
        if self.high + fresh > len(self.cols["ts"]):
            self._grow(self.high + fresh)
        out = np.concatenate([self._free[self._n_free:self._n_free + reused],
                              np.arange(self.high, self.high + fresh, dtype=np.int64)])
        self.high += fresh
        return out

    def _grow(self, need: int) -> None:
        cap = len(self.cols["ts"])
        new_cap = max(need, cap * 3 // 2, 1024)
        for name, col in self.cols.items():
            new = np.empty(new_cap, col.dtype)
            new[:cap] = col
            if name == "ts":
                new[cap:] = _FREE_TS
            self.cols[name] = new

    def free(self, slots: IntArray) -> None:
        self.cols["ts"][slots] = _FREE_TS
        for col in self.cols.values():
            if col.dtype == object:
                col[slots] = None
        need = self._n_free + len(slots)
        if need > len(self._free):
            grown = np.empty(max(need, 2 * len(self._free)), np.int64)
            grown[:self._n_free] = self._free[:self._n_free]
            self._free = grown
        self._free[self._n_free:need] = slots
        self._n_free = need

    def live(self) -> IntArray:
        return np.flatnonzero(self.cols["ts"][:self.high] != _FREE_TS)

    def older_than(self, cutoff: int) -> IntArray:
        return np.flatnonzero(self.cols["ts"][:self.high] < cutoff)


class _JoinedIds:
    """Hashes of joined ids with their join times: a small dict plus log-structured sorted segments."""

    flush_size = 4096

    def __init__(self) -> None:
        self.recent: dict[int, int] = {}
        self.segments: list[tuple[HashArray, IntArray]] = []

    def __len__(self) -> int:
        return len(self.recent) + sum(len(k) for k, _ in self.segments)

    def contains(self, hashes: HashArray) -> list[bool]:
        """Membership in the segments only; the caller checks ``recent`` as it updates it."""
        hit = np.zeros(len(hashes), bool)
        for keys, _ in self.segments:
            pos = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
            hit |= keys[pos] == hashes
        return hit.tolist()

    def add(self, hashes: Iterable[int], times: Iterable[int]) -> None:
        self.recent.update(zip(hashes, times, strict=True))
        if len(self.recent) >= self.flush_size:
            n = len(self.recent)
            keys = np.fromiter(self.recent.keys(), np.uint64, n)
            times_a = np.fromiter(self.recent.values(), np.int64, n)
            self.recent = {}
            self._push(keys, times_a)

    def _push(self, keys: HashArray, times: IntArray) -> None:
        order = np.argsort(keys, kind="stable")
        self.segments.append((keys[order], times[order]))
        while len(self.segments) >= 2 and len(self.segments[-2][0]) <= 2 * len(self.segments[-1][0]):
            k2, t2 = self.segments.pop()
            k1, t1 = self.segments.pop()
            keys_m, times_m = np.concatenate([k1, k2]), np.concatenate([t1, t2])
            order = np.argsort(keys_m, kind="stable")
            self.segments.append((keys_m[order], times_m[order]))

    def expire(self, cutoff: int) -> list[int]:
        """Forget entries joined before ``cutoff``; return their hashes."""
        gone: list[int] = [h for h, t in self.recent.items() if t < cutoff]
        for h in gone:
            del self.recent[h]
        kept: list[tuple[HashArray, IntArray]] = []
        for keys, times in self.segments:
            keep = times >= cutoff
            if not keep.all():
                gone.extend(keys[~keep].tolist())
                keys, times = keys[keep], times[keep]
            if len(keys):
                kept.append((keys, times))
        self.segments = kept
        return gone


@dataclass(frozen=True, slots=True)
class PendingPrediction:
    """A waiting prediction, as stored (``model_key`` indexes :meth:`JoinState.lookup`; score NaN if none)."""

    model_key: int
    ts_ms: int
    prediction: Value
    score: float


@dataclass(slots=True)
class JoinStats:
    """Counters since the state was created (kept in snapshots)."""

    joined: int = 0
    duplicate_labels: int = 0
    expired_predictions: int = 0
    orphans: int = 0
    duplicate_predictions: int = 0


@dataclass(frozen=True, slots=True)
class JoinResult:
    """Rows emitted by one batch, columnar, ordered by ``index`` (a retraction precedes its replacement).

    ``index`` is the position in the input batch of the event that produced the row; ``sign`` is +1 for a
    pair and -1 for the retraction of a pair emitted earlier (policy "latest"). ``ts_ms`` is the prediction
    time, ``label_ts_ms`` the label time. ``rejected`` holds the batch positions of duplicates (ascending).
    """

    ids: list[str]
    index: IntArray
    sign: npt.NDArray[np.int8]
    model_key: npt.NDArray[np.int32]
    ts_ms: IntArray
    prediction: list[Value]
    score: FloatArray
    label: list[Value]
    label_ts_ms: IntArray
    business: list[Mapping[str, float]]
    rejected: IntArray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class Expired:
    """What :meth:`JoinState.expire` removed, each part ordered by (time, id hash).

    The first four columns are the unlabelled predictions; the ``orphan_*`` columns the labels whose
    prediction never came.
    """

    model_key: npt.NDArray[np.int32]
    ts_ms: IntArray
    prediction: list[Value]
    score: FloatArray
    orphan_ids: list[str]
    orphan_labels: list[Value]
    orphan_ts_ms: IntArray
    orphan_business: list[Mapping[str, float]]


_Record = tuple[int, int, Value, float, Value, int, Mapping[str, float], int, int]
"""A joined pair (policy "latest"): model key, ts, prediction, score, label, label ts, business, join time,
prediction_id hash."""


class _Rows:
    """Accumulates result rows from several vectorised pieces, then orders them."""

    def __init__(self) -> None:
        self.parts: list[tuple[Any, ...]] = []

    def add(self, ids: list[str], index: IntArray, sign: int, model: np.ndarray, ts: IntArray,
            prediction: list[Value], score: FloatArray, label: list[Value], label_ts: IntArray,
            business: list[Mapping[str, float]]) -> None:
        if len(ids):
            self.parts.append((ids, index, sign, model, ts, prediction, score, label, label_ts, business))

    def build(self, rejected: Iterable[int]) -> JoinResult:
        rej = np.sort(np.fromiter(rejected, np.int64))
        if not self.parts:
            e = np.empty(0, np.int64)
            return JoinResult([], e, np.empty(0, np.int8), np.empty(0, np.int32), e, [],
                              np.empty(0, np.float64), [], e, [], rej)
        index = np.concatenate([p[1] for p in self.parts]).astype(np.int64)
        sign = np.concatenate([np.full(len(p[0]), p[2], np.int8) for p in self.parts])
        if len(self.parts) == 1:
            only = self.parts[0]
            return JoinResult(only[0], index, sign, np.asarray(only[3], np.int32),
                              np.asarray(only[4], np.int64), only[5], np.asarray(only[6], np.float64),
                              only[7], np.asarray(only[8], np.int64), only[9], rej)
        order = np.argsort(index * 2 + (sign > 0), kind="stable")
        ol = order.tolist()

        def objs(k: int) -> list[Any]:
            flat = [v for p in self.parts for v in p[k]]
            return [flat[i] for i in ol]

        def arr(k: int, dtype: Any) -> np.ndarray:
            return np.concatenate([np.asarray(p[k], dtype) for p in self.parts])[order]

        return JoinResult(objs(0), index[order], sign[order], arr(3, np.int32), arr(4, np.int64), objs(5),
                          arr(6, np.float64), objs(7), arr(8, np.int64), objs(9), rej)


class JoinState:
    """Waiting predictions and labels of one partition, and the pairs joined within ``max_delay_ms``.

    A prediction is keyed by (``prediction_id``, ``model_id``): a champion and its challengers may score the
    same request. A label without a model id reaches every model that scored its ``prediction_id``; one with
    a model id (``targets``) reaches that model's prediction only.

    Parameters
    ----------
    max_delay_ms
        How long a prediction waits for its label (and a label for its prediction), and how long joined ids
        are remembered to recognise duplicates; milliseconds, > 0.
    duplicate_policy
        ``"first"`` keeps the first label of an id; ``"latest"`` replaces it and emits a retraction.

    Examples
    --------
    >>> s = JoinState(max_delay_ms=1000)
    >>> m = s.intern("churn", "1", "{}")
    >>> len(s.add_labels(["p1"], [1], [50], [{}])), len(s)
    (0, 1)
    >>> r = s.add_predictions(["p1", "p2", "p2"], [m, m, m], [10, 20, 20], [1, 0, 0], [0.9, 0.2, 0.2])
    >>> r.ids, r.prediction, r.label, r.rejected.tolist(), len(s)
    (['p1'], [1], [1], [2], 1)
    >>> e = s.expire(now_ms=1021)
    >>> e.ts_ms.tolist(), s.stats.expired_predictions, len(s)
    ([20], 1, 0)

    A challenger scoring the same request gets the same label:

    >>> s = JoinState(max_delay_ms=1000)
    >>> a, b = s.intern("champ", "1", ""), s.intern("chall", "1", "")
    >>> s.add_predictions(["p1", "p1"], [a, b], [10, 10], [1, 0], [0.9, 0.4]).rejected.tolist()
    []
    >>> r = s.add_labels(["p1"], [1], [50], [{}])
    >>> [s.lookup(k)[0] for k in r.model_key.tolist()], r.prediction
    (['champ', 'chall'], [1, 0])
    """

    def __init__(self, max_delay_ms: int, duplicate_policy: DuplicatePolicy = "first") -> None:
        if int(max_delay_ms) <= 0:
            raise ValueError(f"max_delay_ms must be positive, got {max_delay_ms}")
        if duplicate_policy not in ("first", "latest"):
            raise ValueError(f"duplicate_policy must be 'first' or 'latest', got {duplicate_policy!r}")
        self.max_delay_ms = int(max_delay_ms)
        self.duplicate_policy: DuplicatePolicy = duplicate_policy
        self.stats = JoinStats()
        # newest event time read per input side (predictions, labels): kept in snapshots, so that a restored
        # partition's join clock (stream.pipeline.ingest) goes on from there even if nothing more is read
        self.read_until = [0, 0]
        self._models: list[tuple[str, str, str]] = []
        self._model_index: dict[tuple[str, str, str], int] = {}
        self._key_salt: list[int] = []  # per model key: hash of its model_id
        self._salt_array: HashArray = np.empty(0, np.uint64)
        self._shared_ids: frozenset[str] = frozenset()
        self._key_shared: list[bool] = []  # per model key: its model has a champion or challengers
        self._classes: list[str | bool] = []
        self._class_index: dict[str | bool, int] = {}
        self._preds = _Table(_PRED_DTYPES)
        self._pending: dict[int, int] = {}  # prediction_id hash -> slot of its first waiting prediction
        self._extra: dict[int, list[int]] = {}  # ... -> slots of the other models' waiting predictions
        self._labels = _Table(_LABEL_DTYPES)
        self._waiting: dict[int, int] = {}  # label key (see _label_keys) -> slot
        self._kept: set[int] = set()  # waiting keys of joined labels kept for the other models of a request
        self._n_targeted = 0  # waiting labels that name their model
        self._joined = _JoinedIds()
        self._legacy: _JoinedIds | None = None  # ids joined under the version 1 key (prediction_id alone)
        self._records: dict[int, _Record] = {}  # pair key -> the pair (policy "latest")
        self._record_keys: dict[int, list[int]] = {}  # prediction_id hash -> its pair keys (policy "latest")
        self._last_slots: IntArray = np.empty(0, np.int64)

    def __len__(self) -> int:
        return self.n_waiting_predictions + len(self._waiting) - len(self._kept)

    @property
    def n_waiting_predictions(self) -> int:
        """Predictions waiting for their label."""
        return len(self._pending) + sum(map(len, self._extra.values()))

    @property
    def n_waiting_labels(self) -> int:
        """Labels waiting for their prediction (not counting joined labels kept for other models)."""
        return len(self._waiting) - len(self._kept)

    @property
    def n_remembered(self) -> int:
        """Joined keys remembered for duplicate detection (a pair, and its ``prediction_id`` when the label
        named no model)."""
        return len(self._joined)

    def intern(self, model_id: str, model_version: str, segment: str) -> int:
        """Key of (model_id, model_version, segment JSON), added to the table if new (never removed)."""
        key = (model_id, model_version, segment)
        found = self._model_index.get(key)
        if found is None:
            found = self._model_index[key] = len(self._models)
            self._models.append(key)
            self._key_salt.append(int(hash_ids([model_id])[0]))
            self._key_shared.append(model_id in self._shared_ids)
        return found

    def lookup(self, model_key: int) -> tuple[str, str, str]:
        """The (model_id, model_version, segment JSON) of an interned key."""
        return self._models[model_key]

    @property
    def shared(self) -> frozenset[str]:
        """The models named by :meth:`set_shared`."""
        return self._shared_ids

    def set_shared(self, model_ids: Iterable[str]) -> None:
        """Name the models whose requests other models score too (champions and challengers): a label
        without a model id that joined one of their predictions is kept for ``max_delay_ms``, so that a
        prediction of another model for the same request, arriving later, still gets it."""
        self._shared_ids = model_ids if isinstance(model_ids, frozenset) else frozenset(model_ids)
        self._key_shared = [m in self._shared_ids for m, _, _ in self._models]

    def _salts(self) -> HashArray:
        if len(self._salt_array) != len(self._key_salt):
            self._salt_array = np.asarray(self._key_salt, np.uint64)
        return self._salt_array

    def _chain(self, h: int) -> list[int]:
        """Slots of the waiting predictions of a prediction_id hash, ordered by model key."""
        head = self._pending.get(h)
        if head is None:
            return []
        more = self._extra.get(h)
        if not more:
            return [head]
        model = self._preds.cols["model"]
        return sorted([head, *more], key=lambda s: int(model[s]))

    def _unlink(self, h: int, slot: int) -> None:
        """Remove one waiting prediction slot of a prediction_id hash from the index."""
        more = self._extra.get(h)
        if self._pending[h] == slot:
            if more:
                self._pending[h] = more.pop(0)
            else:
                del self._pending[h]
        elif more is not None:
            more.remove(slot)
        if more is not None and not more:
            del self._extra[h]

    def _slot_of(self, h: int, salt: int) -> int | None:
        """The waiting prediction of this prediction_id hash by the model with this salt, if any."""
        model = self._preds.cols["model"]
        for slot in self._chain(h):
            if self._key_salt[int(model[slot])] == salt:
                return slot
        return None

    def pending(self, prediction_id: str, model_id: str | None = None) -> PendingPrediction | None:
        """The waiting prediction with this id (of this model; None: the one of the lowest model key)."""
        h = int(hash_ids([prediction_id])[0])
        chain = self._chain(h)
        if model_id is not None:
            salt = int(hash_ids([model_id])[0])
            chain = [s for s in chain if self._key_salt[int(self._preds.cols["model"][s])] == salt]
        if not chain:
            return None
        slot = chain[0]
        c = self._preds.cols
        pred = self._decode(c["num"][slot:slot + 1], c["code"][slot:slot + 1])[0]
        return PendingPrediction(int(c["model"][slot]), int(c["ts"][slot]), pred, float(c["score"][slot]))

    def _encode(self, predictions: Sequence[Value] | np.ndarray) -> tuple[FloatArray, npt.NDArray[np.int32]]:
        if isinstance(predictions, np.ndarray) and predictions.dtype.kind == "f":
            num = predictions.astype(np.float64)
            return num, np.full(len(num), _FLOAT_CODE, np.int32)
        values = predictions.tolist() if isinstance(predictions, np.ndarray) else predictions
        nums: list[float] = []
        codes: list[int] = []
        index = self._class_index
        for p in values:
            if isinstance(p, float):
                nums.append(p)
                codes.append(_FLOAT_CODE)
            elif isinstance(p, int) and not isinstance(p, bool) and -_MAX_EXACT_INT <= p <= _MAX_EXACT_INT:
                nums.append(p)
                codes.append(_INT_CODE)
            elif isinstance(p, str | bool):
                code = index.get(p)
                if code is None:
                    code = index[p] = len(self._classes)
                    self._classes.append(p)
                nums.append(np.nan)
                codes.append(code)
            else:
                raise TypeError(f"prediction must be str, bool, int (|x| <= 2**53) or float, got {p!r}")
        return np.array(nums, np.float64), np.array(codes, np.int32)

    def _decode(self, num: FloatArray, code: npt.NDArray[np.int32]) -> list[Value]:
        classes = self._classes
        if not len(code) or int(code.max()) == _FLOAT_CODE == int(code.min()):
            return num.tolist()  # type: ignore[no-any-return]
        return [x if c == _FLOAT_CODE else int(x) if c == _INT_CODE else classes[c]
                for x, c in zip(num.tolist(), code.tolist(), strict=True)]

    def add_predictions(self, ids: Sequence[str], model_keys: Sequence[int] | np.ndarray,
                        ts_ms: Sequence[int] | np.ndarray, predictions: Sequence[Value] | np.ndarray,
                        scores: Sequence[float] | np.ndarray) -> JoinResult:
        """Add a batch of predictions; return the pairs they complete and the indices of duplicates (a
        prediction_id already received from the same model)."""
        n = len(ids)
        model = np.asarray(model_keys, np.int32).reshape(-1)
        ts = np.asarray(ts_ms, np.int64).reshape(-1)
        score = np.asarray(scores, np.float64).reshape(-1)
        if not len(model) == len(ts) == len(predictions) == len(score) == n:
            raise ValueError("add_predictions: ids, model_keys, ts_ms, predictions, scores differ in length")
        if n and (int(model.min()) < 0 or int(model.max()) >= len(self._models)):
            raise ValueError("add_predictions: a model key was not returned by intern()")
        num, code = self._encode(predictions)
        hashes = hash_ids(ids)
        keys = pair_keys(hashes, self._salts()[model])
        hl, kl = hashes.tolist(), keys.tolist()
        seen = self._joined.contains(keys)
        if self._legacy is not None:
            old, old_recent = self._legacy.contains(hashes), self._legacy.recent
            seen = [s or o or h in old_recent for s, o, h in zip(seen, old, hl, strict=True)]
        pending, waiting, recent, kept = self._pending, self._waiting, self._joined.recent, self._kept
        shared = self._key_shared
        ml = model.tolist()
        targeted = self._n_targeted > 0
        rejected: list[int] = []
        new: list[int] = []
        later: list[int] = []  # a prediction of the same request waits: a duplicate or another model's
        joins: list[int] = []
        label_slots: list[int] = []
        done: list[int] = []  # label slots to free (the others are kept for the request's other models)
        for i, (h, k, dup) in enumerate(zip(hl, kl, seen, strict=True)):
            if dup or k in recent:
                rejected.append(i)
            elif h in pending:
                later.append(i)
            elif targeted and (slot := waiting.pop(k, None)) is not None:
                self._n_targeted -= 1
                joins.append(i)
                label_slots.append(slot)
                done.append(slot)
                recent[k] = 0
            elif (slot := waiting.get(h)) is not None:
                joins.append(i)
                label_slots.append(slot)
                recent[k] = 0
                if h not in kept:
                    if shared[ml[i]]:
                        kept.add(h)
                    else:
                        del waiting[h]
                        done.append(slot)
            else:
                pending[h] = -1
                new.append(i)

        self._store_predictions(new, hashes, model, ts, num, code, score)
        pending.update(zip([hl[i] for i in new], self._last_slots.tolist(), strict=True))
        if later:
            self._add_later(later, hashes, kl, model, ts, num, code, score, rejected, joins, label_slots, done)
        self.stats.duplicate_predictions += len(rejected)

        rows = _Rows()
        if joins:
            ji = np.asarray(joins, np.int64)
            ls = np.asarray(label_slots, np.int64)
            if later:
                order = np.argsort(ji, kind="stable")
                ji, ls = ji[order], ls[order]
            lc = self._labels.cols
            label, label_ts = lc["label"][ls].tolist(), lc["ts"][ls].copy()
            business = lc["business"][ls].tolist()
            wild = lc["target"][ls] == 0
            if done:
                self._labels.free(np.asarray(done, np.int64))
            pred = self._decode(num[ji], code[ji])
            jl = ji.tolist()
            rows.add([ids[i] for i in jl], ji, 1, model[ji], ts[ji], pred, score[ji], label, label_ts, business)
            self._remember(keys[ji], hashes[ji], wild, model[ji], ts[ji], pred, score[ji], label, label_ts,
                           business)
        return rows.build(rejected)

    def _store_predictions(self, new: list[int], hashes: HashArray, model: npt.NDArray[np.int32], ts: IntArray,
                           num: FloatArray, code: npt.NDArray[np.int32], score: FloatArray) -> None:
        new_a = np.asarray(new, np.int64)
        slots = self._last_slots = self._preds.alloc(len(new))
        c = self._preds.cols
        c["hash"][slots] = hashes[new_a]
        c["model"][slots] = model[new_a]
        c["ts"][slots] = ts[new_a]
        c["num"][slots] = num[new_a]
        c["code"][slots] = code[new_a]
        c["score"][slots] = score[new_a]

    def _add_later(self, later: list[int], hashes: HashArray, kl: list[int], model: npt.NDArray[np.int32],
                   ts: IntArray, num: FloatArray, code: npt.NDArray[np.int32], score: FloatArray,
                   rejected: list[int], joins: list[int], label_slots: list[int], done: list[int]) -> None:
        """Predictions whose request has a waiting prediction: a duplicate when it is the same model's,
        otherwise one more waiting prediction of the request (or a pair with a label naming its model)."""
        salts = self._key_salt
        hl = hashes.tolist()
        for i in later:
            h, k = hl[i], kl[i]
            if self._slot_of(h, salts[int(model[i])]) is not None:
                rejected.append(i)
            elif self._n_targeted and (slot := self._waiting.pop(k, None)) is not None:
                self._n_targeted -= 1
                joins.append(i)
                label_slots.append(slot)
                done.append(slot)
                self._joined.recent[k] = 0
            else:
                self._store_predictions([i], hashes, model, ts, num, code, score)
                self._extra.setdefault(h, []).append(int(self._last_slots[0]))

    def _remember(self, keys: HashArray, hashes: HashArray, wild: npt.NDArray[np.bool_], model: np.ndarray,
                  ts: IntArray, pred: list[Value], score: FloatArray, label: list[Value], label_ts: IntArray,
                  business: list[Mapping[str, float]]) -> None:
        """Remember joined pairs by pair key, and the prediction_id of each label that named no model."""
        join_time = np.maximum(ts, label_ts)
        times = join_time.tolist()
        kl = keys.tolist()
        self._joined.add(kl, times)
        if wild.any():
            self._joined.add(hashes[wild].tolist(), join_time[wild].tolist())
        self.stats.joined += len(kl)
        if self.duplicate_policy == "latest":
            hl = hashes.tolist()
            self._records.update(zip(kl, zip(model.tolist(), ts.tolist(), pred, score.tolist(), label,
                                             label_ts.tolist(), business, times, hl, strict=True), strict=True))
            for k, h in zip(kl, hl, strict=True):
                found = self._record_keys.setdefault(h, [])
                if k not in found:
                    found.append(k)

    def _label_keys(self, hashes: HashArray, targets: Sequence[str | None] | None) -> tuple[HashArray, HashArray]:
        """Waiting keys of labels (the prediction_id hash, or the pair key when the label names its model)
        and the hash of the model each names (0: every model)."""
        salts = np.zeros(len(hashes), np.uint64)
        if targets is None or all(t is None for t in targets):
            return hashes, salts
        named = np.fromiter((t is not None for t in targets), bool, len(targets))
        salts[named] = hash_ids([t for t in targets if t is not None])
        return np.where(named, pair_keys(hashes, salts), hashes), salts

    def add_labels(self, ids: Sequence[str], labels: Sequence[Value], ts_ms: Sequence[int] | np.ndarray,
                   business: Sequence[Mapping[str, float]],
                   targets: Sequence[str | None] | None = None) -> JoinResult:
        """Add a batch of labels; return the pairs (and retractions) they produce and ignored duplicates.

        ``targets`` holds the model id a label is for, or None: the label is for every model that scored its
        prediction_id."""
        n = len(ids)
        ts = np.asarray(ts_ms, np.int64).reshape(-1)
        if not len(labels) == len(ts) == len(business) == n or (targets is not None and len(targets) != n):
            raise ValueError("add_labels: ids, labels, ts_ms, business and targets differ in length")
        latest = self.duplicate_policy == "latest"
        hashes = hash_ids(ids)
        lkeys, tsalt = self._label_keys(hashes, targets)
        if latest:
            _, last = np.unique(lkeys[::-1], return_index=True)
            keep = np.sort(n - 1 - last)
        else:
            keep = np.sort(np.unique(lkeys, return_index=True)[1])
        rejected: list[int] = []
        if len(keep) < n:
            dropped = np.ones(n, bool)
            dropped[keep] = False
            rejected.extend(np.flatnonzero(dropped).tolist())
        keep_l = keep.tolist()
        lk = lkeys[keep]
        hl, tl = hashes.tolist(), tsalt.tolist()
        pending, waiting, recent, extra = self._pending, self._waiting, self._joined.recent, self._extra
        any_shared = any(self._key_shared)
        model_col = self._preds.cols["model"]
        joins: list[int] = []
        pred_slots: list[int] = []
        replace: list[int] = []
        rewait: list[int] = []
        rewait_slots: list[int] = []
        new: list[int] = []
        for i, key, seen in zip(keep_l, lk.tolist(), self._joined.contains(lk), strict=True):
            h = hl[i]
            if tl[i]:  # names its model
                if seen or key in recent:
                    (replace if latest else rejected).append(i)
                elif h in pending and (slot := self._slot_of(h, tl[i])) is not None:
                    self._unlink(h, slot)
                    joins.append(i)
                    pred_slots.append(slot)
                elif (slot := waiting.get(key)) is not None:
                    if latest:
                        rewait.append(i)
                        rewait_slots.append(slot)
                    else:
                        rejected.append(i)
                else:
                    waiting[key] = -1
                    self._n_targeted += 1
                    new.append(i)
            elif (slot := pending.pop(h, None)) is not None:
                slots = [slot]
                if extra and (more := extra.pop(h, None)):
                    slots = sorted([slot, *more], key=lambda s: int(model_col[s]))
                joins.extend([i] * len(slots))
                pred_slots.extend(slots)
                if any_shared and any(self._key_shared[int(model_col[s])] for s in slots):
                    waiting[h] = -1  # kept for the request's other models
                    self._kept.add(h)
                    new.append(i)
            elif seen or key in recent:
                (replace if latest else rejected).append(i)
            elif (slot := waiting.get(h)) is not None:
                if latest and h not in self._kept:
                    rewait.append(i)
                    rewait_slots.append(slot)
                else:
                    rejected.append(i)
            else:
                waiting[h] = -1
                new.append(i)

        lc = self._labels.cols
        if new:
            na = np.asarray(new, np.int64)
            slots_a = self._labels.alloc(len(new))
            lc["hash"][slots_a] = lkeys[na]
            lc["ts"][slots_a] = ts[na]
            lc["target"][slots_a] = tsalt[na]
            lc["id"][slots_a] = _objects((ids[i] for i in new), len(new))
            lc["label"][slots_a] = _objects((labels[i] for i in new), len(new))
            lc["business"][slots_a] = _objects((business[i] for i in new), len(new))
            waiting.update(zip(lkeys[na].tolist(), slots_a.tolist(), strict=True))
        if rewait:
            ra, rs = np.asarray(rewait, np.int64), np.asarray(rewait_slots, np.int64)
            lc["ts"][rs] = ts[ra]
            lc["label"][rs] = _objects((labels[i] for i in rewait), len(rewait))
            lc["business"][rs] = _objects((business[i] for i in rewait), len(rewait))

        rows = _Rows()
        if joins:
            ji, ps = np.asarray(joins, np.int64), np.asarray(pred_slots, np.int64)
            c = self._preds.cols
            model, pts, score = c["model"][ps], c["ts"][ps].copy(), c["score"][ps]
            pred = self._decode(c["num"][ps], c["code"][ps])
            ph = c["hash"][ps].copy()
            self._preds.free(ps)
            label = [labels[i] for i in joins]
            bus = [business[i] for i in joins]
            rows.add([ids[i] for i in joins], ji, 1, model, pts, pred, score, label, ts[ji], bus)
            self._remember(pair_keys(ph, self._salts()[model]), ph, tsalt[ji] == 0, model, pts, pred, score,
                           label, ts[ji], bus)
        if replace:
            self._replace(replace, hashes, lkeys, tsalt, ids, labels, ts, business, rows, rejected)
        self.stats.duplicate_labels += len(rejected) + len(rewait)
        return rows.build(rejected)

    def _replace(self, replace: list[int], hashes: HashArray, lkeys: HashArray, tsalt: HashArray,
                 ids: Sequence[str], labels: Sequence[Value], ts: IntArray, business: Sequence[Mapping[str, float]],
                 rows: _Rows, rejected: list[int]) -> None:
        """Policy "latest": a later label replaces the label of the pairs it reaches (retraction, new pair)."""
        old: list[_Record] = []
        new: list[_Record] = []
        index: list[int] = []
        id_list: list[str] = []
        replaced = 0
        for i in replace:
            h = int(hashes[i])
            keys = [int(lkeys[i])] if tsalt[i] else self._record_keys.get(h, [])
            label, label_ts, bus = labels[i], int(ts[i]), business[i]
            changed = 0
            for key in keys:
                rec = self._records.get(key)
                if rec is None or (rec[4] == label and rec[5] == label_ts and rec[6] == bus):
                    continue
                updated = (*rec[:4], label, label_ts, bus, max(rec[7], label_ts), h)
                self._records[key] = updated
                self._joined.add([key], [updated[7]])
                old.append(rec)
                new.append(updated)
                index.append(i)
                id_list.append(ids[i])
                changed += 1
            if not changed:
                rejected.append(i)
                continue
            replaced += 1
            if not tsalt[i]:
                self._joined.add([h], [label_ts])
                slot = self._waiting.get(h) if h in self._kept else None
                if slot is not None:  # later predictions of the request get the new label
                    lc = self._labels.cols
                    lc["ts"][slot], lc["label"][slot], lc["business"][slot] = label_ts, label, bus
        self.stats.duplicate_labels += replaced
        if not index:
            return
        ix = np.asarray(index, np.int64)
        for sign, recs in ((-1, old), (1, new)):
            cols = list(zip(*recs, strict=True))
            rows.add(id_list, ix, sign, np.asarray(cols[0], np.int32), np.asarray(cols[1], np.int64),
                     list(cols[2]), np.asarray(cols[3], np.float64), list(cols[4]),
                     np.asarray(cols[5], np.int64), list(cols[6]))

    def expire(self, now_ms: int) -> Expired:
        """Remove predictions and labels waiting longer than ``max_delay_ms``, and forget old joined ids."""
        cutoff = int(now_ms) - self.max_delay_ms
        p = self._preds.older_than(cutoff)
        c = self._preds.cols
        p = p[np.lexsort((c["model"][p], c["hash"][p], c["ts"][p]))]
        if self._extra:
            for h, slot in zip(c["hash"][p].tolist(), p.tolist(), strict=True):
                self._unlink(h, slot)
        else:
            for h in c["hash"][p].tolist():
                del self._pending[h]
        model, ts, score = c["model"][p], c["ts"][p].copy(), c["score"][p]
        pred = self._decode(c["num"][p], c["code"][p])
        self._preds.free(p)

        q = self._labels.older_than(cutoff)
        lc = self._labels.cols
        q = q[np.lexsort((lc["hash"][q], lc["ts"][q]))]
        kept = self._kept
        orphan = np.ones(len(q), bool)
        for j, key in enumerate(lc["hash"][q].tolist()):
            del self._waiting[key]
            if key in kept:
                kept.discard(key)
                orphan[j] = False
        self._n_targeted -= int(np.count_nonzero(lc["target"][q]))
        o = q[orphan]
        orphan_ids, orphan_labels = lc["id"][o].tolist(), lc["label"][o].tolist()
        orphan_ts, orphan_business = lc["ts"][o].copy(), lc["business"][o].tolist()
        self._labels.free(q)

        for key in self._joined.expire(cutoff):
            rec = self._records.get(key)
            if rec is not None and rec[7] < cutoff:
                del self._records[key]
                found = self._record_keys.get(rec[8])
                if found is not None:
                    found.remove(key)
                    if not found:
                        del self._record_keys[rec[8]]
        if self._legacy is not None:
            self._legacy.expire(cutoff)
            if not len(self._legacy):
                self._legacy = None
        self.stats.expired_predictions += len(p)
        self.stats.orphans += len(o)
        return Expired(model, ts, pred, score, orphan_ids, orphan_labels, orphan_ts, orphan_business)

    def snapshot(self) -> bytes:
        """Serialise the whole state (numpy columns as raw bytes plus a JSON header; no pickle)."""
        arrays: dict[str, np.ndarray] = {}
        live = self._preds.live()
        for name, col in self._preds.cols.items():
            arrays["pred_" + name] = col[live]
        q = self._labels.live()
        lc = self._labels.cols
        arrays["label_hash"], arrays["label_ts"], arrays["label_target"] = lc["hash"][q], lc["ts"][q], lc["target"][q]
        arrays["kept"] = np.asarray(sorted(self._kept), np.uint64)
        for prefix, joined in (("", self._joined), ("legacy_", self._legacy or _JoinedIds())):
            arrays[prefix + "recent_hash"] = np.fromiter(joined.recent.keys(), np.uint64, len(joined.recent))
            arrays[prefix + "recent_ts"] = np.fromiter(joined.recent.values(), np.int64, len(joined.recent))
            segs = joined.segments
            arrays[prefix + "seg_hash"] = np.concatenate([k for k, _ in segs]) if segs else np.empty(0, np.uint64)
            arrays[prefix + "seg_ts"] = np.concatenate([t for _, t in segs]) if segs else np.empty(0, np.int64)
        arrays["record_hash"] = np.fromiter(self._records.keys(), np.uint64, len(self._records))
        meta = {
            "version": _SNAPSHOT_VERSION,
            "max_delay_ms": self.max_delay_ms,
            "duplicate_policy": self.duplicate_policy,
            "stats": asdict(self.stats),
            "read_until": self.read_until,
            "models": self._models,
            "shared": sorted(self._shared_ids),
            "classes": self._classes,
            "label_id": lc["id"][q].tolist(),
            "label_value": lc["label"][q].tolist(),
            "label_business": lc["business"][q].tolist(),
            "seg_lengths": [len(k) for k, _ in self._joined.segments],
            "legacy_seg_lengths": [len(k) for k, _ in (self._legacy or _JoinedIds()).segments],
            "records": list(self._records.values()),
        }
        specs = [[name, a.dtype.str, len(a)] for name, a in arrays.items()]
        header = orjson.dumps({"meta": meta, "arrays": specs})
        return b"".join([_MAGIC, len(header).to_bytes(8, "little"), header,
                         *(np.ascontiguousarray(a).tobytes() for a in arrays.values())])

    @classmethod
    def restore(cls, data: bytes) -> JoinState:
        """Rebuild a state from :meth:`snapshot` bytes. A version 1 snapshot (predictions keyed by
        prediction_id alone) is migrated: its ids joined so far still make a repeated prediction a duplicate
        until they expire."""
        if not data.startswith(_MAGIC):
            raise ValueError("not a JoinState snapshot (bad magic bytes)")
        pos = len(_MAGIC)
        size = int.from_bytes(data[pos:pos + 8], "little")
        header = orjson.loads(data[pos + 8:pos + 8 + size])
        meta = header["meta"]
        version = meta["version"]
        if version not in (1, _SNAPSHOT_VERSION):
            raise ValueError(f"JoinState snapshot version {version} is not supported")
        pos += 8 + size
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, count in header["arrays"]:
            arrays[name] = np.frombuffer(data, np.dtype(dtype), count, pos).copy()
            pos += arrays[name].nbytes
        state = cls(meta["max_delay_ms"], meta["duplicate_policy"])
        state.stats = JoinStats(**meta["stats"])
        state.read_until = [int(t) for t in meta.get("read_until", [0, 0])]
        state._shared_ids = frozenset(meta.get("shared", []))
        for model in meta["models"]:
            state.intern(*model)
        state._classes = meta["classes"]
        state._class_index = {v: i for i, v in enumerate(state._classes)}
        state._preds = _Table(_PRED_DTYPES, {name: arrays["pred_" + name] for name in _PRED_DTYPES})
        pred_hash = arrays["pred_hash"].tolist()
        state._pending = dict(zip(pred_hash, range(len(pred_hash)), strict=True))
        if len(state._pending) < len(pred_hash):  # requests scored by several models: index their chains
            state._pending = {}
            for slot, h in enumerate(pred_hash):
                if h in state._pending:
                    state._extra.setdefault(h, []).append(slot)
                else:
                    state._pending[h] = slot
        n_labels = len(arrays["label_hash"])
        target = arrays.get("label_target", np.zeros(n_labels, np.uint64))
        state._labels = _Table(_LABEL_DTYPES, {
            "hash": arrays["label_hash"], "ts": arrays["label_ts"], "target": target,
            "id": _objects(meta["label_id"], n_labels), "label": _objects(meta["label_value"], n_labels),
            "business": _objects(meta["label_business"], n_labels)})
        state._waiting = dict(zip(arrays["label_hash"].tolist(), range(n_labels), strict=True))
        state._kept = set(arrays.get("kept", np.empty(0, np.uint64)).tolist())
        state._n_targeted = int(np.count_nonzero(target))
        state._joined = _joined_from(arrays, meta, "")
        records: list[list[Any]] = meta["records"]
        if version == 1:  # joined ids are prediction_id hashes: they still stop a repeated prediction or label
            state._legacy = _joined_from(arrays, meta, "")
            if not len(state._legacy):
                state._legacy = None
            salts = state._salts()
            old = arrays["record_hash"]
            models = np.asarray([r[0] for r in records], np.int32)
            arrays["record_hash"] = pair_keys(old, salts[models]) if len(old) else old
            records = [[*r, h] for r, h in zip(records, old.tolist(), strict=True)]
        else:
            legacy = _joined_from(arrays, meta, "legacy_")
            state._legacy = legacy if len(legacy) else None
        state._records = {k: tuple(r) for k, r in  # type: ignore[misc]
                          zip(arrays["record_hash"].tolist(), records, strict=True)}
        for k, rec in state._records.items():
            state._record_keys.setdefault(rec[8], []).append(k)
        return state


def _joined_from(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], prefix: str) -> _JoinedIds:
    joined = _JoinedIds()
    if prefix + "recent_hash" not in arrays:
        return joined
    joined.recent = dict(zip(arrays[prefix + "recent_hash"].tolist(), arrays[prefix + "recent_ts"].tolist(),
                             strict=True))
    bounds = np.cumsum([0, *meta[prefix + "seg_lengths"]]).tolist()
    joined.segments = [(arrays[prefix + "seg_hash"][a:b].copy(), arrays[prefix + "seg_ts"][a:b].copy())
                       for a, b in itertools.pairwise(bounds)]
    return joined
