"""Data loss (issue 13, class 1): an output is never an input, and cadkit replaces only what it wrote.

Every writer is tried on the outputs a careless user gives it -- the model's folder, the input file,
another file of another kind, a folder of the user's -- and must refuse with one line (exit 2) and
leave the file system exactly as it was; an earlier output of the same command is replaced as a whole.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cadkit.attribution.scores import save_scores
from cadkit.editing.edits import make_edit, save_edit
from tests.helpers import assert_one_line_error, make_scores, tree_state


@pytest.fixture(scope="module")
def files(tiny_sd1: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A score file, another score file, an edit file and a copy of the model (safe to aim outputs at)."""
    from cadkit.models import load_adapter

    root = tmp_path_factory.mktemp("outputs")
    adapter = load_adapter(str(tiny_sd1), device="cpu")
    meta = {"model": {**adapter.model_info(), "spec": str(tiny_sd1)}}
    save_scores(root / "s.safetensors", make_scores(adapter.denoiser, 1), meta)
    save_scores(root / "other.safetensors", make_scores(adapter.denoiser, 2), meta)
    save_edit(root / "e.safetensors", make_edit(make_scores(adapter.denoiser, 1), {}, "erase", 0.05, "row", "ff", model=adapter))
    shutil.copytree(tiny_sd1, root / "model")
    return {"root": root, "scores": root / "s.safetensors", "other": root / "other.safetensors", "edit": root / "e.safetensors",
            "model": root / "model"}


def _user_folder(root: Path) -> Path:
    """A folder of the user's: a file cadkit did not write (named like one it would write, too)."""
    d = root / "mine"
    d.mkdir(exist_ok=True)
    (d / "notes.txt").write_text("mine")
    (d / "00000_00.png").write_bytes(b"my own picture")
    return d


CASES: list[tuple[str, list[str], list[str]]] = [
    # (name, arguments with {placeholders}, what the one line names)
    ("export onto the model", ["export", "--model", "{model}", "--edit", "{edit}", "--out", "{model}"], ["--out", "model"]),
    ("export inside the model", ["export", "--model", "{model}", "--edit", "{edit}", "--out", "{model}/unet"], ["--out", "model"]),
    ("export into a user folder", ["export", "--model", "{model}", "--edit", "{edit}", "--out", "{mine}"], ["--out", "did not write"]),
    ("edit onto its score file", ["edit", "--scores", "{scores}", "--mode", "erase", "--out", "{scores}"], ["--out", "scores"]),
    ("edit onto another score file", ["edit", "--scores", "{scores}", "--mode", "erase", "--out", "{other}"], ["--out", "cadkit-edit"]),
    ("edit onto a user file", ["edit", "--scores", "{scores}", "--mode", "erase", "--out", "{mine}/notes.txt"], ["--out", "cadkit-edit"]),
    ("attribute onto an edit file", ["attribute", "--model", "{model}", "--concept", "x", "--out", "{edit}"], ["--out", "cadkit-scores"]),
    ("plot onto the score file", ["scores", "show", "{scores}", "--plot", "{scores}"], ["--plot"]),
    ("plot onto a user file", ["scores", "show", "{scores}", "--plot", "{mine}/notes.txt"], ["--plot", "PNG"]),
    ("generate into a user folder", ["generate", "--model", "{model}", "--prompt", "x", "--out", "{mine}"], ["--out", "did not write"]),
    ("generate inside the model", ["generate", "--model", "{model}", "--prompt", "x", "--out", "{model}/samples"], ["--out", "model"]),
    ("verify into a user folder", ["verify", "--model", "{model}", "--concept", "x", "--out", "{mine}"], ["--out", "did not write"]),
    ("bench into the model", ["bench", "erase-objects", "--model", "{model}", "--judge", "tiny", "--out", "{model}"], ["--out", "model"]),
    ("bench cache in the model", ["bench", "erase-objects", "--model", "{model}", "--judge", "tiny", "--out", "{root}/run",
                                  "--cache", "{model}/cache"], ["--cache", "model"]),
    ("bench into a user folder", ["bench", "erase-objects", "--model", "{model}", "--judge", "tiny", "--out", "{mine}"], ["--out", "not empty"]),
    ("render into a user folder", ["tiny", "render", "--out", "{mine}", "--n", "2"], ["--out", "did not write"]),
    ("evaluate into a user folder", ["tiny", "evaluate", "--model", "{model}", "--images-per-class", "1", "--out", "{mine}"],
     ["--out", "did not write"]),
    ("train into a user folder", ["tiny", "train", "--config", "test", "--out", "{mine}"], ["--out", "not a tiny training run"]),
    ("train into the package", ["tiny", "train", "--config", "test", "--out", "{package}/runs"], ["--out", "package"]),
    ("judge onto a user file", ["tiny", "train-judge", "--n-train", "1", "--out", "{mine}/notes.txt"], ["--out", "judge"]),
    ("judge onto a score file", ["tiny", "train-judge", "--n-train", "1", "--out", "{scores}"], ["--out", "judge"]),
]


