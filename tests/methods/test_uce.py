"""UCE on config-built tiny pipelines: normal equations with hand-built keys, fixed point, locality, edit-file
round trip, the token rule with the tiny CLIP tokenizer, and the SD-XL and FLUX twins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from cadkit.editing.edits import apply_edit, load_edit, save_edit
from cadkit.errors import BadArgument
from cadkit.methods import run_method
from cadkit.methods.closed_form import Ridge, normal_equation_residual
from cadkit.methods.text_keys import encode_keys, last_token_index, pair_keys
from tests.helpers import assert_unchanged, snapshot, tiny_adapter

D = torch.float64


def test_token_rule_tiny_clip(sd1: Any) -> None:
    tok = sd1.pipe.tokenizer
    assert last_token_index(tok, ["", "church", " ", "a church"]) == [0, 1, 0, 2]
    er, gd = encode_keys(sd1, ["church", " "])
    k, g = pair_keys(er, gd, "tokens", "legacy")
    length = tok.model_max_length
    assert k.shape[0] == g.shape[0] == length - max(1, 0)
    assert torch.equal(k, er.tokens[1:]) and torch.equal(g, gd.tokens[: length - 1])
    er2, gd2 = encode_keys(sd1, ["a church", "church"])
    k2, g2 = pair_keys(er2, gd2, "tokens", "legacy")
    assert k2.shape[0] == g2.shape[0] == length - 2
    assert torch.equal(k2, er2.tokens[2:]) and torch.equal(g2, gd2.tokens[1 : length - 1])
    k3, g3 = pair_keys(er, gd, "tokens", "last")
    assert torch.equal(k3, er.tokens[1:2]) and torch.equal(g3, gd.tokens[0:1])


def test_normal_equations_with_hand_built_keys(sd1_64: Any) -> None:
    a = sd1_64
    snap = snapshot(a.denoiser)
    te = snapshot(a.pipe.text_encoder)
    res = run_method("uce", a, "church", "object")
    assert_unchanged(a.denoiser, snap)  # the method leaves the model as it found it
    assert res.record["concept_text"] == "Church" and res.record["texts"]["guide"] == " "
    assert res.record["texts"]["preserve"] == [""] and res.record["diagnostics"]["preserve_scale"] == 1.0
    emb = a.encode(["church", " ", ""]).embeds  # [3, L, n]
    length = emb.shape[1]
    keys, guide, empty = emb[0, 1:], emb[1, : length - 1], emb[2]  # legacy: e = 1, g = 0; preserve "" all positions
    params = dict(a.denoiser.named_parameters())
    assert set(res.edit.dense) == {n for n in params if n.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))}
    for n, new in res.edit.dense.items():
        w = params[n].detach()
        r = normal_equation_residual(new, w, keys, guide @ w.T, empty, None, Ridge(0.5))
        assert r < 1e-10, (n, r)
    with apply_edit(a, res.edit):  # locality: only the listed matrices change; the text encoder is untouched
        for n, p in a.denoiser.named_parameters():
            assert torch.equal(p.detach(), res.edit.dense[n]) if n in res.edit.dense else torch.equal(p.detach(), snap[n]), n
        assert_unchanged(a.pipe.text_encoder, te)
    assert_unchanged(a.denoiser, snap)


def test_guide_equal_to_concept_is_a_fixed_point(sd1_64: Any) -> None:
    res = run_method("uce", sd1_64, "church", "object", {"guide": "Church", "tokens": "all"})
    params = dict(sd1_64.denoiser.named_parameters())
    for n, new in res.edit.dense.items():
        assert torch.allclose(new, params[n].detach(), atol=1e-10, rtol=0), n


def test_lambda_limit_maps_keys_to_targets(sd1_64: Any) -> None:
    res = run_method("uce", sd1_64, "church", "object", {"tokens": "last", "lam": 1e-8, "retain_empty": False})
    er, gd = encode_keys(sd1_64, ["Church", " "])
    k, g = er.tokens[1:2], gd.tokens[0:1]
    params = dict(sd1_64.denoiser.named_parameters())
    for n, new in res.edit.dense.items():
        v = g @ params[n].detach().T
        assert float(torch.linalg.norm(k @ new.T - v) / torch.linalg.norm(v)) < 1e-4, n


def test_edit_file_round_trip(sd1: Any, tmp_path: Path) -> None:
    res = run_method("uce", sd1, "church", "object")
    path = save_edit(tmp_path / "uce.safetensors", res.edit)
    back = load_edit(path)
    assert back.method == "uce" and back.config["options"]["lam"] == 0.5 and back.config["seed"] == 0
    assert back.config["concept_text"] == "Church" and "versions" in back.config
    snap = snapshot(sd1.denoiser)
    with apply_edit(sd1, back):
        for n, v in res.edit.dense.items():
            assert torch.equal(dict(sd1.denoiser.named_parameters())[n].detach(), v)
    assert_unchanged(sd1.denoiser, snap)
    touched = sum(v.numel() * v.element_size() for v in res.edit.dense.values())
    assert path.stat().st_size < touched + 64 * 1024


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_twins(family: str) -> None:
    a = tiny_adapter(family, D)
    snap = snapshot(a.denoiser)
    res = run_method("uce", a, "church", "object")
    assert_unchanged(a.denoiser, snap)
    params = dict(a.denoiser.named_parameters())
    cond = a.encode(["Church", " "])
    if family == "sdxl":
        assert res.record["options"]["tokens"] == "legacy"
        emb, empty = cond.embeds, a.encode([""]).embeds[0]
        assert emb.shape[-1] == 80  # both encoders' embeddings concatenated
        length = emb.shape[1]
        spaces = {"tokens": (emb[0, 1:], emb[1, : length - 1], empty)}
        names = {n: "tokens" for n in params if n.endswith(("attn2.to_k.weight", "attn2.to_v.weight"))}
    else:
        assert res.record["options"]["tokens"] == "last"
        t5 = a.pipe.tokenizer_2
        idx = last_token_index(t5, ["Church", " "], cond.embeds.shape[1], floor_zero=True)
        assert idx[1] == 0  # "" / " ": position 0 (the reference picks the last padding position)
        empty = cond.embeds[0, :0]
        spaces = {"tokens": (cond.embeds[0, idx[0] : idx[0] + 1], cond.embeds[1, 0:1], empty),
                  "pooled": (cond.pooled[0:1], cond.pooled[1:2], cond.pooled[0, None][:0])}
        names = {"context_embedder.weight": "tokens", "time_text_embed.text_embedder.linear_1.weight": "pooled"}
    assert set(res.edit.dense) == set(names)
    for n, space in names.items():
        k, g, pres = spaces[space]
        w = params[n].detach()
        s_p = res.record["diagnostics"]["preserve_scale"]
        assert normal_equation_residual(res.edit.dense[n], w, k, g @ w.T, pres, None, Ridge(0.5, 1.0, s_p)) < 1e-10, n


def test_sdxl_pooled_columns() -> None:
    a = tiny_adapter("sdxl", D)
    res = run_method("uce", a, "church", "object", {"pooled": True})
    name = "add_embedding.linear_1.weight"
    w = dict(a.denoiser.named_parameters())[name].detach()
    width = a.pipe.text_encoder_2.config.projection_dim
    new = res.edit.dense[name]
    assert torch.equal(new[:, width:], w[:, width:])  # the time-id columns are untouched
    cond = a.encode(["Church", " ", ""])
    k, g, pres = cond.pooled[0:1], cond.pooled[1:2], cond.pooled[2:3]
    blk = w[:, :width]
    assert normal_equation_residual(new[:, :width], blk, k, g @ blk.T, pres, None, Ridge(0.5)) < 1e-10
    with pytest.raises(BadArgument, match="^pooled: "):
        run_method("uce", tiny_adapter("flux"), "church", "object", {"pooled": True})


def test_bad_options_name_python_parameters(sd1: Any) -> None:
    with pytest.raises(BadArgument, match="^lam: "):
        run_method("uce", sd1, "church", "object", {"lam": float("nan")})
    with pytest.raises(BadArgument, match="^tokens: "):
        run_method("uce", sd1, "church", "object", {"tokens": "first"})
    with pytest.raises(BadArgument, match="^options: "):
        run_method("uce", sd1, "church", "object", {"lambda": 0.5})
