"""The per-record fault barrier: run a stage on a whole batch; if it raises, split the batch in halves until the
record at fault is alone, and hand that record to ``on_poison`` (which makes it a dead letter).

The happy path costs one ``try``. A stage run under the barrier must change nothing before it can fail on a
record (validate first, then apply), so that re-running the halves applies every good record exactly once; an
error that is not a record's fault is raised as `StageFailure` and passes through: the process stops.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class StageFailure(RuntimeError):
    """A stage failed for a reason that is not one record's fault (or after it changed state): stop."""


def isolate(items: Sequence[T], run: Callable[[Sequence[T]], R], on_poison: Callable[[T, Exception], None]) -> list[R]:
    """The results of ``run`` over ``items``, split so that every record ``run`` fails on goes to ``on_poison``.

    >>> def run(xs): return [1 / x for x in xs]
    >>> poisoned = []
    >>> isolate([1, 2, 0, 4], run, lambda x, e: poisoned.append((x, type(e).__name__)))
    [[1.0, 0.5], [0.25]]
    >>> poisoned
    [(0, 'ZeroDivisionError')]
    """
    try:
        return [run(items)]
    except StageFailure:
        raise
    except Exception as exc:
        if len(items) <= 1:
            if items:
                on_poison(items[0], exc)
            return []
        mid = len(items) // 2
        return isolate(items[:mid], run, on_poison) + isolate(items[mid:], run, on_poison)


def describe(exc: BaseException) -> str:
    """One line naming an exception, for a dead letter's error text."""
    text = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
