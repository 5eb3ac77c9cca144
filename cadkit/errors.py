"""Errors that cadkit reports to users as one line (the CLI exits with code 2)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CadkitError", "BadArgument", "bad_arg"]


class CadkitError(Exception):
    """An error whose message is meant for the user: one line, no traceback."""


class BadArgument(CadkitError, ValueError):
    """A user-supplied value is not allowed.

    The message names the argument, what is allowed and what was given.
    """

    def __init__(self, name: str, allowed: str | Iterable[str], given: object) -> None:
        if not isinstance(allowed, str):
            allowed = "one of " + ", ".join(str(a) for a in allowed)
        self.name, self.allowed, self.given = name, allowed, given
        super().__init__(f"{name}: expected {allowed}; got {given!r}")


def bad_arg(name: str, allowed: str | Iterable[str], given: object) -> BadArgument:
    """Build a :class:`BadArgument` (for ``raise bad_arg(...)``)."""
    return BadArgument(name, allowed, given)
