"""SD-XL, SD-3(.5) and FLUX through the whole loop on the offline twins: attribute, edit, generate, verify.

Attribution is checked against an independent naive reference that never calls the adapter: the
(sample, t) pairs of ``erase`` are the exact inputs the denoiser received inside a direct diffusers
pipeline call (captured with a forward pre-hook, conditional rows only), prompts are encoded with the
pipeline's own ``encode_prompt``, clean latents of ``amplify`` come straight from the VAE, and the
forward process is written out from its definition (DDPM ``alphas_cumprod`` for SD-XL; the straight
flow path ``x_t = (1 - sigma) x0 + sigma noise`` with velocity target ``noise - x0`` for SD-3 and FLUX).
Then ``score = w * Σ_pairs ∂J/∂w`` is a plain loop of ``torch.autograd.grad``. Models run in
float64 so that the comparison (rtol 1e-5) tests the algorithm, not float32 round-off.

The FLUX twin keeps diffusers' hard-coded default size (128 latents = 256 px); the library tests set
``pipe.default_sample_size = 16`` (32 px) so that everything stays tiny, the CLI tests run at 256 px.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from cadkit.attribution import CAD
from cadkit.attribution.pairs import pair_seed
from cadkit.editing import apply_edit, load_edit, make_edit, save_edit
from cadkit.models import load_adapter
from cadkit.models.adapters.base import DiffusionAdapter

FAMILIES = ("sdxl", "sd3", "flux")
#: Module groups attributed per family (every group except ``all``; the UNet's ``resnet`` is not needed).
MODULES = {"sdxl": "ff,attn1,attn2", "sd3": "ff,ff_context,attn,attn_self", "flux": "ff,ff_context,attn"}
#: Guidance of the erase trajectories. FLUX's is an input of the transformer, and the attribution
#: encodes its prompts with the adapter's default guidance (3.5), so the trajectory uses it too.
GUIDANCE = {"sdxl": 3.0, "sd3": 3.0, "flux": 3.5}
N, T, SEED = 2, 2, 7
CONCEPT = "a photo of a cat"


@pytest.fixture(scope="module")
def twins(twin_folder: Any) -> dict[str, Path]:
    return {f: twin_folder(f) for f in FAMILIES}


def _load(path: Path, family: str, dtype: torch.dtype = torch.float32) -> DiffusionAdapter:
    a = load_adapter(str(path), dtype=dtype)
    assert a.family == family
    if family == "flux":
        a.pipe.default_sample_size = 16  # 32 px instead of diffusers' hard-coded 256 px
    assert a.default_resolution == 32
    return a


@pytest.fixture(scope="module")
def adapters64(twins: dict[str, Path]) -> dict[str, DiffusionAdapter]:
    return {f: _load(p, f, torch.float64) for f, p in twins.items()}


# -- the independent reference -------------------------------------------------------------------------
def _clone(x: Any) -> Any:
    if isinstance(x, Tensor):
        return x.detach().clone()
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return type(x)(_clone(v) for v in x)
    return x


def pipeline_calls(a: DiffusionAdapter, prompt: str, seed: int, steps: int, guidance: float) -> list[dict[str, Any]]:
    """The denoiser's inputs at every step of a direct pipeline call, as ``{"args", "kwargs"}``."""
    calls: list[dict[str, Any]] = []

    def hook(_m: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        calls.append({"args": _clone(args), "kwargs": _clone(kwargs)})

    h = a.denoiser.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            a.pipe(prompt, num_inference_steps=steps, guidance_scale=guidance,
                   generator=torch.Generator().manual_seed(seed), output_type="latent")
    finally:
        h.remove()
    assert len(calls) == steps
    return calls


def encode_direct(a: DiffusionAdapter, prompt: str) -> tuple[Tensor, Tensor]:
    """``(embeds [1, L, D], pooled [1, P])`` from the pipeline's own ``encode_prompt``."""
    p, dev = a.pipe, a.device
    if a.family == "sdxl":
        e, _, pooled, _ = p.encode_prompt(prompt, device=dev, num_images_per_prompt=1, do_classifier_free_guidance=False)
    elif a.family == "sd3":
        e, _, pooled, _ = p.encode_prompt(prompt=prompt, prompt_2=None, prompt_3=None, device=dev,
                                          num_images_per_prompt=1, do_classifier_free_guidance=False)
    else:
        e, pooled, _ = p.encode_prompt(prompt=prompt, prompt_2=None, device=dev)
    return e, pooled


class Pair:
    """One (x_t, t) pair in the denoiser's own input layout, plus how to call the denoiser on it."""

    def __init__(self, a: DiffusionAdapter, call: dict[str, Any]) -> None:
        self.a, self.call = a, call
        if a.family == "sdxl":  # UNet(sample, t, ...); CFG batch [uncond, cond]: keep the cond row
            self.x, self.t = call["args"][0][-1:], call["args"][1]
        else:  # transformers take keyword inputs; SD-3 runs CFG, FLUX does not
            kw = call["kwargs"]
            self.x, self.t = kw["hidden_states"][-1:], kw["timestep"][-1:]

    def with_x(self, x: Tensor) -> Pair:
        out = Pair.__new__(Pair)
        out.a, out.call, out.x, out.t = self.a, self.call, x, self.t
        return out

    def sigma(self) -> float:
        """Flow families: the noise level of this pair (SD-3 is fed ``sigma * 1000``, FLUX ``sigma``)."""
        return float(self.t) / 1000 if self.a.family == "sd3" else float(self.t)

    def forward(self, embeds: Tensor, pooled: Tensor) -> Tensor:
        den, kw = self.a.denoiser, self.call["kwargs"]
        if self.a.family == "sdxl":
            added = {"text_embeds": pooled, "time_ids": kw["added_cond_kwargs"]["time_ids"][-1:]}
            return den(self.x, self.t, encoder_hidden_states=embeds, added_cond_kwargs=added).sample
        if self.a.family == "sd3":
            return den(hidden_states=self.x, timestep=self.t, encoder_hidden_states=embeds, pooled_projections=pooled).sample
        return den(hidden_states=self.x, timestep=self.t, guidance=kw["guidance"][-1:], pooled_projections=pooled,
                   encoder_hidden_states=embeds, txt_ids=kw["txt_ids"], img_ids=kw["img_ids"]).sample


def _grads_times_weights(js: list[Tensor], params: dict[str, torch.nn.Parameter]) -> dict[str, Tensor]:
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    for j in js:
        for n, g in zip(params, torch.autograd.grad(j, list(params.values()))):
            acc[n] += g
    return {n: p.detach() * acc[n] for n, p in params.items()}


def _prepare(a: DiffusionAdapter, modules: str) -> dict[str, torch.nn.Parameter]:
    params = a.select_parameters(modules)
    a.denoiser.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    return params


def naive_erase(a: DiffusionAdapter, modules: str, guidance: float) -> tuple[dict[str, Tensor], float]:
    """Eq. 4 over the pipeline's own trajectories: ``Σ ‖sg(f(x_t, ""))) − f(x_t, c)‖²``; returns (scores, Σ J)."""
    params = _prepare(a, modules)
    cond, base = encode_direct(a, CONCEPT), encode_direct(a, "")
    js: list[Tensor] = []
    for s in range(N):
        for call in pipeline_calls(a, CONCEPT, SEED + s, T, guidance):
            pair = Pair(a, call)
            with torch.no_grad():
                ref = pair.forward(*base)
            js.append(((ref - pair.forward(*cond)) ** 2).sum())
    return _grads_times_weights(js, params), float(sum(float(j) for j in js))


def vae_latents(a: DiffusionAdapter, images: Tensor, seed: int) -> Tensor:
    """Clean latents of ``images`` in [-1, 1], straight from the VAE (one generator for the batch)."""
    vae = a.pipe.vae
    with torch.no_grad():
        lat = vae.encode(images.to(vae.dtype)).latent_dist.sample(generator=torch.Generator().manual_seed(seed))
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (lat - shift) * vae.config.scaling_factor


def naive_amplify(a: DiffusionAdapter, modules: str, images: Tensor, seed: int, guidance: float) -> tuple[dict[str, Tensor], float]:
    """Eq. 5: ``−Σ ‖target − f(x_t, c)‖²`` at the pipeline's T timesteps, seeded noise per (image, step)."""
    from diffusers import FluxPipeline

    params = _prepare(a, modules)
    cond = encode_direct(a, CONCEPT)
    calls = pipeline_calls(a, CONCEPT, 0, T, guidance)  # only the timesteps (and FLUX ids) are used
    x0 = vae_latents(a, images, seed)
    js: list[Tensor] = []
    for s in range(x0.shape[0]):
        for i, call in enumerate(calls):
            pair = Pair(a, call)
            x, noise = x0[s : s + 1], torch.randn(x0.shape[1:], generator=torch.Generator().manual_seed(pair_seed(seed, s, i)))[None].to(x0.dtype)
            if a.family == "sdxl":
                ac = a.scheduler.alphas_cumprod[int(pair.t)].to(x.dtype)
                x_t, target = ac.sqrt() * x + (1 - ac).sqrt() * noise, noise
            else:
                sig = pair.sigma()
                x_t, target = (1 - sig) * x + sig * noise, noise - x
            if a.family == "flux":  # the transformer sees packed 2x2 patches
                b, c, h, w = x_t.shape
                x_t, target = (FluxPipeline._pack_latents(v, b, c, h, w) for v in (x_t, target))
            js.append(-((target - pair.with_x(x_t).forward(*cond)) ** 2).sum())
    return _grads_times_weights(js, params), float(sum(float(j) for j in js))


def assert_scores_close(got: dict[str, Tensor], want: dict[str, Tensor]) -> None:
    """rtol 1e-5 (atol 1e-6 of the tensor's largest score, for entries that cancel to ~0)."""
    assert set(got) == set(want)
    assert sum(int(w.count_nonzero()) for w in want.values()) > 0
    for n in want:
        w = want[n].float()
        assert got[n].dtype == torch.float32 and got[n].shape == w.shape, n
        if not bool(w.any()):  # e.g. SD-3's last block: its text-stream query never reaches the output
            assert not bool(got[n].any()), n
            continue
        torch.testing.assert_close(got[n], w, rtol=1e-5, atol=1e-6 * float(w.abs().max()), msg=n)


# -- 1. attribution equals the naive reference ----------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_erase_equals_naive(adapters64: dict[str, DiffusionAdapter], family: str) -> None:
    a, modules, g = adapters64[family], MODULES[family], GUIDANCE[family]
    got = CAD(a, modules).attribute(CONCEPT, samples=N, timesteps=T, guidance=g, seed=SEED, batch_size=3)
    assert got.pair_counts is not None and torch.equal(got.pair_counts, torch.ones(N * T))
    assert got.metadata["pairs"] == N * T and got.metadata["modules"] == modules.split(",")
    want, j_total = naive_erase(a, modules, g)
    assert got.objective_total == pytest.approx(j_total, rel=1e-6)  # Σ J is accumulated in fp32
    assert_scores_close(got, want)


@pytest.mark.parametrize("family", FAMILIES)
def test_amplify_equals_naive(adapters64: dict[str, DiffusionAdapter], family: str) -> None:
    a, modules = adapters64[family], MODULES[family]
    images = torch.rand(N, 3, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    got = CAD(a, modules).attribute(CONCEPT, objective="amplify", images=images, timesteps=T, seed=3, batch_size=3)
    assert got.pair_counts is not None and torch.equal(got.pair_counts, torch.ones(N * T))
    want, j_total = naive_amplify(a, modules, images, 3, GUIDANCE[family])
    assert got.objective_total == pytest.approx(j_total, rel=1e-6)  # Σ J is accumulated in fp32
    assert_scores_close(got, want)


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_same_scores(twins: dict[str, Path], family: str) -> None:
    """``--gradient-checkpointing`` (diffusers' checkpointed blocks) recomputes, it does not change the scores."""
    a = _load(twins[family], family, torch.float64)
    kw: dict[str, Any] = {"samples": 1, "timesteps": T, "guidance": GUIDANCE[family], "seed": SEED}
    plain = CAD(a, MODULES[family]).attribute(CONCEPT, **kw)
    a.denoiser.enable_gradient_checkpointing()  # type: ignore[operator]
    calls = [0]
    for m in a.denoiser.modules():
        if getattr(m, "gradient_checkpointing", False):
            inner = m._gradient_checkpointing_func

            def counted(*args: Any, _inner: Any = inner, **kwargs: Any) -> Any:
                calls[0] += 1
                return _inner(*args, **kwargs)

            m._gradient_checkpointing_func = counted  # type: ignore[assignment]
    ckpt = CAD(a, MODULES[family]).attribute(CONCEPT, **kw)
    assert calls[0] > 0  # the checkpointed path really ran
    assert set(ckpt) == set(plain)
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], rtol=1e-10, atol=0.0, msg=n)


