"""ConceptEditing inside a real Lightning Trainer: edited during predict/validate, restored after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from cadkit.editing.callback import ConceptEditing, find_denoiser
from cadkit.editing.edits import Edit, apply_edit, make_edit, save_edit
from cadkit.errors import BadArgument, CadkitError
from tests.helpers import assert_same, make_scores, snapshot


class _Denoise(pl.LightningModule):
    """Runs the UNet on fixed inputs; records outputs and whether the edited entries were edited."""

    def __init__(self, unet: torch.nn.Module, edit: Edit, attr: str = "unet") -> None:
        super().__init__()
        setattr(self, attr, unet)
        self._net = unet
        self._edit = edit
        self.outputs: list[torch.Tensor] = []
        self.edited_seen: list[bool] = []

    def _run(self, batch: Any) -> torch.Tensor:
        (x,) = batch
        params = dict(self._net.named_parameters())
        self.edited_seen.append(all(torch.equal(params[n].detach().reshape(-1)[i], torch.zeros_like(self._edit.originals[n]))
                                    for n, i in self._edit.indices.items()))
        t = torch.full((x.shape[0],), 500, dtype=torch.long)
        ctx = torch.zeros(x.shape[0], 4, 32)
        out = self._net(x, t, encoder_hidden_states=ctx, return_dict=False)[0]
        self.outputs.append(out.detach().clone())
        return out

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._run(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._run(batch)


def _trainer(cb: pl.Callback) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, callbacks=[cb])


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(2, 4, 16, 16, generator=g)), batch_size=2)


@pytest.fixture(scope="module")
def edit(tiny_pipe: Any) -> Edit:
    return make_edit(make_scores(tiny_pipe.unet, 11), {}, "erase", 0.1, model=tiny_pipe.unet)


@pytest.mark.parametrize("stage", ["predict", "validate"])
def test_callback_applies_and_restores(tiny_pipe: Any, edit: Edit, tmp_path: Path, stage: str) -> None:
    unet = tiny_pipe.unet
    snap = snapshot(unet)
    with torch.no_grad():  # reference output of the edited UNet, edit applied by hand
        h = apply_edit(unet, edit)
        x = next(iter(_loader()))[0]
        ref = unet(x, torch.full((2,), 500, dtype=torch.long), encoder_hidden_states=torch.zeros(2, 4, 32), return_dict=False)[0]
        h.remove()
    assert_same(unet, snap)
    module = _Denoise(unet, edit)
    cb = ConceptEditing(save_edit(tmp_path / "e.safetensors", edit), verbose=True)
    trainer = _trainer(cb)
    if stage == "predict":
        trainer.predict(module, _loader())
    else:
        trainer.validate(module, _loader(), verbose=False)
    assert module.edited_seen == [True]
    assert torch.equal(module.outputs[0], ref)
    assert not cb.applied
    assert_same(unet, snap)


def test_two_edits_and_custom_locator(tiny_pipe: Any, edit: Edit) -> None:
    unet = tiny_pipe.unet
    snap = snapshot(unet)
    second = make_edit(make_scores(unet, 12), {}, "erase", 0.1, model=unet)
    module = _Denoise(unet, edit, attr="net")
    cb = ConceptEditing([edit, second], denoiser=lambda m: m.net)
    _trainer(cb).predict(module, _loader())
    assert module.edited_seen == [True]
    assert_same(unet, snap)


def test_find_denoiser(tiny_pipe: Any, edit: Edit) -> None:
    unet = tiny_pipe.unet
    m = _Denoise(unet, edit, attr="unet")
    assert find_denoiser(m) is unet
    m2 = _Denoise(unet, edit, attr="inner")
    assert find_denoiser(m2, "inner") is unet
    assert find_denoiser(m2) is m2  # no known attribute: the module itself
    with pytest.raises(BadArgument, match="denoiser"):
        find_denoiser(m2, "nothing.here")


def test_callback_refuses_wrong_model(tiny_pipe: Any, edit: Edit) -> None:
    module = _Denoise(tiny_pipe.text_encoder, edit, attr="denoiser")
    with pytest.raises(CadkitError, match="another model"):
        _trainer(ConceptEditing(edit)).predict(module, _loader())
    with pytest.raises(BadArgument, match="edits"):
        ConceptEditing([])


class _Failing(_Denoise):
    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self._run(batch)
        raise RuntimeError("boom")


def test_restored_after_failure(tiny_pipe: Any, edit: Edit) -> None:
    unet = tiny_pipe.unet
    snap = snapshot(unet)
    module = _Failing(unet, edit)
    cb = ConceptEditing(edit)
    with pytest.raises(RuntimeError, match="boom"):
        _trainer(cb).predict(module, _loader())
    assert module.edited_seen == [True] and not cb.applied
    assert_same(unet, snap)
