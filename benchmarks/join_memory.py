"""Memory per waiting prediction and add_predictions/add_labels throughput of stream.pipeline.join.JoinState.

Run: ``.venv/bin/python benchmarks/join_memory.py [--n 200000] [--batch 1000]``.

Memory: ``n`` predictions with random 36-character UUID ids are inserted in batches and left waiting; the
bytes allocated by the state (tracemalloc, inputs excluded) and the process RSS growth are divided by ``n``.
Throughput: ``n`` predictions then their labels (shuffled, so every label joins a waiting prediction) are
added in batches, timed without tracemalloc; events/s counts both sides.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc
import uuid

import numpy as np

from stream.pipeline.join import JoinState

DAY_MS = 86_400_000


def make_batches(n: int, batch: int, seed: int = 0) -> list[tuple[list[str], np.ndarray, np.ndarray,
                                                               np.ndarray, np.ndarray]]:
    """Prediction batches: (ids, model_keys, ts_ms, predictions, scores), 4 model keys, binary classes."""
    rng = np.random.default_rng(seed)
    raw = rng.bytes(16 * n)
    ids = [str(uuid.UUID(bytes=raw[16 * i:16 * i + 16], version=4)) for i in range(n)]
    keys = rng.integers(0, 4, n).astype(np.int32)
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64)
    preds = rng.integers(0, 2, n)
    scores = rng.random(n)
    return [(ids[a:a + batch], keys[a:a + batch], ts[a:a + batch], preds[a:a + batch], scores[a:a + batch])
            for a in range(0, n, batch)]


def new_state() -> JoinState:
    state = JoinState(max_delay_ms=7 * DAY_MS)
    for k in range(4):
        state.intern(f"model-{k}", "1", "{}")
    return state


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def memory(n: int, batch: int) -> tuple[float, float]:
    """(tracemalloc bytes, RSS bytes) per waiting prediction; RSS measured on a run without tracemalloc."""
    batches = make_batches(n, batch)
    gc.collect()
    rss0 = rss_bytes()
    state = new_state()
    for ids, keys, ts, preds, scores in batches:
        state.add_predictions(ids, keys, ts, preds, scores)
    gc.collect()
    rss = (rss_bytes() - rss0) / n
    del state
    gc.collect()
    state = new_state()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for ids, keys, ts, preds, scores in batches:
        state.add_predictions(ids, keys, ts, preds, scores)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert state.n_waiting_predictions == n
    return traced / n, rss


def throughput(n: int, batch: int) -> float:
    """Events (predictions + labels) per second."""
    batches = make_batches(n, batch)
    rng = np.random.default_rng(1)
    all_ids = [i for b in batches for i in b[0]]
    order = rng.permutation(n)
    label_ids = [all_ids[i] for i in order]
    labels = rng.integers(0, 2, n).tolist()
    label_ts = 1_700_000_100_000 + np.arange(n, dtype=np.int64)
    empty: list[dict[str, float]] = [{}] * batch
    state = new_state()
    joined = 0
    t0 = time.perf_counter()
    for ids, keys, ts, preds, scores in batches:
        state.add_predictions(ids, keys, ts, preds, scores)
    for a in range(0, n, batch):
        joined += len(state.add_labels(label_ids[a:a + batch], labels[a:a + batch], label_ts[a:a + batch],
                                       empty[:len(label_ids[a:a + batch])]))
    elapsed = time.perf_counter() - t0
    assert joined == n and len(state) == 0
    return 2 * n / elapsed


def snapshot_cost(n: int, batch: int) -> tuple[int, float, float]:
    """(snapshot bytes, snapshot seconds, restore seconds) with n waiting predictions."""
    state = new_state()
    for ids, keys, ts, preds, scores in make_batches(n, batch):
        state.add_predictions(ids, keys, ts, preds, scores)
    t0 = time.perf_counter()
    data = state.snapshot()
    t1 = time.perf_counter()
    JoinState.restore(data)
    return len(data), t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    traced, rss = memory(args.n, args.batch)
    print(f"memory: {traced:.1f} bytes/waiting prediction (tracemalloc), {rss:.1f} (RSS delta), n={args.n}")
    rates = [throughput(args.n, args.batch) for _ in range(3)]
    print(f"throughput: {max(rates):,.0f} events/s (best of 3; add_predictions + add_labels, "
          f"batches of {args.batch}, n={args.n} each side)")
    size, t_snap, t_restore = snapshot_cost(args.n, args.batch)
    print(f"snapshot: {size / args.n:.1f} bytes/waiting prediction, {t_snap * 1e3:.1f} ms, "
          f"restore {t_restore * 1e3:.1f} ms, n={args.n}")


if __name__ == "__main__":
    main()
