"""Expected peak memory of attribution per model and group, from parameter counts and a meta-device forward.

    python -m benchmarks.perf.memory_table [sd14 sd21 sdxl sd35 sd35-large flux-dev]

Prints one JSON row per (model, group), then the markdown table of the README. Peak = weights
(bf16, 2 B/param) + fp32 gradient accumulator (4 B per group param) + per-step gradient (2 B per
group param) + activations (batch 1, native resolution).

Activations: one forward at native resolution, batch 1, bf16, on the meta device (no memory, no
compute), with only the group's weights requiring grad; every tensor autograd saves for backward is
counted once (by storage) through saved_tensors_hooks. Attention is replaced by a flash-like
autograd function that saves q, k, v, out and the fp32 log-sum-exp (what PyTorch's flash /
memory-efficient SDPA kernels keep on GPU), not the L x L matrix.
Gradient checkpointing (diffusers' units: ResnetBlock2D, BasicTransformerBlock, JointTransformerBlock,
Flux(Single)TransformerBlock): what is saved outside the units + every unit's inputs + the largest
single unit's internal saved tensors (one unit is recomputed at a time in backward).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import torch
import torch.nn.functional as F

from cadkit.models.adapters.flux import flux_groups
from cadkit.models.adapters.sd import unet_groups
from cadkit.models.adapters.sd3 import mmdit_groups

BF16 = torch.bfloat16


class FlashLike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v):  # type: ignore[override]
        out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        q, k, v, _, _ = ctx.saved_tensors
        return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):  # noqa: ARG001
    return FlashLike.apply(query, key, value)


F.scaled_dot_product_attention = sdpa  # type: ignore[assignment]

UNITS = ("ResnetBlock2D", "BasicTransformerBlock", "JointTransformerBlock", "FluxTransformerBlock", "FluxSingleTransformerBlock")


def unet(kind: str):
    from diffusers import UNet2DConditionModel

    if kind == "sd14":
        cfg = dict(block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8, sample_size=64)
    elif kind == "sd21":
        cfg = dict(block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20),
                   use_linear_projection=True, sample_size=96)
    else:
        cfg = dict(block_out_channels=(320, 640, 1280), cross_attention_dim=2048, attention_head_dim=(5, 10, 20),
                   use_linear_projection=True, sample_size=128, transformer_layers_per_block=(1, 2, 10),
                   down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                   up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                   addition_embed_type="text_time", addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
    return UNet2DConditionModel(**cfg)


def sd3(kind: str):
    from diffusers import SD3Transformer2DModel

    if kind == "sd35":
        return SD3Transformer2DModel(sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
                                     num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536,
                                     pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=384,
                                     dual_attention_layers=tuple(range(13)), qk_norm="rms_norm")
    return SD3Transformer2DModel(sample_size=128, patch_size=2, in_channels=16, num_layers=38, attention_head_dim=64,
                                 num_attention_heads=38, joint_attention_dim=4096, caption_projection_dim=2432,
                                 pooled_projection_dim=2048, out_channels=16, pos_embed_max_size=192, qk_norm="rms_norm")


def flux():
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                                  num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                                  guidance_embeds=True, axes_dims_rope=(16, 56, 56))


def encoders_params(kind: str) -> int:
    """Text encoders + VAE parameter count (config-built on meta)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    def clip(h, layers, heads, inter, proj=None):
        cfg = CLIPTextConfig(hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=inter,
                             vocab_size=49408, max_position_embeddings=77, projection_dim=proj or h)
        return CLIPTextModelWithProjection(cfg) if proj else CLIPTextModel(cfg)

    def t5xxl():
        return T5EncoderModel(T5Config(vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                                       feed_forward_proj="gated-gelu"))

    lat = 16 if kind in ("sd35", "sd35-large", "flux-dev") else 4
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), latent_channels=lat, layers_per_block=2,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    mods: list[Any] = [vae]
    L, G, H = (768, 12, 12, 3072), (1280, 32, 20, 5120), (1024, 23, 16, 4096)
    if kind == "sd14":
        mods += [clip(*L)]
    elif kind == "sd21":
        mods += [clip(*H)]
    elif kind == "sdxl":
        mods += [clip(*L), clip(*G, proj=1280)]
    elif kind in ("sd35", "sd35-large"):
        mods += [clip(*L, proj=768), clip(*G, proj=1280), t5xxl()]
    else:
        mods += [clip(*L), t5xxl()]
    return sum(p.numel() for m in mods for p in m.parameters())


def inputs(kind: str, model):
    if kind in ("sd14", "sd21", "sdxl"):
        s = model.config.sample_size
        x = torch.empty(1, 4, s, s, dtype=BF16)
        ctx = torch.empty(1, 77, model.config.cross_attention_dim, dtype=BF16)
        kw = {}
        if kind == "sdxl":
            kw["added_cond_kwargs"] = {"text_embeds": torch.empty(1, 1280, dtype=BF16), "time_ids": torch.empty(1, 6, dtype=BF16)}
        return (x, torch.tensor([500.0])), dict(encoder_hidden_states=ctx, **kw)
    if kind in ("sd35", "sd35-large"):
        return (), dict(hidden_states=torch.empty(1, 16, 128, 128, dtype=BF16), timestep=torch.tensor([500.0]),
                        encoder_hidden_states=torch.empty(1, 77 + 256, 4096, dtype=BF16),
                        pooled_projections=torch.empty(1, 2048, dtype=BF16))
    n_img, n_txt = 64 * 64, 512
    return (), dict(hidden_states=torch.empty(1, n_img, 64, dtype=BF16), timestep=torch.tensor([0.5], dtype=BF16),
                    guidance=torch.tensor([3.5]), pooled_projections=torch.empty(1, 768, dtype=BF16),
                    encoder_hidden_states=torch.empty(1, n_txt, 4096, dtype=BF16),
                    txt_ids=torch.zeros(n_txt, 3), img_ids=torch.zeros(n_img, 3))


