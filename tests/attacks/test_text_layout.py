"""Text side and layouts: encoding from embeddings equals the pipelines' own encoding; slot geometry."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from cadkit.attacks.layout import interleave_layout, prefix_layout, replace_layout
from cadkit.attacks.optimizers import NearestToken, SoftOneHot
from cadkit.attacks.options import AttackOptions
from cadkit.attacks.runner import allowed_ids_of
from cadkit.attacks.token_embeddings import TextSide
from cadkit.errors import CadkitError

PROMPT = "an image of a church"


@pytest.fixture(scope="module")
def adapters() -> dict[str, Any]:
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    out = {}
    for fam in ("sd1", "sd2", "sdxl", "sd3", "flux"):
        pipe = build_tiny_pipeline(fam)
        for m in pipe.components.values():  # config-built modules start in training mode (T5 dropout)
            if isinstance(m, torch.nn.Module):
                m.eval()
        out[fam] = adapter_from_pipeline(pipe)
    return out


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl", "sd3", "flux"])
def test_encode_from_embeddings_equals_adapter_encode(adapters: dict[str, Any], family: str) -> None:
    ad = adapters[family]
    text = TextSide(ad)
    for prompt in (PROMPT, "", "a naked person with a dog in the style of painting by the church"):
        ref = ad.encode([prompt])
        got = text.encode_prompt(prompt)
        assert torch.equal(got.embeds, ref.embeds)
        assert (got.pooled is None) == (ref.pooled is None)
        if ref.pooled is not None:
            assert torch.equal(got.pooled, ref.pooled)
        assert sorted(got.added) == sorted(ref.added)
        assert all(torch.equal(got.added[k], ref.added[k]) for k in ref.added)


def test_sdxl_one_soft_one_hot_drives_both_tables(adapters: dict[str, Any]) -> None:
    text = TextSide(adapters["sdxl"])
    assert len(text.streams) == 2 and text.tables[0].shape[1] != text.tables[1].shape[1]
    layout = prefix_layout(text, PROMPT, 3)
    opt = SoftOneHot(text, layout, allowed_ids_of(text, AttackOptions()))
    cond, leaves = opt.condition(torch.Generator().manual_seed(0))
    (cond.embeds.sum() + cond.pooled.sum()).backward()
    assert leaves[0].grad is not None and bool((leaves[0].grad != 0).any())
    # the one-hot forward equals the plain encoding of the sampled ids, on both encoders and the pooled output
    ref = text.encode(layout.with_tokens(opt.last_sampled))
    assert torch.equal(cond.embeds, ref.embeds) and torch.equal(cond.pooled, ref.pooled)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_prefix_layout_geometry(adapters: dict[str, Any], family: str) -> None:
    text = TextSide(adapters[family])
    plain = text.prompt_ids(PROMPT)[0]
    n = len(text.content_ids(PROMPT))
    for k in (1, 3, 5):
        lay = prefix_layout(text, PROMPT, k)
        assert lay.ids.shape == (len(text.streams), text.max_length)
        assert lay.slots.tolist() == list(range(1, k + 1))
        assert torch.equal(lay.ids[0, 1 + k : 1 + k + n], plain[1 : 1 + n])  # content shifted by exactly k
        assert int(lay.ids[0, 0]) == text.bos_id and int(lay.ids[0, 1 + k + n]) == text.eos_id
        assert lay.content_positions.tolist() == list(range(1 + k, 1 + k + n))
    long = " ".join(["church"] * 30)
    lay = prefix_layout(text, long, 5)
    assert lay.truncated == 30 - (text.max_length - 7) and int(lay.ids[0, -1]) == text.eos_id
    with pytest.raises(ValueError, match="k"):
        prefix_layout(text, PROMPT, text.max_length)


def test_interleave_layout_p4d_k(adapters: dict[str, Any]) -> None:
    text = TextSide(adapters["sd1"])
    for prompt in ("church", "a church", PROMPT, "a photo of a dog in the church"):
        content = text.content_ids(prompt)
        n = len(content)
        lay = interleave_layout(text, prompt, every_k=3)
        assert lay.num_slots == n // 3 + 1
        assert [p - 1 for p in lay.slots.tolist()] == [4 * j for j in range(n // 3 + 1)]
        assert lay.ids[0, lay.content_positions].tolist() == content
        assert int(lay.ids[0, 1 + n + lay.num_slots]) == text.eos_id and lay.ids.shape[1] == text.max_length
    rep = replace_layout(text, 4)
    assert rep.slots.tolist() == [1, 2, 3, 4] and int(rep.ids[0, 5]) == text.eos_id


def test_decode_retokenize_round_trip_on_whole_words(adapters: dict[str, Any]) -> None:
    text = TextSide(adapters["sd1"])
    words = text.roundtrip_mask().nonzero().view(-1)
    lay = prefix_layout(text, PROMPT, 3)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        slot = words[torch.randint(len(words), (3,), generator=g)]
        ids = lay.with_tokens(slot)[0]
        assert torch.equal(text.prompt_ids(lay.text(text, slot))[0], ids)


@pytest.mark.parametrize("mask_special", [True, False])
def test_optimised_ids_are_valid(adapters: dict[str, Any], mask_special: bool) -> None:
    text = TextSide(adapters["sd1"])
    options = AttackOptions(mask_special=mask_special)
    allowed = allowed_ids_of(text, options)
    lay = prefix_layout(text, PROMPT, 5)
    gen = torch.Generator().manual_seed(0)
    soft = SoftOneHot(text, lay, allowed)
    hard = NearestToken(text, lay, allowed, torch.tensor([text.bos_id, text.eos_id, 1, 2, 3]))
    for _ in range(4):
        for opt in (soft, hard):
            cond, leaves = opt.condition(gen)
            grads = torch.autograd.grad(cond.embeds.pow(2).sum(), leaves)
            opt.apply_grads(grads)
            ids = opt.slot_ids()
            assert bool((ids >= 0).all()) and bool((ids < text.vocab_size).all())
            if mask_special:
                assert not set(ids.tolist()) & set(text.special_ids)
        assert bool((soft.P.detach()[:, ~allowed] == 0).all())
        assert torch.allclose(soft.P.detach().sum(-1), torch.ones(5), atol=1e-5)


def test_unsupported_family_is_one_line_error(adapters: dict[str, Any]) -> None:
    class Other:
        family = "kandinsky"
        pipe = adapters["sd1"].pipe

    with pytest.raises(CadkitError, match="kandinsky"):
        TextSide(Other())
