"""Fine-tuning a trained ``tiny`` pipeline on the long-tail domain: the grown text encoder, the run, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cadkit.errors import CadkitError
from cadkit.tiny.domain import RARE_OBJECTS, domain_words
from cadkit.tiny.finetune import finetune_config, finetune_tiny, grow_text_encoder
from cadkit.tiny.model import build_text_encoder, get_config, write_tokenizer


def _weights(folder: Path, part: str, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / part / name))


def test_grown_text_encoder_keeps_the_old_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An encoder for the domain's tokenizer without the rare words (as the first shipped model had),
    grown to the domain's tokenizer, encodes every prompt of old words exactly as before (token ids
    differ between the two tokenizers)."""
    from transformers import CLIPTokenizer

    import cadkit.tiny.model as model_mod

    cfg = get_config("test")
    old_words = [w for w in domain_words() if w not in RARE_OBJECTS]
    with monkeypatch.context() as m:
        m.setattr(model_mod, "domain_words", lambda: list(old_words))
        old_tok = CLIPTokenizer.from_pretrained(str(write_tokenizer(tmp_path / "old")))
    assert all(len(old_tok(w).input_ids) == 3 for w in old_words) and len(old_tok("moon").input_ids) > 3
    new_tok = CLIPTokenizer.from_pretrained(str(write_tokenizer(tmp_path / "new")))
    torch.manual_seed(5)
    old = build_text_encoder(cfg, old_tok).eval()
    grown, counts = grow_text_encoder(old, old_tok, new_tok, cfg, seed=1)
    grown.eval()
    shared = set(old_tok.get_vocab()) & set(new_tok.get_vocab())
    assert counts == {"copied": len(shared), "new": len(new_tok) - len(shared)} and counts["new"] > 0
    assert all(len(new_tok(w).input_ids) == 3 for w in RARE_OBJECTS)
    for prompt in ("an image of a star", "a red heart in striped style", ""):
        a, b = old_tok([prompt], padding="max_length", max_length=16, return_tensors="pt"), new_tok([prompt], padding="max_length", max_length=16, return_tensors="pt")
        assert not torch.equal(a.input_ids, b.input_ids) or prompt == ""
        with torch.no_grad():
            assert torch.allclose(old(a.input_ids)[0], grown(b.input_ids)[0], atol=1e-6)
    # a rare word has its own (fresh) row, not a copy of another word's
    emb = grown.get_input_embeddings().weight
    moon = new_tok("moon").input_ids[1]
    assert not any(torch.equal(emb[moon], emb[new_tok(w).input_ids[1]]) for w in ("star", "circle", "a"))


def test_grow_refuses_another_architecture(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(str(write_tokenizer(tmp_path / "tok")))
    other = build_text_encoder(get_config("default"), tok)  # 2 layers of 64 vs the test preset's 1 of 32
    with pytest.raises(CadkitError, match="architecture"):
        grow_text_encoder(other, tok, tok, get_config("test"), seed=0)
    wider = get_config("test")
    wider.text_hidden = 48  # same parameter names, other shapes
    with pytest.raises(CadkitError, match="architecture: .* has shape"):
        grow_text_encoder(build_text_encoder(wider, tok), tok, tok, get_config("test"), seed=0)


def test_finetune_runs_snapshots_and_resumes(tmp_path: Path) -> None:
    from cadkit.models import adapter_from_pipeline, load_pipeline
    from cadkit.tiny.train import train_tiny

    cfg = get_config("test")
    base = train_tiny(tmp_path / "base", cfg)
    ft = get_config("test")
    ft.steps = 2
    out = tmp_path / "ft"
    pipe = finetune_tiny(out, ft, base=base, snapshot_every=1)
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_00001", "step_00002"]
    assert json.loads((out / "train_summary.json").read_text())["global_step"] == 2
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["steps"] == 2 and recorded["extra"]["base"] == str(base)
    # the VAE is the base's, untouched; the UNet moved away from the base
    vae_name, unet_name = "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors"
    a, b = _weights(base, "vae", vae_name), _weights(pipe, "vae", vae_name)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    u0, u1 = _weights(base, "unet", unet_name), _weights(pipe, "unet", unet_name)
    assert any(not torch.equal(u0[k], u1[k]) for k in u0)
    adapter = adapter_from_pipeline(load_pipeline(str(pipe)))
    res = adapter.sample(["an image of a moon", "an image of a circle"], [0, 1], steps=2, guidance=3.0)
    assert res.images is not None and res.images.shape == (2, 3, 32, 32)
    # resuming with more steps continues from the last checkpoint
    more = get_config("test")
    more.steps = 3
    finetune_tiny(out, more, base=base, resume=True)
    assert json.loads((out / "train_summary.json").read_text())["global_step"] == 3


def test_finetune_config_and_arguments(tmp_path: Path) -> None:
    cfg = finetune_config(steps=7, seed=3)
    default = get_config("default")
    assert (cfg.steps, cfg.seed, cfg.preset) == (7, 3, "finetune")
    assert (cfg.unet_channels, cfg.text_hidden, cfg.vae_channels) == (default.unet_channels, default.text_hidden, default.vae_channels)
    bad = get_config("test")
    bad.steps = 0
    with pytest.raises(CadkitError, match="steps"):
        finetune_tiny(tmp_path / "x", bad, base=tmp_path)
    with pytest.raises(CadkitError, match="base"):
        finetune_tiny(tmp_path / "x", get_config("test"), base=tmp_path / "missing")
