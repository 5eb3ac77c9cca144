"""Paraphrase prompts of the tiny world: they never name a concept, every word becomes one new token,
adding the words leaves every named prompt's tokens and text-encoder output unchanged bit for bit,
the word embeddings train without moving an existing row, and the shipped file is what the words need."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from cadkit.tiny.domain import COLOURS, OBJECTS, STYLES, TEMPLATES, caption, object_prompt, style_prompt
from cadkit.tiny.model import MAX_TOKENS
from cadkit.tiny.paraphrases import (
    OBJECT_PARAPHRASES,
    STYLE_PARAPHRASES,
    add_paraphrase_words,
    object_paraphrases,
    paraphrase_caption,
    paraphrase_words,
    style_paraphrases,
)

NAMES = set(OBJECTS) | set(STYLES) | set(COLOURS)


def _all_paraphrases() -> list[str]:
    return [p for o in OBJECT_PARAPHRASES for p in object_paraphrases(o)] + [p for s in STYLE_PARAPHRASES for p in style_paraphrases(s)]


def test_no_paraphrase_names_a_concept() -> None:
    for text in _all_paraphrases():
        words = set(re.findall(r"[a-z]+", text))
        assert not words & NAMES, (text, words & NAMES)
        # nor a plural or other word built on a name ("squares", "crossing")
        assert not [w for w in words for n in set(OBJECTS) | set(STYLES) if w != n and w.startswith(n)], text
    assert len(set(_all_paraphrases())) == len(_all_paraphrases())  # no description shared by two concepts


def _shipped_pipe() -> object:
    from cadkit.models import load_adapter

    return load_adapter("tiny").pipe


def _fake_rows(path: Path, width: int, seed: int = 0) -> torch.Tensor:
    from safetensors.torch import save_file

    words = paraphrase_words()
    rows = torch.randn(len(words), width, generator=torch.Generator().manual_seed(seed))
    save_file({"embeddings": rows}, str(path), metadata={"words": json.dumps(words)})
    return rows


def _named_prompts() -> list[str]:
    rng = np.random.default_rng(0)
    out = [object_prompt(o) for o in OBJECTS] + [style_prompt(s) for s in STYLES] + [""]
    out += [f"a {o} in {s} style" for o in OBJECTS for s in STYLES]
    out += [caption(TEMPLATES[int(rng.integers(len(TEMPLATES)))][0], str(rng.choice(OBJECTS)), str(rng.choice(STYLES)),
                    str(rng.choice(COLOURS))) for _ in range(200)]
    out += ["around a roundabout", "shapes of sidewalks"]  # text outside the vocabulary: byte-level BPE, never the new words
    return out


def test_adding_words_leaves_named_prompts_unchanged(tmp_path: Path) -> None:
    pipe = _shipped_pipe()
    tok, enc = pipe.tokenizer, pipe.text_encoder
    prompts = _named_prompts()
    before_ids = tok(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        before = enc(before_ids)[0]
    n_old = len(tok)
    rows = _fake_rows(tmp_path / "p.safetensors", enc.get_input_embeddings().weight.shape[1])
    assert add_paraphrase_words(pipe, tmp_path / "p.safetensors") == len(paraphrase_words())
    after_ids = tok(prompts, padding="max_length", max_length=MAX_TOKENS, truncation=True, return_tensors="pt").input_ids
    assert torch.equal(after_ids, before_ids)
    with torch.no_grad():
        assert torch.equal(enc(after_ids)[0], before)
    # each new word is one token, in order after the old vocabulary, with its row from the file
    for i, w in enumerate(paraphrase_words()):
        assert tok(w, add_special_tokens=False).input_ids == [n_old + i]
    assert torch.equal(enc.get_input_embeddings().weight[n_old:], rows.to(enc.dtype))
    assert add_paraphrase_words(pipe, tmp_path / "p.safetensors") == 0  # idempotent


def test_every_paraphrase_prompt_fits_the_tokenizer(tmp_path: Path) -> None:
    pipe = _shipped_pipe()
    _fake_rows(tmp_path / "p.safetensors", pipe.text_encoder.get_input_embeddings().weight.shape[1])
    add_paraphrase_words(pipe, tmp_path / "p.safetensors")
    rng = np.random.default_rng(1)
    grid = [f"{op} {sp}" for o in OBJECT_PARAPHRASES for op in object_paraphrases(o) for s in STYLE_PARAPHRASES for sp in STYLE_PARAPHRASES[s]]
    caps = [paraphrase_caption(rng, o, s) for o in OBJECT_PARAPHRASES for s in STYLES for _ in range(10)]
    known = set(pipe.tokenizer.get_vocab())
    for text in _all_paraphrases() + grid + caps:
        ids = pipe.tokenizer(text).input_ids
        assert len(ids) <= MAX_TOKENS, text
        assert all(w in known or w + "</w>" in known for w in text.split()), text  # every word is a whole token


def test_shipped_embeddings_match_the_words() -> None:
    from safetensors import safe_open

    from cadkit.tiny.paraphrases import paraphrases_path

    with safe_open(str(paraphrases_path()), framework="pt") as f:
        assert json.loads(f.metadata()["words"]) == paraphrase_words()
        rows = f.get_tensor("embeddings")
    assert rows.shape == (len(paraphrase_words()), 64) and torch.isfinite(rows).all()


def test_training_moves_only_the_new_rows(tmp_path: Path) -> None:
    from safetensors import safe_open

    from cadkit.tiny.paraphrases import train_paraphrase_words

    path = train_paraphrase_words(tmp_path / "run", steps=3, dataset_size=40)
    with safe_open(str(path), framework="pt") as f:
        rows = f.get_tensor("embeddings")
        assert json.loads(f.metadata()["words"]) == paraphrase_words()
    pipe = _shipped_pipe()
    old = pipe.text_encoder.get_input_embeddings().weight.detach().clone()
    # the training's own guard compared the old rows bit for bit; here: an independent reload gives the same old
    # rows plus the trained new ones, and the trained rows differ from a mean-of-table start
    add_paraphrase_words(pipe, path)
    table = pipe.text_encoder.get_input_embeddings().weight.detach()
    assert torch.equal(table[: len(old)], old)
    assert torch.equal(table[len(old):], rows)
    assert (rows - old.mean(0)).abs().max() > 0


def test_bad_embeddings_file_is_one_line(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from cadkit.errors import CadkitError

    pipe = _shipped_pipe()
    p = tmp_path / "bad.safetensors"
    save_file({"embeddings": torch.zeros(3, 64)}, str(p), metadata={"words": json.dumps(["one", "two"])})
    with pytest.raises(CadkitError, match="3 rows for 2 words"):
        add_paraphrase_words(pipe, p)
    with pytest.raises(CadkitError, match="not found"):
        add_paraphrase_words(pipe, tmp_path / "missing.safetensors")


def test_tiny_evaluate_paraphrases_cli(run_cli: object, tmp_path: Path) -> None:
    from tests.helpers import assert_one_line_error

    res = run_cli("tiny", "evaluate", "--images-per-class", "1", "--steps", "1", "--prompt-set", "paraphrases")  # type: ignore[operator]
    assert res.code == 0, res
    lines = res.out.splitlines()
    assert "paraphrase prompts" in lines[0]
    assert [ln.split()[1] for ln in lines if ln.startswith("object ")] == list(OBJECT_PARAPHRASES)
    assert [ln.split()[1] for ln in lines if ln.startswith("style ")] == list(STYLE_PARAPHRASES)
    missing = tmp_path / "missing.safetensors"
    assert_one_line_error(run_cli("tiny", "evaluate", "--paraphrases", missing), "--paraphrases")  # type: ignore[operator]
    assert_one_line_error(run_cli("tiny", "evaluate", "--prompt-set", "paraphrases", "--paraphrases", missing),  # type: ignore[operator]
                          "--paraphrases")


def test_train_paraphrases_refuses_another_commands_run(run_cli: object, tmp_path: Path) -> None:
    """A `tiny train` run folder (its config.json, cached latents) is not overwritten by train-paraphrases, and a
    paraphrase run is not taken over by `tiny finetune`: one line, exit 2, every file as it was."""
    from cadkit.tiny.model import get_config
    from tests.helpers import assert_one_line_error, tree_state

    run = tmp_path / "train_run"
    (run / "cache").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(get_config("default").to_dict()))
    (run / "cache" / "latents.safetensors").write_bytes(b"the user's latents")
    before = tree_state(tmp_path)
    assert_one_line_error(run_cli("tiny", "train-paraphrases", "--out", run), "--out", "tiny train-paraphrases")  # type: ignore[operator]
    assert tree_state(tmp_path) == before
    para = tmp_path / "para_run"
    para.mkdir()
    cfg = get_config("default").to_dict()
    cfg["preset"] = "paraphrases"
    (para / "config.json").write_text(json.dumps(cfg))
    before = tree_state(tmp_path)
    assert_one_line_error(run_cli("tiny", "finetune", "--out", para), "--out", "tiny finetune")  # type: ignore[operator]
    assert tree_state(tmp_path) == before
