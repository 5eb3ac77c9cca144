"""``cadkit tiny`` rejects bad input with one line on stderr and exit code 2; ``render`` writes files."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadkit.cli.main import cli


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(args=args, prog_name="cadkit")
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.mark.parametrize(
    ("args", "name", "given"),
    [
        (["tiny", "train", "--out", "{tmp}/run", "--steps", "0"], "--steps", "0"),
        (["tiny", "train", "--out", "{tmp}/run", "--steps", "-3"], "--steps", "-3"),
        (["tiny", "train", "--out", "{tmp}/run", "--batch-size", "0"], "--batch-size", "0"),
        (["tiny", "train", "--out", "{tmp}/afile/run"], "--out", "afile"),
        (["tiny", "evaluate", "--images-per-class", "0"], "--images-per-class", "0"),
        (["tiny", "evaluate", "--images-per-class", "-1"], "--images-per-class", "-1"),
        (["tiny", "render", "--out", "{tmp}/r", "--n", "0"], "--n", "0"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], name: str, given: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("not a folder")
    code, _, err = _run([a.replace("{tmp}", str(tmp_path)) for a in args], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and given in lines[0]
    assert not (tmp_path / "run").exists()


def test_render_writes_pngs_captions_and_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["tiny", "render", "--out", str(tmp_path / "r"), "--n", "6", "--seed", "2"], capsys)
    assert code == 0 and "grid.png" in out
    files = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert files == ["captions.json", "grid.png"] + [f"sample_{i:04d}.png" for i in range(6)]