def tensor_bytes(t: torch.Tensor) -> int:
    return t.untyped_storage().nbytes() if t.device.type != "meta" else t.numel() * t.element_size()


def measure(kind: str, model, preds, group: str) -> dict[str, float]:
    model.requires_grad_(False)
    for n, p in model.named_parameters():
        if preds[group](n, p):
            p.requires_grad_(True)
    seen: set[int] = set()
    state: dict[str, Any] = {"unit": None, "outside": 0, "unit_inputs": 0}
    per_unit: dict[str, int] = {}

    def key(t: torch.Tensor) -> int:
        return hash((t.shape, t.stride(), t.dtype, id(t))) if t.device.type == "meta" else t.untyped_storage().data_ptr()

    def pack(t: torch.Tensor):
        if isinstance(t, torch.nn.Parameter) or (t.requires_grad and t.is_leaf):
            return t
        base = t._base if t._base is not None else t
        k = id(base)
        if k not in seen:
            seen.add(k)
            b = base.numel() * base.element_size()
            if state["unit"] is None:
                state["outside"] += b
            else:
                per_unit[state["unit"]] = per_unit.get(state["unit"], 0) + b
        return t

    hooks = []
    for name, m in model.named_modules():
        if type(m).__name__ in UNITS:
            def pre(mod, args, kwargs, name=name):
                if state["unit"] is None:
                    state["unit"] = name
                    ts = [a for a in list(args) + list(kwargs.values()) if isinstance(a, torch.Tensor)]
                    state["unit_inputs"] += sum(t.numel() * t.element_size() for t in ts if t.dim() >= 3)

            def post(mod, args, kwargs, out, name=name):
                if state["unit"] == name:
                    state["unit"] = None

            hooks.append(m.register_forward_pre_hook(pre, with_kwargs=True))
            hooks.append(m.register_forward_hook(post, with_kwargs=True))
    with torch.device("meta"):
        args, kw = inputs(kind, model)
    keep: list[Any] = []

    def save(t: torch.Tensor) -> Any:
        keep.append(t)
        return pack(t)

    with torch.autograd.graph.saved_tensors_hooks(save, lambda t: t):
        out = model(*args, **kw, return_dict=False)[0]
    for h in hooks:
        h.remove()
    full = state["outside"] + sum(per_unit.values())
    ckpt = state["outside"] + state["unit_inputs"] + (max(per_unit.values()) if per_unit else 0)
    return {"act": full, "act_ckpt": ckpt, "out": out.numel() * out.element_size()}


def main() -> None:
    kinds = sys.argv[1:] or ["sd14", "sd21", "sdxl", "sd35", "sd35-large", "flux-dev"]
    rows = []
    for kind in kinds:
        with torch.device("meta"):
            if kind in ("sd14", "sd21", "sdxl"):
                model, preds, groups = unet(kind), unet_groups(), ("ff", "attn1", "attn2", "all")
            elif kind.startswith("sd35"):
                model, preds, groups = sd3("sd35" if kind == "sd35" else "large"), mmdit_groups(), ("ff", "ff_context", "attn", "all")
            else:
                model, preds, groups = flux(), flux_groups(), ("ff", "ff_context", "attn", "all")
            model = model.to(BF16)
            enc = encoders_params(kind)
        total = sum(p.numel() for p in model.parameters())
        largest = max(p.numel() for p in model.parameters())
        for g in groups:
            n_g = sum(p.numel() for n, p in model.named_parameters() if preds[g](n, p))
            big_g = max(p.numel() for n, p in model.named_parameters() if preds[g](n, p))
            m = measure(kind, model, preds, g)
            rows.append({"model": kind, "group": g, "params": total, "group_params": n_g, "encoders_vae": enc,
                         "largest_group_param": big_g, "largest": largest, **m})
            print(json.dumps(rows[-1]), flush=True)
    print_table(rows)


NAMES = {"sd14": "sd14 (512 px)", "sd21": "sd21 (768 px)", "sdxl": "sdxl (1024 px)", "sd35": "sd35 (1024 px)",
         "sd35-large": "sd35-large (1024 px)", "flux-dev": "flux-dev (1024 px)"}


def print_table(rows: list[dict]) -> None:  # type: ignore[type-arg]
    """The README's markdown table (GiB)."""
    gib = 2**30
    print("| model | group | denoiser params | group params | weights bf16 | fp32 accumulator | per-step grad (bf16) "
          "| activations | activations, checkpointing | **peak** | **peak, checkpointing** | text encoders + VAE (bf16) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    last = None
    for r in rows:
        p, pg = r["params"], r["group_params"]
        w, acc, gr = 2 * p, 4 * pg, 2 * pg
        act, ack = r["act"], r["act_ckpt"]
        m = NAMES.get(r["model"], r["model"]) if r["model"] != last else ""
        last = r["model"]
        enc = f"{2 * r['encoders_vae'] / gib:.1f}" if m else ""
        print(f"| {m} | {r['group']} | {p / 1e9:.2f} B | {pg / 1e6:,.0f} M | {w / gib:.1f} | {acc / gib:.1f} | {gr / gib:.1f} "
              f"| {act / gib:.1f} | {ack / gib:.1f} | **{(w + acc + gr + act) / gib:.1f}** | **{(w + acc + gr + ack) / gib:.1f}** | {enc} |")


if __name__ == "__main__":
    main()
