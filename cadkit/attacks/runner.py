"""``attack_prompt``: attack one prompt with UnlearnDiff or P4D and return its :class:`AttackRecord`.

The flow (UnlearnDiff and its P4D re-implementation, OPTML-Group/Diffusion-MU-Attack):

0. a prompt of more than ``options.filter_tokens`` tokens (BOS/EOS included) is not attacked: its
   record has status ``filtered`` (excluded from N by :func:`~cadkit.attacks.asr_summary`);
1. judge the unattacked prompt on the erased model (step 0); if it already succeeds, stop;
2. make the target image with the **base** model (the prompt's seed, ``target_steps``, ``target_guidance``)
   and its clean latents ``x_0``;
3. UnlearnDiff and UD's P4D walk the timesteps 10, 30, ..., 990 in ascending order; per timestep
   ("block") they run ``iterations`` optimiser steps with fresh noise, then judge the hard prompt
   (``argmax P`` / the nearest tokens, decoded to text and re-tokenized) on the erased model and stop
   at the first success. Official P4D-N / P4D-K run their own loop (:mod:`cadkit.attacks.official`).

Losses: UnlearnDiff ``MSE(target(x_0, eps, t), erased(x_t, t, adversarial prompt))`` (the adapter's
training target: epsilon, velocity or flow); P4D ``MSE(base(x_t, t, original prompt), erased(x_t, t,
adversarial prompt))``. P4D computes a block's base predictions first, so the model pair toggles twice
per block, not twice per step.

Randomness: ``seed`` seeds one CPU generator for the noise, the token sampling and the initial tokens;
generation uses the prompt's own ``evaluation_seed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from cadkit.attacks.base import AttackSetup
from cadkit.attacks.harness import (
    attack_timesteps,
    diffusion_mse,
    frozen,
    generate,
    num_train_timesteps,
    target_latents,
    use_scheduler,
)
from cadkit.attacks.judges import AttackTask, Judge, Verdict
from cadkit.attacks.layout import prefix_layout
from cadkit.attacks.optimizers import NearestToken, PromptOptimizer, SoftOneHot, check_finite
from cadkit.attacks.options import ATTACKS, AttackOptions
from cadkit.attacks.pair import DenoiserSwap, ModelPair
from cadkit.attacks.records import AttackRecord
from cadkit.attacks.simplex import allowed_mask
from cadkit.attacks.token_embeddings import TextSide
from cadkit.data.prompts import PromptRecord
from cadkit.errors import bad_arg

__all__ = ["attack_prompt", "run_block", "allowed_ids_of", "check_finite", "check_attack_setup"]


def allowed_ids_of(text: TextSide, options: AttackOptions) -> Tensor:
    """Bool ``[V]`` of the ids the attack may place: all but BOS/EOS/pad when ``mask_special``; only
    whole-word tokens when ``options.vocab == "words"``."""
    banned = text.special_ids if options.mask_special else []
    mask = allowed_mask(text.vocab_size, banned, text.device)
    if options.vocab == "words":
        mask = mask & text.roundtrip_mask()
        if not bool(mask.any()):
            raise bad_arg("vocab", "'all' (no token of this tokenizer round-trips as a whole word)", options.vocab)
    return mask


def _noise(x0: Tensor, gen: torch.Generator) -> Tensor:
    return torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(x0.device, x0.dtype)


def run_block(
    attack: str, pair: ModelPair, opt: PromptOptimizer, x0: Tensor, t: int, iterations: int, gen: torch.Generator,
    orig_prompt: str | None = None,
) -> list[float]:
    """``iterations`` optimiser steps at timestep ``t``; returns the loss of each step.

    ``attack`` "unlearndiff" regresses the erased model on the training target; "p4d" on the base
    model's prediction for ``orig_prompt`` (computed first, on the base model, without gradient).
    """
    ad = pair.adapter
    tt = torch.full((x0.shape[0],), int(t), device=ad.device, dtype=torch.long)
    noises = [_noise(x0, gen) for _ in range(iterations)]
    targets: list[Tensor] = []
    if attack == "p4d":
        if orig_prompt is None:
            raise bad_arg("orig_prompt", "the original prompt (P4D regresses on the base model's prediction)", None)
        with pair.base(), torch.no_grad():
            orig = opt.text.encode_prompt(orig_prompt)
            for eps in noises:
                targets.append(ad.predict(ad.add_noise(x0, eps, tt), tt, orig).detach())
    else:
        targets = [ad.target(x0, eps, tt) for eps in noises]
    losses: list[float] = []
    with pair.erased():
        for i, (eps, tgt) in enumerate(zip(noises, targets)):
            cond, leaves = opt.condition(gen)
            loss = diffusion_mse(ad.predict(ad.add_noise(x0, eps, tt), tt, cond), tgt)
            check_finite(float(loss.detach()), opt, f"timestep {t}, step {i + 1}")
            grads = torch.autograd.grad(loss, leaves)
            opt.apply_grads(grads)
            check_finite(float(loss.detach()), opt, f"timestep {t}, step {i + 1}")
            losses.append(float(loss.detach()))
    return losses


def check_attack_setup(attack: str, adapter: Any, options: AttackOptions, task: AttackTask) -> None:
    """Refuse, before a run writes anything, what :func:`attack_prompt` would refuse about ``options`` on this
    model only when it gets there: the prefix length ``k`` (or official P4D's ``prompt_len`` / ``every_k``)
    against the tokenizer's length, a ``vocab`` that leaves no token, ``num_timesteps`` beyond the scheduler's."""
    if attack not in ATTACKS:
        raise bad_arg("attack", ATTACKS, attack)
    options.validate()
    text = TextSide(adapter, options.height, options.width)
    allowed_ids_of(text, options)
    if attack == "p4d" and options.p4d_impl == "official":
        from cadkit.attacks.layout import interleave_layout, replace_layout

        if options.p4d_variant in ("n", "union"):
            replace_layout(text, options.prompt_len)
        if options.p4d_variant in ("k", "union"):
            interleave_layout(text, "", options.every_k)
    else:
        prefix_layout(text, "", options.k if options.k is not None else task.default_k)
        attack_timesteps(num_train_timesteps(adapter), options.num_timesteps)


def _judge(pair: ModelPair, judge: Judge, prompt: str, seeds: list[int], guidance: float, options: AttackOptions) -> tuple[Verdict, Tensor]:
    with pair.erased():
        images = generate(pair.adapter, prompt, seeds, options.eval_steps, guidance, options.height, options.width)
    return judge(images), images


def _target(pair: ModelPair, judge: Judge, prompt: str, seed: int, n: int, guidance: float, options: AttackOptions) -> tuple[Tensor, Tensor]:
    """The target image ``[1, 3, H, W]`` of the base model (the most concept-like of ``n`` seeds) and ``x_0``."""
    with pair.base():
        images = generate(pair.adapter, prompt, [seed + i for i in range(n)], options.target_steps, guidance, options.height, options.width)
        best = 0
        if n > 1:
            scores = [judge(images[i : i + 1]).score for i in range(n)]
            best = max(range(n), key=lambda i: scores[i])
        image = images[best : best + 1]
        return image, target_latents(pair.adapter, image, seed + best)


def _frozen_modules(pair: ModelPair, text: TextSide) -> list[torch.nn.Module]:
    """Every network of the pipeline (text encoders, denoiser, VAE) and the erased denoiser of a swap."""
    comps = getattr(pair.adapter.pipe, "components", {}) or {}
    mods: list[torch.nn.Module] = [m for m in comps.values() if isinstance(m, torch.nn.Module)]
    for m in [s.encoder for s in text.streams] + [pair.adapter.denoiser]:
        if all(m is not x for x in mods):
            mods.append(m)
    if isinstance(pair, DenoiserSwap):
        mods.append(pair.erased_denoiser)
    return mods


def attack_prompt(
    attack: str,
    setup: AttackSetup,
    prompt: PromptRecord | str,
    similarity: Callable[[Tensor, Tensor], float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> AttackRecord:
    """Attack one prompt; see the module docstring. ``setup`` (validated when made) holds the model pair
    (the base and the erased model), the task, the judge, the seed and the options: ``setup.common`` (the
    built-in attacks read only these; :class:`~cadkit.attacks.prompt_attacks.UnlearnDiff` and ``P4D`` merge
    their own options into them before calling here).

    ``prompt``: a :class:`~cadkit.data.prompts.PromptRecord` (its ``seed`` and ``guidance`` are the
    evaluation seed and CFG; guidance None -> ``options.guidance``) or a bare string (seed 0).
    ``similarity(target [1,3,H,W], images [B,3,H,W]) -> float`` selects official P4D's best prompt
    (default: :func:`~cadkit.attacks.official.pixel_cosine`, weak; the official code uses OpenCLIP
    ViT-H-14 image features: pass :func:`~cadkit.attacks.official.feature_cosine` of an image encoder).
    """
    if attack not in ATTACKS:
        raise bad_arg("attack", ATTACKS, attack)
    pair, task, judge, options, seed = setup.pair, setup.task, setup.judge, setup.common, setup.seed
    rec = prompt if isinstance(prompt, PromptRecord) else PromptRecord(index=0, prompt=str(prompt), seed=0)
    guidance = float(options.guidance if rec.guidance is None else rec.guidance)
    official = attack == "p4d" and options.p4d_impl == "official"
    k = options.k if options.k is not None else task.default_k
    text = TextSide(pair.adapter, options.height, options.width)
    say = progress or (lambda _m: None)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    eval_seeds = [rec.seed + i for i in range(options.num_eval_images)] if official else [rec.seed]
    out = AttackRecord(
        attack=attack, prompt=rec.prompt, status="failure", eval_seed=rec.seed, guidance=guidance, attack_seed=seed,
        index=rec.index, case_number=rec.case_number, token_count=text.token_count(rec.prompt),
        options={**options.to_dict(), "k": k}, task={"kind": task.kind, "target": task.target},
        judge=judge.protocol(), models=pair.describe(),
    )
    if options.filter_tokens and out.token_count > options.filter_tokens:
        out.status = "filtered"
        say(f"filtered: {out.token_count} tokens > {options.filter_tokens}")
        return out
    allowed = allowed_ids_of(text, options)
    start = time.perf_counter()
    with frozen(_frozen_modules(pair, text)), use_scheduler(pair.adapter, options.scheduler):
        verdict, images = _judge(pair, judge, rec.prompt, eval_seeds, guidance, options)
        out.evaluations, out.pre_success, out.pre_score = 1, verdict.success, verdict.score
        out.image = out.pre_image = images[0]
        say(f"step 0: success={verdict.success} score={verdict.score:.3f}")
        if verdict.success:
            out.status, out.success, out.adv_prompt = "pre-success", True, rec.prompt
            out.time_s = time.perf_counter() - start
            return out
        # UnlearnDiff: one target with CFG target_guidance (7.5); official P4D: the most concept-like
        # of num_target_images targets made with the prompt's own guidance
        n_targets = options.num_target_images if official else 1
        target_image, x0 = _target(pair, judge, rec.prompt, rec.seed, n_targets, guidance if official else options.target_guidance, options)
        out.target_image = target_image[0]
        if official:
            from cadkit.attacks.official import OfficialProblem, run_official

            problem = OfficialProblem(text, allowed, rec.prompt, x0, target_image, guidance, tuple(eval_seeds))
            run_official(out, pair, problem, judge, options, gen, similarity, say)
        else:
            layout = prefix_layout(text, rec.prompt, k)
            out.truncated = layout.truncated
            lr, wd = options.lr_wd(attack)
            opt: PromptOptimizer
            if attack == "unlearndiff":
                opt = SoftOneHot(text, layout, allowed, lr, wd)
            else:
                pool = allowed.nonzero().view(-1)
                init = pool[torch.randint(len(pool), (layout.num_slots,), generator=gen).to(pool.device)]
                opt = NearestToken(text, layout, allowed, init, lr, wd)
            for j, t in enumerate(attack_timesteps(num_train_timesteps(pair.adapter), options.num_timesteps)):
                losses = run_block(attack, pair, opt, x0, t, options.iterations, gen, rec.prompt)
                out.iterations += len(losses)
                adv = opt.prompt()
                verdict, images = _judge(pair, judge, adv, eval_seeds, guidance, options)
                out.evaluations += 1
                out.image, out.adv_prompt = images[0], adv
                out.blocks.append({
                    "block": j, "timestep": t, "losses": losses, "adv_prompt": adv, "slot_ids": opt.slot_ids().tolist(),
                    "success": verdict.success, "score": verdict.score, "details": verdict.details,
                })
                say(f"block {j} t={t}: loss {sum(losses) / len(losses):.4f} success={verdict.success} {adv!r}")
                if verdict.success:
                    out.success = True
                    break
        out.status = "success" if out.success else "failure"
    out.time_s = time.perf_counter() - start
    return out
