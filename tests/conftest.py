"""Shared test fixtures: offline hub, blocked network, tiny pipelines saved once per session."""

from __future__ import annotations

import faulthandler
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers import CliResult  # noqa: E402  (after the offline switches: hub clients read them at import)

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:  # type: ignore[override]
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1", "0.0.0.0") or self.family == socket.AF_UNIX):
        raise OSError(f"network blocked in tests (tried {address!r})")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


# A process forked from this one (Lightning's ddp_fork) and left hanging is asked for its threads' stacks before it is
# killed (see _fresh_distributed_state): they land in the failing test's captured stderr.
faulthandler.register(signal.SIGUSR1, all_threads=True)

_DISTRIBUTED_ENV = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_WORLD_SIZE")


@pytest.fixture(autouse=True)
def _fresh_distributed_state() -> Iterator[None]:
    """Each test starts without the parent-side rendezvous variables a DDP run leaves behind, and ends
    with no child process left.

    Lightning writes ``MASTER_PORT`` into this process's environment and every later DDP run reuses it;
    if one run's children outlive it (a failed or timed-out test), every later DDP test would fail on
    an address in use and the children would keep the pytest run from ever exiting.
    """
    import multiprocessing

    saved = {k: os.environ.get(k) for k in _DISTRIBUTED_ENV}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    import time

    left = multiprocessing.active_children()
    for child in left:  # a hang's evidence first: each child prints its stacks (SIGUSR1, faulthandler above)
        if child.pid is not None:
            os.kill(child.pid, signal.SIGUSR1)
    if left:
        time.sleep(1)
    for child in left:
        child.terminate()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join(5)


@pytest.fixture(scope="session")
def tiny_sd1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny SD-1 (epsilon, DDIM) pipeline folder."""
    from cadkit.testing import save_tiny_pipeline

    return save_tiny_pipeline("sd1", tmp_path_factory.mktemp("tiny_sd1") / "pipe")


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny SD-2 (v-prediction, Euler) pipeline folder."""
    from cadkit.testing import save_tiny_pipeline

    return save_tiny_pipeline("sd2", tmp_path_factory.mktemp("tiny_sd2") / "pipe")


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Iterator[object]:
    """Run ``cadkit ARGS`` in-process; returns a CliResult with exit code, stdout and stderr."""
    from cadkit.cli.main import cli

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = 0
        try:
            cli.main(args=[str(a) for a in args], prog_name="cadkit")
        except SystemExit as exc:
            code = int(exc.code or 0) if not isinstance(exc.code, str) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    yield run

