"""attack_prompt control flow, losses and invariants on config-built pipelines (stub judges)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from cadkit.attacks import AttackOptions, AttackSetup, AttackTask, CallableJudge, SameModel, attack_prompt
from cadkit.attacks.harness import attack_timesteps, diffusion_mse
from cadkit.attacks.layout import replace_layout
from cadkit.attacks.official import OfficialProblem, official_run, pixel_cosine
from cadkit.attacks.optimizers import NearestToken
from cadkit.attacks.runner import allowed_ids_of
from cadkit.attacks.token_embeddings import TextSide
from cadkit.data.prompts import PromptRecord

PROMPT = "an image of a church"
TASK = AttackTask("object", "church")
FAST = AttackOptions(num_timesteps=50, iterations=1, eval_steps=1, target_steps=1, guidance=2.0, target_guidance=2.0)


@pytest.fixture(scope="module")
def sd1() -> Any:
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    return adapter_from_pipeline(build_tiny_pipeline("sd1"))


class Counter:
    """A judge that succeeds at its ``succeed_at``-th call (1-based; 0 never)."""

    def __init__(self, succeed_at: int) -> None:
        self.calls = 0
        self.succeed_at = succeed_at

    def __call__(self, images: torch.Tensor) -> tuple[bool, float]:
        self.calls += 1
        return self.calls == self.succeed_at, float(self.calls)


def test_timesteps_are_unlearndiffs() -> None:
    assert attack_timesteps(1000, 50) == list(range(10, 1000, 20))
    assert attack_timesteps(1000, 5) == [100, 300, 500, 700, 900]


@pytest.mark.parametrize("attack", ["unlearndiff", "p4d"])
@pytest.mark.parametrize("j", [0, 3])
def test_stops_at_first_success_visiting_timesteps_in_order(sd1: Any, attack: str, j: int) -> None:
    stub = Counter(succeed_at=j + 2)  # call 1 is step 0 (the unattacked prompt), call j + 2 judges block j
    rec = attack_prompt(attack, AttackSetup(SameModel(sd1), TASK, CallableJudge(stub), FAST), PromptRecord(0, PROMPT, seed=7, guidance=3.0))
    assert rec.status == "success" and rec.success and not rec.pre_success
    assert stub.calls == j + 2 and rec.evaluations == j + 2 and len(rec.blocks) == j + 1
    assert [b["timestep"] for b in rec.blocks] == [10 + 20 * i for i in range(j + 1)]
    assert rec.iterations == (j + 1) * FAST.iterations
    assert rec.adv_prompt == rec.blocks[-1]["adv_prompt"] and rec.adv_prompt.endswith(PROMPT)
    assert rec.guidance == 3.0 and rec.eval_seed == 7


def test_no_optimisation_when_step_zero_succeeds(sd1: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import cadkit.attacks.runner as runner

    def boom(*a: Any, **k: Any) -> None:
        raise AssertionError("optimised although step 0 succeeded")

    monkeypatch.setattr(runner, "run_block", boom)
    monkeypatch.setattr(runner, "_target", boom)
    stub = Counter(succeed_at=1)
    rec = attack_prompt("unlearndiff", AttackSetup(SameModel(sd1), TASK, CallableJudge(stub), FAST), PROMPT)
    assert rec.status == "pre-success" and rec.pre_success and rec.success
    assert stub.calls == 1 and rec.iterations == 0 and rec.blocks == [] and rec.target_image is None


def test_failure_runs_every_block(sd1: Any) -> None:
    opts = FAST.replace(num_timesteps=3)
    stub = Counter(succeed_at=0)
    rec = attack_prompt("unlearndiff", AttackSetup(SameModel(sd1), TASK, CallableJudge(stub), opts), PROMPT)
    assert rec.status == "failure" and stub.calls == 4 and [b["timestep"] for b in rec.blocks] == [166, 499, 832]


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_p4d_zero_loss_and_gradient_for_identical_models_and_prompt(family: str) -> None:
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    ad = adapter_from_pipeline(build_tiny_pipeline(family))
    text = TextSide(ad)
    content = text.content_ids(PROMPT)
    layout = replace_layout(text, len(content))  # P4D-N with prompt_len = the content-token count
    assert torch.equal(layout.with_tokens(content), text.prompt_ids(PROMPT))
    opt = NearestToken(text, layout, allowed_ids_of(text, AttackOptions()), torch.tensor(content), decoupled=True)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 4, 16, 16, generator=g)
    eps, t = torch.randn(x0.shape, generator=g), torch.tensor([421])
    ref = ad.predict(ad.add_noise(x0, eps, t), t, text.encode_prompt(PROMPT)).detach()
    cond, leaves = opt.condition()
    assert opt.last_ids().tolist() == content
    loss = diffusion_mse(ad.predict(ad.add_noise(x0, eps, t), t, cond), ref)
    grads = torch.autograd.grad(loss, leaves)
    assert float(loss) == 0.0
    assert all(bool((gr == 0).all()) for gr in grads)


def test_official_p4d_k_keeps_original_ids_and_best_similarity_never_drops(sd1: Any) -> None:
    text = TextSide(sd1)
    opts = FAST.replace(p4d_impl="official", p4d_variant="k", official_iterations=12, eval_every=3)
    allowed = allowed_ids_of(text, opts)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, 4, 16, 16, generator=g)
    target = torch.rand(1, 3, 32, 32, generator=g)
    prompt = "a photo of a dog in the church"
    log = official_run(SameModel(sd1), OfficialProblem(text, allowed, prompt, x0, target, 2.0, (5,)), "k", opts, g, pixel_cosine)
    content = text.content_ids(prompt)
    slots = log["slots"]
    assert len(slots) == len(content) // 3 + 1 and [s - slots[0] for s in slots] == [4 * i for i in range(len(slots))]
    final = torch.tensor(log["layout_ids"])
    final[slots] = torch.tensor(log["final_ids"])
    keep = [i for i in range(1, 1 + len(content) + len(slots)) if i not in slots]
    assert final[keep].tolist() == content
    assert log["iterations"] == 12 and [e["step"] for e in log["evaluations"]] == [0, 3, 6, 9]
    best = [e["best"] for e in log["evaluations"]]
    assert best == [max(e["similarity"] for e in log["evaluations"][: i + 1]) for i in range(len(best))]
    assert log["best_similarity"] == best[-1]


def test_official_union_runs_k_only_after_n_fails(sd1: Any) -> None:
    opts = FAST.replace(p4d_impl="official", p4d_variant="union", official_iterations=2, eval_every=2,
                        num_eval_images=2, num_target_images=2, prompt_len=3)
    stub = Counter(succeed_at=0)
    rec = attack_prompt("p4d", AttackSetup(SameModel(sd1), TASK, CallableJudge(stub), opts), PROMPT)
    assert [r["variant"] for r in rec.runs] == ["n", "k"] and rec.status == "failure"
    assert rec.iterations == 4 and rec.evaluations == 1 + 2 * (1 + 1)
    # base targets: 2 images judged for the most concept-like one, then 2 evaluation images per judging
    assert stub.calls == 1 + 2 + 2 * 1 + 2 * 0 and rec.runs[0]["best_prompt"]
    stub2 = Counter(succeed_at=4)  # step 0, 2 target scores, then P4D-N's final judging succeeds
    rec2 = attack_prompt("p4d", AttackSetup(SameModel(sd1), TASK, CallableJudge(stub2), opts), PROMPT)
    assert [r["variant"] for r in rec2.runs] == ["n"] and rec2.status == "success"


@pytest.mark.parametrize("family", ["sdxl", "sd3", "flux"])
def test_other_families_attack_through_the_same_path(family: str) -> None:
    from cadkit.models import adapter_from_pipeline
    from cadkit.testing import build_tiny_pipeline

    ad = adapter_from_pipeline(build_tiny_pipeline(family))
    for attack in ("unlearndiff", "p4d"):
        stub = Counter(succeed_at=3)
        rec = attack_prompt(attack, AttackSetup(SameModel(ad), TASK, CallableJudge(stub), FAST.replace(height=32, width=32)), PROMPT)
        assert rec.status == "success" and len(rec.blocks) == 2
        assert all(len(b["slot_ids"]) == 3 for b in rec.blocks) and rec.image.shape == (3, 32, 32)
        assert all(loss == loss for b in rec.blocks for loss in b["losses"])  # finite, not NaN


def test_bad_arguments_name_the_parameter(sd1: Any) -> None:
    with pytest.raises(ValueError, match="^attack:"):
        attack_prompt("esd", AttackSetup(SameModel(sd1), TASK, CallableJudge(Counter(1))), PROMPT)
    with pytest.raises(ValueError, match="^lr:"):
        AttackOptions(lr=float("nan"))
    with pytest.raises(ValueError, match="^iterations:"):
        AttackOptions(iterations=10**9)
    with pytest.raises(ValueError, match="^p4d_variant:"):
        AttackOptions(p4d_variant="m")
    with pytest.raises(ValueError, match="^kind:"):
        AttackTask("artist", "x")


class SpyPair(SameModel):
    """Records which model each block of code ran on."""

    def __init__(self, adapter: Any) -> None:
        super().__init__(adapter)
        self.log: list[str] = []

    @contextmanager
    def base(self) -> Iterator[Any]:
        self.log.append("base")
        yield self.adapter

    @contextmanager
    def erased(self) -> Iterator[Any]:
        self.log.append("erased")
        yield self.adapter


@pytest.mark.parametrize("attack", ["unlearndiff", "p4d"])
def test_models_toggle_once_per_block(sd1: Any, attack: str) -> None:
    pair = SpyPair(sd1)
    attack_prompt(attack, AttackSetup(pair, TASK, CallableJudge(Counter(succeed_at=3)), FAST.replace(iterations=4)), PROMPT)
    head = ["erased", "base"]  # step 0 judged on the erased model, the target made on the base model
    block = ["base", "erased", "erased"] if attack == "p4d" else ["erased", "erased"]  # (P4D's refs,) steps, judging
    assert pair.log == head + block * 2


def test_edit_toggle_attack_leaves_the_base_model_unchanged(sd1: Any) -> None:
    from cadkit.attacks import model_pair
    from cadkit.editing import make_edit

    g = torch.Generator().manual_seed(0)
    scores = {n: torch.randn(p.shape, generator=g) for n, p in sd1.denoiser.named_parameters() if ".attn2." in n}
    edit = make_edit(scores, {}, "erase", 0.3, model=sd1)
    before = {k: v.clone() for k, v in sd1.denoiser.state_dict().items()}
    flags = [p.requires_grad for p in sd1.denoiser.parameters()]
    rec = attack_prompt("p4d", AttackSetup(model_pair(sd1, edits=[edit]), TASK, CallableJudge(Counter(0)), FAST.replace(num_timesteps=2)), PROMPT)
    assert rec.status == "failure" and rec.models["kind"] == "edit-toggle"
    assert all(torch.equal(before[k], v) for k, v in sd1.denoiser.state_dict().items())
    assert [p.requires_grad for p in sd1.denoiser.parameters()] == flags


def test_denoiser_swap_and_scheduler_swap_are_restored(sd1: Any) -> None:
    import copy

    from cadkit.attacks import model_pair

    base, sched = sd1.denoiser, sd1.pipe.scheduler
    twin = copy.deepcopy(base)
    for opts in (FAST.replace(num_timesteps=2, scheduler="lms"), FAST.replace(num_timesteps=2, scheduler="dpm")):
        rec = attack_prompt("unlearndiff", AttackSetup(model_pair(sd1, erased_denoiser=twin), TASK, CallableJudge(Counter(0)), opts), PROMPT)
        assert rec.status == "failure" and len(rec.blocks) == 2
    assert sd1.denoiser is base and sd1.pipe.scheduler is sched


def test_long_prompt_is_filtered_without_work(sd1: Any) -> None:
    stub = Counter(1)
    rec = attack_prompt("unlearndiff", AttackSetup(SameModel(sd1), TASK, CallableJudge(stub), FAST.replace(filter_tokens=12)), " ".join(["church"] * 20))
    assert rec.status == "filtered" and rec.token_count == 22 and stub.calls == 0
