"""Errors a user can hit: one line saying what was wrong and what to do."""


class UserError(Exception):
    """An error shown to the user as one line, without a traceback (exit code 2)."""
