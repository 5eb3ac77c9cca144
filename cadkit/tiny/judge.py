"""The judge of the ``tiny`` world: a small CNN that names the object class and the style of an image.

It plays ResNet50 in the paper's benchmarks: :func:`object_classifier` and :func:`style_classifier`
return plain ``nn.Module`` s mapping images ``[B, 3, H, W]`` in [0, 1] to logits over
``OBJECTS`` / ``STYLES`` (inputs of another size are resized to 32x32), so an accuracy metric can
take them exactly like an ImageNet classifier. It is trained only on fresh procedural renders
(with small shifts, blur, noise and contrast changes), never on model samples.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cadkit.errors import CadkitError, UsageError
from cadkit.outputs import atomic_path, dumps_strict
from cadkit.tiny.domain import IMAGE_SIZE, OBJECTS, STYLES, render_set

__all__ = [
    "TinyJudge",
    "judge_path",
    "load_judge",
    "object_classifier",
    "style_classifier",
    "train_judge",
    "judge_accuracy",
    "augment",
]


def judge_path() -> Path:
    """Where the shipped judge weights live inside the package."""
    return Path(__file__).resolve().parent / "weights" / "judge.safetensors"


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TinyJudge(nn.Module):
    """Two-headed CNN: ``forward(images [B,3,H,W] in [0,1]) -> (object logits [B,10], style logits [B,5])``."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.object_classes: list[str] = list(OBJECTS)
        self.style_classes: list[str] = list(STYLES)
        w = width
        self.features = nn.Sequential(
            _block(3, w),
            nn.MaxPool2d(2),  # 16
            _block(w, 2 * w),
            nn.MaxPool2d(2),  # 8
            _block(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.object_head = nn.Linear(4 * w, len(OBJECTS))
        self.style_head = nn.Linear(4 * w, len(STYLES))

    def prepare(self, images: Tensor) -> Tensor:
        """Resize to 32x32 if needed and centre the [0, 1] range."""
        x = images.float()
        if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            x = F.interpolate(x, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True, align_corners=False)
        return (x - 0.5) / 0.5

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(self.prepare(images))
        return self.object_head(h), self.style_head(h)


class _Head(nn.Module):
    """One head of a :class:`TinyJudge` as a classifier ``images -> logits``."""

    def __init__(self, judge: TinyJudge, which: int, classes: list[str]) -> None:
        super().__init__()
        self.judge = judge
        self.which = which
        self.classes = list(classes)

    def forward(self, images: Tensor) -> Tensor:
        return self.judge(images)[self.which]


def load_judge(path: str | os.PathLike[str] | None = None) -> TinyJudge:
    """The judge with the shipped weights (or those at ``path``), in eval mode."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(path) if path is not None else judge_path()
    if not p.is_file():
        if path is not None:
            raise UsageError("path", f"no judge weights file at {p}")
        raise CadkitError(f"tiny judge weights not found at {p}; run `cadkit tiny train-judge`")
    try:
        with safe_open(str(p), "pt") as f:
            meta = f.metadata() or {}
        judge = TinyJudge(width=int(meta.get("width", 16)))
        judge.load_state_dict(load_file(str(p)))
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:  # not a judge file, or another judge's
        what = "not a safetensors file" if isinstance(exc, SafetensorError) else f"not this judge's weights: {type(exc).__name__}"
        raise UsageError("path", f"{p} is not a tiny judge weights file ({what})") from None
    return judge.eval()


def object_classifier(path: str | os.PathLike[str] | None = None) -> nn.Module:
    """``images [B,3,H,W] in [0,1] -> logits [B, len(OBJECTS)]`` (``.classes`` names them)."""
    judge = load_judge(path)
    return _Head(judge, 0, judge.object_classes).eval()


def style_classifier(path: str | os.PathLike[str] | None = None) -> nn.Module:
    """``images [B,3,H,W] in [0,1] -> logits [B, len(STYLES)]`` (``.classes`` names them)."""
    judge = load_judge(path)
    return _Head(judge, 1, judge.style_classes).eval()


def augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random shifts (up to 2 px), blur, noise and contrast of images ``[B,3,32,32]`` in [0, 1]."""
    b = x.shape[0]
    shift = (torch.randint(-2, 3, (b, 2), generator=gen).float() * 2 / IMAGE_SIZE)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=False)
    sigma = torch.rand(b, generator=gen) * 0.9
    k = torch.arange(-2, 3, dtype=torch.float32)
    kern = torch.exp(-(k[None] ** 2) / (2 * sigma[:, None].clamp_min(1e-3) ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(3, dim=0)  # [B*3, 5]
    img = F.pad(out.reshape(1, b * 3, IMAGE_SIZE, IMAGE_SIZE), (2, 2, 2, 2), mode="replicate")
    img = F.conv2d(img, kern.view(b * 3, 1, 1, 5), groups=b * 3)
    img = F.conv2d(img, kern.view(b * 3, 1, 5, 1), groups=b * 3)
    out = img.view(b, 3, IMAGE_SIZE, IMAGE_SIZE)
    c = 1 + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.3
    m = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - m) * c + m + (torch.rand(b, 1, 1, 1, generator=gen) - 0.5) * 0.1
    out = out + torch.randn(out.shape, generator=gen) * torch.rand(b, 1, 1, 1, generator=gen) * 0.06
    return out.clamp(0, 1)


def _renders(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    imgs, specs, _ = render_set(n, seed)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.tensor([s.obj for s in specs]), torch.tensor([s.style for s in specs])


@torch.no_grad()
def judge_accuracy(judge: nn.Module, n: int = 1000, seed: int = 999_999) -> tuple[float, float]:
    """(object accuracy, style accuracy) of ``judge`` on ``n`` fresh renders of set ``seed``."""
    x, yo, ys = _renders(n, seed)
    judge.eval()
    lo, ls = judge(x)
    return float((lo.argmax(1) == yo).float().mean()), float((ls.argmax(1) == ys).float().mean())


def train_judge(
    out: str | os.PathLike[str] | None = None,
    n_train: int = 12000,
    epochs: int = 6,
    batch_size: int = 64,
    seed: int = 0,
    width: int = 16,
    log: bool = True,
) -> tuple[TinyJudge, dict[str, float]]:
    """Train a judge on renders of set ``1000 + seed``; save it (safetensors) to ``out`` if given.

    Returns the judge and its held-out accuracies (2000 renders of another set).
    """
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    x, yo, ys = _renders(n_train, 1000 + seed)
    judge = TinyJudge(width)
    steps = epochs * (n_train // batch_size)
    opt = torch.optim.AdamW(judge.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    step = 0
    for ep in range(epochs):
        judge.train()
        perm = torch.randperm(n_train, generator=gen)
        for i in range(0, n_train - batch_size + 1, batch_size):
            idx = perm[i : i + batch_size]
            lo, ls = judge(augment(x[idx], gen))
            loss = F.cross_entropy(lo, yo[idx]) + F.cross_entropy(ls, ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        if log:
            print(f"[judge] epoch {ep + 1}/{epochs} loss {float(loss.detach()):.4f} ({time.time() - t0:.0f} s)", flush=True)
    judge.eval()
    acc_o, acc_s = judge_accuracy(judge, 2000, 10_000 + seed)
    metrics = {"object_accuracy": acc_o, "style_accuracy": acc_s, "train_seconds": time.time() - t0}
    if log:
        print(f"[judge] held-out object accuracy {acc_o:.4f}, style accuracy {acc_s:.4f}", flush=True)
    if out is not None:
        p = Path(out)
        with atomic_path(p) as tmp:
            state = {k: v.contiguous() for k, v in judge.state_dict().items()}
            meta = {"width": str(width), "objects": json.dumps(list(OBJECTS)), "styles": json.dumps(list(STYLES)), "metrics": dumps_strict(metrics)}
            save_file(state, str(tmp), metadata=meta)
    return judge, metrics
