"""Entry point of the ``cadkit`` command: one click group; each sub-command lives in its own module.

Every error meant for the user is printed as one line on stderr, without a traceback: usage errors
(a click usage error or a :class:`cadkit.errors.UsageError`: a bad value, a missing or foreign file)
exit with code 2, runtime failures (a :class:`cadkit.errors.CadkitError`: a model not cached, NaN, an
unavailable network; an ``OSError`` such as a full disk) with code 1, Ctrl-C with 130 ("aborted"),
``kill`` (SIGTERM) with 143 ("terminated").
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import click

from cadkit.cli.core import CadkitCommand, CadkitSubGroup
from cadkit.errors import EXIT_RUNTIME, EXIT_USAGE, CadkitError

# Sub-command modules; each defines ``register(group)``.
_COMMAND_MODULES = (
    "cadkit.cli.models_cmd",
    "cadkit.cli.generate_cmd",
    "cadkit.cli.tiny_cmd",
    "cadkit.cli.attribute_cmd",
    "cadkit.cli.edit_cmd",
    "cadkit.cli.erase_cmd",
    "cadkit.cli.verify_cmd",
    "cadkit.cli.bench_cmd",
    "cadkit.cli.attack_cmd",
    "cadkit.cli.plugins_cmd",
)


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


class _Stopped(Exception):
    """A ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM turned into one) carried past click's ``main``, which
    would print an empty line before our one line ("aborted", "terminated")."""


class CadkitGroup(click.Group):
    """The ``cadkit`` group: one-line errors with the exit code of their kind (see the module docstring)."""

    command_class = CadkitCommand
    group_class = CadkitSubGroup

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Stopped() from None

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        with warnings.catch_warnings(record=True) as caught, _watch_signals() as interrupted:  # warnings held back: an error stays one line
            code = self._run(interrupted, *args, **kwargs)
        if code == 0:  # a run that worked shows each distinct library warning once, on one line
            for line in dict.fromkeys(f"warning: {w.category.__name__}: {_one_line(str(w.message))}" for w in caught):
                click.echo(line, err=True)
        sys.exit(code)

    def _run(self, interrupted: Callable[[], str | None], *args: Any, **kwargs: Any) -> int:
        """Run the command; print its error, if any, as one line; return the exit code."""
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            return 0
        except click.UsageError as exc:
            ctx = exc.ctx
            where = f"{ctx.command_path}: " if ctx is not None else ""
            click.echo(f"error: {where}{_one_line(exc.format_message())}", err=True)
            return EXIT_USAGE
        except CadkitError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            return exc.exit_code
        except (click.exceptions.Abort, KeyboardInterrupt, _Stopped):
            code, message = _STOPPED[interrupted() or "SIGINT"]
            click.echo(message, err=True)
            return code
        except OSError as exc:  # a full disk, a folder that vanished: a runtime failure
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"error: {_one_line(exc.strerror or str(exc))}{where}", err=True)
            return EXIT_RUNTIME
        except click.exceptions.Exit as exc:
            return int(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            return int(exc.exit_code)
        except SystemExit as exc:  # Lightning turns Ctrl-C inside a stage into exit(1) (see lightning_interrupts)
            if exc.code == 1 and interrupted():
                code, message = _STOPPED[interrupted() or "SIGINT"]
                click.echo(message, err=True)
                return code
            raise
        return rv if isinstance(rv, int) else 0


#: Exit code and message of each signal that stops a command.
_STOPPED = {"SIGINT": (130, "aborted"), "SIGTERM": (143, "terminated")}


@contextlib.contextmanager
def _watch_signals() -> Iterator[Callable[[], str | None]]:
    """While a command runs, remember which of Ctrl-C (SIGINT) and ``kill`` (SIGTERM) arrived.

    Ctrl-C then interrupts as Python does. SIGTERM, when nothing else handles it, interrupts the same
    way (a ``KeyboardInterrupt`` wherever the command is) instead of killing the process outright or,
    inside a Lightning loop, being noted and ignored (Lightning's own SIGTERM handler only records it
    outside SLURM): the command stops between two writes, its temporaries are cleaned, and a rerun
    resumes. A signal that is ignored or handled elsewhere (a background job's SIGINT) is left alone."""
    import signal
    import threading

    seen: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    restore: dict[int, Any] = {}
    prev_int = signal.getsignal(signal.SIGINT)
    if callable(prev_int):
        def on_int(signum: int, frame: Any) -> None:
            seen.append("SIGINT")
            prev_int(signum, frame)  # type: ignore[operator]

        restore[signal.SIGINT] = prev_int
        signal.signal(signal.SIGINT, on_int)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        def on_term(signum: int, frame: Any) -> None:
            seen.append("SIGTERM")
            raise KeyboardInterrupt

        restore[signal.SIGTERM] = signal.SIG_DFL
        signal.signal(signal.SIGTERM, on_term)
    try:
        yield lambda: seen[0] if seen else None
    finally:
        for signum, handler in restore.items():
            signal.signal(signum, handler)


@click.group(cls=CadkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cadkit")
def cli() -> None:
    """cadkit: Component Attribution for Diffusion models (find, erase and amplify concepts)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", category=FutureWarning)


for _name in _COMMAND_MODULES:
    try:
        _mod = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # a sub-command not written yet
        if _exc.name != _name:
            raise
        continue
    _mod.register(cli)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="cadkit")


if __name__ == "__main__":
    main()
