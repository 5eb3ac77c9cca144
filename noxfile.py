"""nox sessions: tests, lint, typecheck."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (offline)."""
    session.install(*TORCH, "-e", ".[test]")
    session.run("python", "-m", "pytest", "tests", *session.posargs, env={"HF_HUB_OFFLINE": "1"})


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
