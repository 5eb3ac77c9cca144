"""Shared test fixtures: offline hub, blocked network, tiny pipelines saved once per session."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> None:  # type: ignore[override]
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and not (host.startswith("127.") or host in ("localhost", "::1", "0.0.0.0") or self.family == socket.AF_UNIX):
        raise OSError(f"network blocked in tests (tried {address!r})")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


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


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-800:]!r})"


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Iterator[object]:
    """Run ``cadkit ARGS`` in-process; returns a CliResult with exit code, stdout and stderr."""
    from cli.main import cli

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


def assert_one_line_error(res: CliResult, *needles: str, code: int = 2) -> None:
    """Exit ``code`` (2: a usage error; 1: a runtime failure), exactly one line on stderr (ignoring
    progress bars), no traceback, naming ``needles``."""
    assert res.code == code, res
    lines = [ln for ln in res.err.replace("\r", "\n").splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, res
    assert "Traceback" not in res.err, res
    for n in needles:
        assert n in lines[0], (n, lines[0])


sys.modules.setdefault("cadkit_test_helpers", sys.modules[__name__])
