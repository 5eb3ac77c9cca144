"""Errors that cadkit reports to users as one line, without a traceback.

Two kinds, told apart by the exit code the command line gives them:

* :class:`UsageError` (exit 2): a value the caller gave cannot be used — a bad number, a missing
  or foreign file, a folder that holds another run. It names the *Python parameter* that carries
  the value (``ratio``, ``images_per_class``); the command line shows the option that set it
  instead (``--ratio``), since click knows which option fills which parameter.
  :class:`BadArgument` is the common case "expected X; got Y".
* :class:`CadkitError` (exit 1): a runtime failure — a model that is not cached, a NaN objective,
  a full disk, a network that cannot be fetched offline.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CadkitError", "UsageError", "BadArgument", "bad_arg", "usage_error", "EXIT_USAGE", "EXIT_RUNTIME"]

EXIT_USAGE = 2
EXIT_RUNTIME = 1


class CadkitError(Exception):
    """A runtime failure whose message is meant for the user: one line, exit code 1.

    ``param`` (optional) names the Python parameter the failure concerns (``model`` for a model that
    is not cached); the message then reads ``"<param>: <message>"``.
    """

    exit_code = EXIT_RUNTIME

    def __init__(self, message: str, param: str | None = None) -> None:
        self.param, self.message = param, message
        super().__init__(f"{param}: {message}" if param else message)

    def renamed(self, param: str | None) -> CadkitError:
        """The same error attributed to ``param`` (a caller that passed the value under another name)."""
        return type(self)(self.message, param)


class UsageError(CadkitError, ValueError):
    """A value given by the caller cannot be used: ``"<param>: <message>"``, exit code 2.

    ``param`` is the Python parameter name (or several joined by ``/``), or None when the message
    names no single parameter.
    """

    exit_code = EXIT_USAGE

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(message, param)

    def renamed(self, param: str | None) -> UsageError:
        """The same error attributed to ``param`` (a caller that passed the value under another name)."""
        return UsageError(param, self.message)


class BadArgument(UsageError):
    """A value is not allowed: ``"<param>: expected <allowed>; got <given>"``."""

    def __init__(self, param: str, allowed: str | Iterable[str], given: object) -> None:
        if not isinstance(allowed, str):
            allowed = "one of " + ", ".join(str(a) for a in allowed)
        self.allowed, self.given = allowed, given
        super().__init__(param, f"expected {allowed}; got {given!r}")

    def renamed(self, param: str | None) -> UsageError:
        return BadArgument(param, self.allowed, self.given) if param else UsageError(None, self.message)


def bad_arg(param: str, allowed: str | Iterable[str], given: object) -> BadArgument:
    """Build a :class:`BadArgument` (for ``raise bad_arg(...)``); ``param`` is the Python parameter name."""
    return BadArgument(param, allowed, given)


def usage_error(param: str | None, message: str) -> UsageError:
    """Build a :class:`UsageError` (for ``raise usage_error(...)``)."""
    return UsageError(param, message)