@pytest.mark.parametrize("name,args,needles", CASES, ids=[c[0] for c in CASES])
def test_outputs_never_replace_inputs_or_foreign_files(name: str, args: list[str], needles: list[str], files: dict[str, Path],
                                                       run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit

    root = files["root"]
    mine = _user_folder(root)
    package = Path(cadkit.__file__).parent
    values = {k: str(v) for k, v in files.items()} | {"mine": str(mine), "package": str(package)}
    monkeypatch.chdir(root)
    before, pkg_before = tree_state(root), tree_state(package / "tiny")
    res = run_cli(*[a.format(**values) for a in args])
    assert_one_line_error(res, *needles)
    assert tree_state(root) == before, "the file system changed"
    assert tree_state(package / "tiny") == pkg_before


def test_export_replaces_only_its_own_folder(files: dict[str, Path], tmp_path: Path, run_cli: Any) -> None:
    """An earlier export is replaced as a whole; one holding a file cadkit did not write is refused."""
    out = tmp_path / "exported"
    args = ["export", "--model", files["model"], "--edit", files["edit"], "--device", "cpu", "--out", out]
    assert run_cli(*args).code == 0
    listed = json.loads((out / "cadkit_export.json").read_text())["files"]
    assert sorted(listed) == sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "cadkit_export.json")
    assert run_cli(*args).code == 0  # its own earlier output: replaced
    (out / "unet" / "my_notes.txt").write_text("keep me")
    before = tree_state(out)
    assert_one_line_error(run_cli(*args), "--out", "unet/my_notes.txt")
    assert tree_state(out) == before


def test_generate_replaces_its_earlier_output_as_a_whole(tiny_sd1: Path, tmp_path: Path, run_cli: Any) -> None:
    out = tmp_path / "g"
    base = ["generate", "--model", tiny_sd1, "--prompt", "x", "--steps", "1", "--out", out]
    assert run_cli(*base, "-n", "3").code == 0
    assert run_cli(*base, "-n", "1").code == 0  # fewer images: no stale ones from the first run remain
    assert sorted(p.name for p in out.iterdir()) == ["00000_00.png", "generate.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # no temporary folder left beside it


def test_files_get_the_umask_permissions(tmp_path: Path, files: dict[str, Path], run_cli: Any) -> None:
    """Class 8: written through the temporary-then-rename path, files and folders get what a plain
    open/mkdir would give under the umask (not mkstemp's 0600 / mkdtemp's 0700), including the files a
    library writes into a temporary folder through mkstemp (issue 21: export's three weight files were 0600)."""
    import os
    import tempfile

    from cadkit.outputs import atomic_dir, atomic_path, write_json

    old = os.umask(0o027)
    try:
        write_json(tmp_path / "a.json", {"x": 1})
        with atomic_path(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"b")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "sub").mkdir()
            (tmp / "sub" / "f").write_text("f")
            fd, name = tempfile.mkstemp(dir=tmp / "sub")  # as safetensors/diffusers write weights: 0600
            os.close(fd)
            os.replace(name, tmp / "sub" / "w.safetensors")
        plain = tmp_path / "plain"
        plain.write_text("p")
        plain_dir = tmp_path / "plain_dir"
        plain_dir.mkdir()
    finally:
        os.umask(old)
    mode = lambda p: oct(p.stat().st_mode & 0o777)  # noqa: E731
    assert mode(tmp_path / "a.json") == mode(tmp_path / "b.bin") == mode(plain) == oct(0o640)
    assert mode(tmp_path / "d" / "sub" / "f") == mode(tmp_path / "d" / "sub" / "w.safetensors") == oct(0o640)
    assert mode(tmp_path / "d") == mode(tmp_path / "d" / "sub") == mode(plain_dir) == oct(0o750)
    # every file and folder `cadkit export` writes, under the usual umask 022
    out = tmp_path / "exported"
    old = os.umask(0o022)
    try:
        res = run_cli("export", "--model", files["model"], "--edit", files["edit"], "--device", "cpu", "--out", out)
    finally:
        os.umask(old)
    assert res.code == 0, res
    written = {str(p.relative_to(out)): mode(p) for p in out.rglob("*")}
    weights = ("unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors")
    assert all(w in written for w in weights), sorted(written)
    assert {p: m for p, m in written.items() if (out / p).is_file()} == {p: oct(0o644) for p in written if (out / p).is_file()}
    assert {p: m for p, m in written.items() if (out / p).is_dir()} == {p: oct(0o755) for p in written if (out / p).is_dir()}
    assert mode(out) == oct(0o755)