# -- 2. edits apply and restore bit-exactly ------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_edit_applies_and_restores_bit_exactly(twins: dict[str, Path], family: str, tmp_path: Path) -> None:
    a = _load(twins[family], family)
    scores = CAD(a, MODULES[family]).attribute(CONCEPT, samples=1, timesteps=T, guidance=GUIDANCE[family], seed=SEED)
    before = {n: p.detach().clone() for n, p in a.denoiser.named_parameters()}
    kw: dict[str, Any] = {"steps": T, "guidance": GUIDANCE[family], "decode": False}
    lat0 = a.sample([CONCEPT], [1], **kw).latents
    edit = make_edit(scores, scores.metadata, "erase", "5%", "row", None, model=a)
    assert edit.num_selected() > 0
    save_edit(tmp_path / "e.safetensors", edit)
    loaded = load_edit(tmp_path / "e.safetensors")
    assert loaded.param_hash == edit.param_hash and set(loaded.indices) == set(edit.indices)
    h = apply_edit(a, loaded)
    params = dict(a.denoiser.named_parameters())
    for n, p in params.items():
        want = before[n].clone()
        if n in loaded.indices:
            idx = loaded.indices[n]
            assert torch.equal(want.view(-1)[idx], loaded.originals[n])
            want.view(-1)[idx] = 0.0
            assert bool((scores[n].view(-1)[idx] > 0).all()), n  # erase removes positive scores only
        assert torch.equal(p.detach(), want), n
    assert not torch.equal(a.sample([CONCEPT], [1], **kw).latents, lat0)
    h.remove()
    for n, p in params.items():
        assert torch.equal(p.detach(), before[n]), n
    assert torch.equal(a.sample([CONCEPT], [1], **kw).latents, lat0)


