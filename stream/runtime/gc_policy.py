"""The worker's garbage-collector policy: fewer collections of the young generation, the startup heap frozen.

Each ingest batch allocates ~25 short-lived objects per event (decoded JSON, feature dicts, column lists), so
with CPython's default threshold (a young collection every 700 net allocations) the collector ran every ~30
events and its older collections walked the long-lived state every few batches: in the stage pass of
`make bench` the collector cost ~14 µs per event, half of decoding. The state is acyclic plain data and is
freed by reference counting; the collector is only needed for the rare cycle, which a higher threshold still
finds.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # net allocations between young collections (CPython's default: 700)
MIDDLE_THRESHOLD = 20  # young collections between middle ones (default 10)
OLD_THRESHOLD = 10  # middle collections between full ones (default 10; a full one also waits for +25% objects)


def tune_gc() -> tuple[int, int, int]:
    """Raise the collection thresholds and freeze what startup allocated (modules, settings, the registry) so
    that full collections do not walk it again; return the previous thresholds.

    >>> previous = tune_gc(); gc.get_threshold()
    (50000, 20, 10)
    >>> gc.set_threshold(*previous); gc.unfreeze()
    """
    previous = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
    return previous
