"""Dense edits (whole-tensor replacements): apply/remove bit-exact, composition with sparse edits in any
order, wrong-model refusal, file size, file round trip, content hash, the ConceptEditing callback and export."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch

from cadkit.editing.callback import ConceptEditing
from cadkit.editing.edits import Edit, apply_edit, apply_edits, load_edit, make_edit, save_edit
from cadkit.errors import CadkitError
from cadkit.methods.base import make_method_edit
from cadkit.models import adapter_from_pipeline
from tests.helpers import assert_same, make_scores, snapshot

DENSE_NAMES = ("attn2.to_k.weight", "attn2.to_v.weight")


@pytest.fixture(scope="module")
def adapter(tiny_pipe: Any) -> Any:
    return adapter_from_pipeline(tiny_pipe)


def _dense_values(adapter: Any, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(p.shape, generator=g) for n, p in adapter.denoiser.named_parameters() if n.endswith(DENSE_NAMES)}


def _dense_edit(adapter: Any, seed: int = 0) -> Edit:
    return make_method_edit(adapter, "test", {"seed": seed}, {}, _dense_values(adapter, seed))


def _sparse_edit(adapter: Any, seed: int = 3) -> Edit:
    # attn2 included, so sparse and dense parts overlap on the same parameters
    return make_edit(make_scores(adapter.denoiser, seed), {}, "erase", "10%", "row", "attn2,ff", model=adapter)


def _expected(snap: dict[str, torch.Tensor], edits: list[Edit]) -> dict[str, torch.Tensor]:
    """Reference: apply each edit to cloned tensors by hand (dense replaces, sparse zeroes)."""
    out = {n: t.clone() for n, t in snap.items()}
    for e in edits:
        for n, v in e.dense.items():
            out[n] = v.clone().to(out[n].dtype)
        for n, i in e.indices.items():
            out[n].view(-1)[i] = 0.0
    return out


def _assert_state(module: torch.nn.Module, want: dict[str, torch.Tensor]) -> None:
    for n, p in module.named_parameters():
        assert torch.equal(p.detach(), want[n]), n


def test_apply_remove_bit_exact(adapter: Any) -> None:
    unet = adapter.denoiser
    snap = snapshot(unet)
    e = _dense_edit(adapter)
    assert set(e.dense) and not e.indices and e.num_selected() == sum(v.numel() for v in e.dense.values())
    h = apply_edit(adapter, e)
    _assert_state(unet, _expected(snap, [e]))
    assert h.num_edited() == {n: v.numel() for n, v in e.dense.items()}
    h.remove()
    assert_same(unet, snap)
    h.remove()  # idempotent
    assert_same(unet, snap)


@pytest.mark.parametrize("order", ["dense-first", "sparse-first"])
@pytest.mark.parametrize("removal", ["reverse", "forward"])
def test_composition_with_sparse(adapter: Any, order: str, removal: str) -> None:
    unet = adapter.denoiser
    snap = snapshot(unet)
    dense, sparse = _dense_edit(adapter, 1), _sparse_edit(adapter)
    assert set(dense.dense) & set(sparse.indices)  # they overlap
    edits = [dense, sparse] if order == "dense-first" else [sparse, dense]
    h1 = apply_edit(unet, edits[0])
    state1 = snapshot(unet)
    _assert_state(unet, _expected(snap, edits[:1]))
    h2 = apply_edit(unet, edits[1])  # the second checks against the pristine values: accepted
    _assert_state(unet, _expected(snap, edits))
    if removal == "reverse":
        h2.remove()
        assert_same(unet, state1)  # each intermediate state exact
        h1.remove()
    else:
        h1.remove()
        h2.remove()
    assert_same(unet, snap)


def test_two_dense_and_a_group(adapter: Any) -> None:
    unet = adapter.denoiser
    snap = snapshot(unet)
    a, b, s = _dense_edit(adapter, 4), _dense_edit(adapter, 5), _sparse_edit(adapter, 6)
    group = apply_edits(unet, [a, s, b])
    _assert_state(unet, _expected(snap, [a, s, b]))
    group.remove()
    assert_same(unet, snap)
    h_s = apply_edit(unet, s)  # removing out of order in a chain of three
    h_a = apply_edit(unet, a)
    h_b = apply_edit(unet, b)
    h_a.remove()
    h_s.remove()
    _assert_state(unet, _expected(snap, [b]))
    h_b.remove()
    assert_same(unet, snap)


def test_wrong_model_one_line(adapter: Any) -> None:
    from cadkit.testing import build_tiny_pipeline

    e = _dense_edit(adapter)
    other = build_tiny_pipeline("sd1", seed=1).unet  # same parameter set, other weights
    snap = snapshot(other)
    with pytest.raises(CadkitError) as err:
        apply_edit(other, e)
    assert "differ from the model the edit was made for" in str(err.value) and "\n" not in str(err.value)
    assert_same(other, snap)  # nothing changed
    # an edit with a sparse and a dense part: applies as one; on the wrong model the dense check fails first
    ff_only = {n: i for n, i in _sparse_edit(adapter).indices.items() if n not in e.dense}
    mixed = make_method_edit(adapter, "test", {}, ff_only, _dense_values(adapter))
    snap_a = snapshot(adapter.denoiser)
    with apply_edit(adapter.denoiser, mixed):
        _assert_state(adapter.denoiser, _expected(snap_a, [mixed]))
    assert_same(adapter.denoiser, snap_a)
    with pytest.raises(CadkitError, match="differ"):
        apply_edit(other, mixed)
    assert_same(other, snap)
    with pytest.raises(CadkitError, match="another model") as err2:
        apply_edit(build_tiny_pipeline("sd2").unet, e)
    assert "\n" not in str(err2.value)


def test_other_precision_recognised(adapter: Any) -> None:
    import copy

    e = _dense_edit(adapter)
    half = copy.deepcopy(adapter.denoiser).to(torch.float16)
    snap = snapshot(half)
    with apply_edit(half, e):
        for n, p in half.named_parameters():
            if n in e.dense:
                assert torch.equal(p.detach(), e.dense[n].to(torch.float16))
    assert_same(half, snap)


def test_file_round_trip_and_size(adapter: Any, tmp_path: Path) -> None:
    e = _dense_edit(adapter)
    path = save_edit(tmp_path / "dense.safetensors", e)
    touched = sum(v.numel() * v.element_size() for v in e.dense.values())
    size = path.stat().st_size
    assert touched <= size <= touched + 64 * 1024, (size, touched)  # values + metadata, not two full copies
    back = load_edit(path)
    assert back.method == "test" and back.config == {"seed": 0}
    assert set(back.dense) == set(e.dense) and back.dense_hashes == e.dense_hashes
    for n in e.dense:
        assert torch.equal(back.dense[n], e.dense[n])
    assert back.content_hash() == e.content_hash()
    unet = adapter.denoiser
    snap = snapshot(unet)
    with apply_edit(unet, path):
        _assert_state(unet, _expected(snap, [e]))
    assert_same(unet, snap)


def test_content_hash(adapter: Any) -> None:
    sparse = _sparse_edit(adapter)
    # sparse-only edits keep the key the image cache always used (the former edit_key formula)
    h = hashlib.sha256(f"{sparse.intervention}:{sparse.scale}:{sparse.param_hash};".encode())
    for n in sorted(sparse.indices):
        h.update(n.encode())
        h.update(sparse.indices[n].to(torch.int64).contiguous().numpy().tobytes())
    assert sparse.content_hash() == h.hexdigest()[:24]
    a, b = _dense_edit(adapter, 7), _dense_edit(adapter, 8)
    assert a.dense.keys() == b.dense.keys() and a.indices == b.indices == {}
    assert a.content_hash() != b.content_hash()  # same tensors touched, other values: other key
    assert a.content_hash() == _dense_edit(adapter, 7).content_hash()
    from cadkit.benchmarks.framework.generation import edit_key

    assert edit_key(a) == a.content_hash() and edit_key(None) is None


class _Run(pl.LightningModule):
    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet
        self.outputs: list[torch.Tensor] = []

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        (x,) = batch
        out = self.unet(x, torch.full((x.shape[0],), 500), encoder_hidden_states=torch.ones(x.shape[0], 4, 32), return_dict=False)[0]
        self.outputs.append(out.detach().clone())
        return out


def test_callback_with_dense_edit(adapter: Any, tmp_path: Path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    unet = adapter.denoiser
    snap = snapshot(unet)
    e = _dense_edit(adapter, 9)
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = unet(x, torch.full((2,), 500), encoder_hidden_states=torch.ones(2, 4, 32), return_dict=False)[0]
        with apply_edit(unet, e):
            ref = unet(x, torch.full((2,), 500), encoder_hidden_states=torch.ones(2, 4, 32), return_dict=False)[0]
    assert not torch.equal(base, ref)
    module = _Run(unet)
    cb = ConceptEditing([save_edit(tmp_path / "d.safetensors", e), _sparse_edit(adapter)])
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[cb])
    trainer.predict(module, DataLoader(TensorDataset(x), batch_size=2))
    with torch.no_grad(), apply_edits(unet, [e, _sparse_edit(adapter)]):
        ref2 = unet(x, torch.full((2,), 500), encoder_hidden_states=torch.ones(2, 4, 32), return_dict=False)[0]
    assert torch.equal(module.outputs[0], ref2)
    assert not cb.applied
    assert_same(unet, snap)


def test_export_with_dense_edit(tiny_sd1: Path, tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    from cadkit.commands.export import run as run_export
    from cadkit.models import load_adapter

    a = load_adapter(str(tiny_sd1))
    e = _dense_edit(a, 10)
    path = save_edit(tmp_path / "e.safetensors", e)
    out = run_export(model=str(tiny_sd1), edits=[path], out=tmp_path / "exported", device="cpu")
    pipe = StableDiffusionPipeline.from_pretrained(str(out), safety_checker=None, requires_safety_checker=False)
    want = _expected(snapshot(a.denoiser), [e])
    _assert_state(pipe.unet, want)