# -- CLI: attribute -> edit -> generate --edit, and verify -------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_cli_attribute_edit_generate_verify(twins: dict[str, Path], family: str, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from PIL import Image

    from cadkit.attribution import load_scores

    model, scores, edit = twins[family], tmp_path / "s.safetensors", tmp_path / "e.safetensors"
    steps = 1 if family == "flux" else T  # the FLUX twin runs at diffusers' fixed 256 px here
    res = run_cli("attribute", "--model", model, "--concept", CONCEPT, "--timesteps", steps, "--modules", "ff",
                  "--guidance", GUIDANCE[family], "--seed", SEED, "--out", scores)
    assert res.code == 0, res
    got, meta = load_scores(scores)
    assert json.loads(meta["model"])["family"] == family and meta["modules"] == json.dumps(["ff"])
    res = run_cli("edit", "--scores", scores, "--mode", "erase", "--ratio", "5%", "--out", edit)
    assert res.code == 0, res
    res = run_cli("generate", "--model", model, "--prompt", CONCEPT, "--steps", steps, "--guidance", GUIDANCE[family],
                  "--seed", 1, "--edit", edit, "--out", tmp_path / "edited")
    assert res.code == 0, res
    protocol = json.loads((tmp_path / "edited" / "generate.json").read_text())
    assert protocol["edits"] == [str(edit)] and protocol["model"]["family"] == family

    # the edited image is what the library makes with the edit applied (same seed, same size)
    a = load_adapter(str(model))
    with apply_edit(a, load_edit(edit)):
        want = a.sample([CONCEPT], [1], steps=steps, guidance=GUIDANCE[family]).images
    assert want is not None
    want_png = (want[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert want_png.shape == (a.default_resolution, a.default_resolution, 3)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "edited" / "00000_00.png")), want_png)
    res = run_cli("verify", "--model", model, "--concept", CONCEPT, "--trials", 2, "--fraction", "0.05", "--timesteps", steps,
                  "--guidance", GUIDANCE[family], "--top", "--ratio", "5%", "--out", tmp_path / "v")
    assert res.code == 0, res
    rows = list(csv.DictReader((tmp_path / "v" / "verify.csv").open()))
    assert [r["kind"] for r in rows] == ["random", "random", "top"]
    assert all(np.isfinite(float(r[k])) for r in rows for k in ("predicted", "actual"))
