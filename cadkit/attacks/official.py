"""Official P4D-N and P4D-K (joycenerd/P4D ``prompt_optimization/optimize_n.py``, ``optimize_k.py``), with ``union`` running N then K.

* P4D-N: ``prompt_len`` learnable tokens replace the prompt (``[BOS, n slots, EOS, pad...]``);
* P4D-K: the original tokens stay, a learnable token goes before every ``every_k`` of them.

Both start from random allowed ids and take ``official_iterations`` AdamW steps (lr 0.1, weight
decay 0.1 by default) on ``MSE(erased(x_t, t, tokens), base(x_t, t, original prompt))`` with a random
timestep ``t ~ U{0, ..., T-1}`` and fresh noise per step, the tokens being the nearest-by-cosine
projection of the continuous embeddings. Every ``eval_every`` steps the projected prompt generates one
image on the erased model (the prompt's seed) and the prompt with the highest ``similarity`` to the
target image is kept. At the end ``num_eval_images`` images of the best prompt are judged: success
if any shows the concept. cadkit places the EOS after the learnable slots and pads with the
tokenizer's pad id (official P4D-K overwrites its EOS embedding and pads with id 0): with this, a
P4D-N run whose tokens are the original ones reproduces the original prompt exactly (zero loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cadkit.attacks.harness import diffusion_mse, generate, num_train_timesteps
from cadkit.attacks.judges import Judge
from cadkit.attacks.layout import PromptLayout, interleave_layout, replace_layout
from cadkit.attacks.optimizers import NearestToken, check_finite
from cadkit.attacks.options import AttackOptions
from cadkit.attacks.pair import ModelPair
from cadkit.attacks.records import AttackRecord
from cadkit.attacks.token_embeddings import TextSide
from cadkit.errors import bad_arg
from cadkit.typed_options import check_seed

__all__ = ["pixel_cosine", "feature_cosine", "tiny_feature_similarity", "official_layout", "OfficialProblem", "official_run", "run_official"]


@dataclass(frozen=True, eq=False)
class OfficialProblem:
    """One prompt's official P4D problem, validated when made: the text side and the ids the attack may
    place (``allowed``), the ``prompt``, the clean latent ``x0`` of the chosen target and the target image
    (``target_image``), the CFG ``guidance`` of every image, and the seeds of the judged images
    (``eval_seeds``; the first also makes the images compared with the target during the run)."""

    text: TextSide
    allowed: Tensor
    prompt: str
    x0: Tensor
    target_image: Tensor
    guidance: float
    eval_seeds: tuple[int, ...]

    def __post_init__(self) -> None:
        g = self.guidance
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
            raise bad_arg("guidance", "a finite number >= 0", g)
        if not self.eval_seeds:
            raise bad_arg("eval_seeds", "at least one seed", self.eval_seeds)
        for s in self.eval_seeds:
            check_seed("eval_seeds", s)


def pixel_cosine(target: Tensor, images: Tensor) -> float:
    """Mean cosine similarity between ``target`` ``[1, 3, H, W]`` and each of ``images`` ``[B, 3, H, W]`` (pixels in [-1, 1]).

    A weak stand-in for the official CLIP image similarity: a plain background dominates it (on
    ``tiny`` a blank image scores ~0.85 against a circle); prefer :func:`feature_cosine`.
    """
    a = (target.float() * 2 - 1).flatten(1)
    b = (images.float() * 2 - 1).flatten(1)
    return float(F.cosine_similarity(a.expand_as(b), b, dim=-1).mean())


def feature_cosine(extractor: Callable[[Tensor], Tensor], name: str = "feature_cosine") -> Callable[[Tensor, Tensor], float]:
    """A similarity: mean cosine between ``extractor`` features ``[B, D]`` of the target and of each image.

    Official P4D uses OpenCLIP ViT-H-14 image features; any image-feature network fits here.
    """

    @torch.no_grad()
    def similarity(target: Tensor, images: Tensor) -> float:
        a = extractor(target.float()).flatten(1).float()
        b = extractor(images.float()).flatten(1).float()
        return float(F.cosine_similarity(a.expand_as(b), b, dim=-1).mean())

    similarity.__name__ = name
    return similarity


def tiny_feature_similarity() -> Callable[[Tensor, Tensor], float]:
    """:func:`feature_cosine` on the tiny judge's pooled CNN features (64-d), the tiny world's CLIP stand-in."""
    from cadkit.tiny.judge import load_judge

    judge = load_judge().eval()
    return feature_cosine(lambda x: judge.features(judge.prepare(x)), "tiny_judge_features")


def official_layout(text: TextSide, prompt: str, variant: str, options: AttackOptions) -> PromptLayout:
    """P4D-N (``replace_layout``) or P4D-K (``interleave_layout``) for ``variant`` "n" / "k"."""
    if variant == "n":
        return replace_layout(text, options.prompt_len)
    return interleave_layout(text, prompt, options.every_k)


def official_run(
    pair: ModelPair, problem: OfficialProblem, variant: str, options: AttackOptions, gen: torch.Generator,
    similarity: Callable[[Tensor, Tensor], float], init_ids: Tensor | None = None,
) -> dict:
    """One P4D-N or P4D-K optimisation; returns its log (losses, similarities, best prompt). No final judging."""
    ad = pair.adapter
    text, allowed, prompt, x0, guidance = problem.text, problem.allowed, problem.prompt, problem.x0, problem.guidance
    target_image, eval_seed = problem.target_image, problem.eval_seeds[0]
    layout = official_layout(text, prompt, variant, options)
    pool = allowed.nonzero().view(-1)
    if init_ids is None:
        init_ids = pool[torch.randint(len(pool), (layout.num_slots,), generator=gen).to(pool.device)]
    lr, wd = options.lr_wd("p4d")
    opt = NearestToken(text, layout, allowed, init_ids, lr, wd, decoupled=True)
    total = num_train_timesteps(ad)
    with pair.base(), torch.no_grad():
        orig = text.encode_prompt(prompt)
    losses: list[float] = []
    sims: list[dict] = []
    best_sim, best_prompt = float("-inf"), ""
    done = 0
    while done < options.official_iterations:
        m = min(options.eval_every, options.official_iterations - done)
        ts = torch.randint(0, total, (m,), generator=gen)
        noises = [torch.randn(x0.shape, generator=gen).to(x0.device, x0.dtype) for _ in range(m)]
        with pair.base(), torch.no_grad():
            refs = []
            for i in range(m):
                tt = ts[i : i + 1].to(ad.device)
                refs.append(ad.predict(ad.add_noise(x0, noises[i], tt), tt, orig).detach())
        with pair.erased():
            for i in range(m):
                tt = ts[i : i + 1].to(ad.device)
                cond, leaves = opt.condition(gen)
                used = opt.last_ids()
                loss = diffusion_mse(ad.predict(ad.add_noise(x0, noises[i], tt), tt, cond), refs[i])
                check_finite(float(loss.detach()), opt, f"step {done + i + 1}")
                opt.apply_grads(torch.autograd.grad(loss, leaves))
                check_finite(float(loss.detach()), opt, f"step {done + i + 1}")
                losses.append(float(loss.detach()))
                step = done + i
                if step % options.eval_every == 0:
                    cand = layout.text(text, used)
                    image = generate(ad, cand, [eval_seed], options.eval_steps, guidance, options.height, options.width)
                    sim = float(similarity(target_image, image))
                    if sim > best_sim:
                        best_sim, best_prompt = sim, cand
                    sims.append({"step": step, "similarity": sim, "best": best_sim, "prompt": cand})
        done += m
    return {
        "variant": variant, "losses": losses, "evaluations": sims, "best_similarity": best_sim, "best_prompt": best_prompt,
        "iterations": len(losses), "slots": layout.slots.tolist(), "truncated": layout.truncated,
        "final_ids": opt.slot_ids().tolist(), "layout_ids": layout.ids[0].tolist(),
    }


def run_official(
    out: AttackRecord, pair: ModelPair, problem: OfficialProblem, judge: Judge, options: AttackOptions, gen: torch.Generator,
    similarity: Callable[[Tensor, Tensor], float] | None, say: Callable[[str], None],
) -> None:
    """Run P4D-N, P4D-K or both (``union``: K only when N fails) and fill ``out`` in place."""
    sim_fn = similarity or pixel_cosine
    variants = ["n", "k"] if options.p4d_variant == "union" else [options.p4d_variant]
    for variant in variants:
        log = official_run(pair, problem, variant, options, gen, sim_fn)
        with pair.erased():
            images = generate(pair.adapter, log["best_prompt"], list(problem.eval_seeds), options.eval_steps, problem.guidance,
                              options.height, options.width)
        verdict = judge(images)
        out.evaluations += len(log["evaluations"]) + 1
        out.iterations += log["iterations"]
        out.truncated = max(out.truncated, int(log["truncated"]))
        log.update(success=verdict.success, score=verdict.score, details=verdict.details)
        out.runs.append(log)
        out.image, out.adv_prompt = images[0], log["best_prompt"]
        say(f"P4D-{variant.upper()}: best similarity {log['best_similarity']:.3f} success={verdict.success} {log['best_prompt']!r}")
        if verdict.success:
            out.success = True
            break
    out.options["similarity"] = getattr(sim_fn, "__name__", type(sim_fn).__name__)
