"""Errors a user can hit: one line saying what was wrong and what to do."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class UserError(Exception):
    """An error shown to the user as one line, without a traceback (exit code 2)."""


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Silence a library's logger while we report its failure ourselves, in one line."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
