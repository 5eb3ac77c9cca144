"""Entry point of the ``cadkit`` command: one click group; each sub-command lives in its own module.

Every error meant for the user is printed as one line on stderr, without a traceback: usage errors
(a click usage error or a :class:`cadkit.errors.UsageError`: a bad value, a missing or foreign file)
exit with code 2, runtime failures (a :class:`cadkit.errors.CadkitError`: a model not cached, NaN, an
unavailable network; an ``OSError`` such as a full disk) with code 1, an interruption with 130.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
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
    "cadkit.cli.plugins_cmd",
)


def _one_line(msg: str) -> str:
    return " ".join(str(msg).split())


class CadkitGroup(click.Group):
    """The ``cadkit`` group: one-line errors with the exit code of their kind (see the module docstring)."""

    command_class = CadkitCommand
    group_class = CadkitSubGroup

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            ctx = exc.ctx
            where = f"{ctx.command_path}: " if ctx is not None else ""
            click.echo(f"error: {where}{_one_line(exc.format_message())}", err=True)
            sys.exit(EXIT_USAGE)
        except CadkitError as exc:
            click.echo(f"error: {_one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("aborted", err=True)
            sys.exit(130)
        except OSError as exc:  # a full disk, a folder that vanished: a runtime failure
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            click.echo(f"error: {_one_line(exc.strerror or str(exc))}{where}", err=True)
            sys.exit(EXIT_RUNTIME)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        if isinstance(rv, int):
            sys.exit(rv)
        sys.exit(0)


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
