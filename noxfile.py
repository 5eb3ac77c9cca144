"""nox sessions: the two commands of a fresh machine, each installing what it needs (nox is the only prerequisite).

    nox -s bench     install cadkit, then run the main job: `cadkit bench erase-objects` on the embedded model
    nox -s tests     install cadkit with its test tools, then lint (ruff), type check (mypy) and the tests (pytest)

Arguments after ``--`` go to the command (``nox -s bench -- --quick``, ``nox -s tests -- tests/editing``).
Each session keeps its virtual environment (``.nox/<session>``) and reuses it on later runs. ``lint`` and
``typecheck`` run one check alone.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"

#: The one place of the torch pin: this CUDA build of torch runs on CPUs too, and torchvision must match it
#: (the CPU-only torch wheels of this machine's index do not work with any torchvision there).
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]
OFFLINE = {"HF_HUB_OFFLINE": "1"}


@nox.session
def bench(session: nox.Session) -> None:
    """The main job: CAD-Erase every object class of the embedded model and judge it (offline)."""
    session.install(*TORCH, "-e", ".")
    session.run("cadkit", "bench", "erase-objects", *session.posargs, env=OFFLINE)


@nox.session
def tests(session: nox.Session) -> None:
    """Lint, type check, then the test suite (offline); what CI runs."""
    session.install(*TORCH, "-e", ".[dev]")
    session.run("ruff", "check", "cadkit", "cli", "benchmarks", "tests", "noxfile.py")
    session.run("mypy", "cadkit", "cli", "benchmarks")
    session.run("python", "-m", "pytest", "tests", *session.posargs, env=OFFLINE)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", "cadkit", "cli", "benchmarks", "tests", "noxfile.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on cadkit, cli and benchmarks."""
    session.install(*TORCH, "-e", ".[dev]")
    session.run("mypy", "cadkit", "cli", "benchmarks")
