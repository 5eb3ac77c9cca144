"""Resolve ``--model`` (registry name, local diffusers folder or hub id) and load it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cadkit.errors import CadkitError, UsageError, bad_arg
from cadkit.models.adapters import DiffusionAdapter, adapter_class, family_of_class
from cadkit.models.registry import REGISTRY, ModelEntry, _hub_cached, shipped_path
from cadkit.outputs import hf_offline

__all__ = ["ResolvedModel", "resolve_model", "load_pipeline", "load_adapter", "pick_device", "DTYPES", "torch_dtype"]


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are and what it is."""

    spec: str
    source: str  # local folder or hub id passed to diffusers
    pipeline_class: str
    family: str
    entry: ModelEntry | None
    local: bool


def _read_index(folder: Path, spec: str, check: bool = True) -> dict[str, Any]:
    index = folder / "model_index.json"
    if not index.is_file():
        raise bad_arg("model", "a registry name, a hub id, or a diffusers folder (with model_index.json)", spec)
    try:
        data: Any = json.loads(index.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UsageError("model", f"{index} is not a readable model_index.json (not UTF-8 text)") from None
    except (OSError, ValueError) as exc:  # ValueError: malformed JSON, or a number beyond int()'s digit limit
        raise UsageError("model", f"{index} is not a readable model_index.json ({' '.join(str(exc).split())[:160]})") from None
    if not isinstance(data, dict):
        raise UsageError("model", f"{index} is not a readable model_index.json (a JSON object is expected, not a {type(data).__name__})")
    if check:
        check_components(data, folder, spec)
    return data


#: Libraries whose classes diffusers loads without running code from the model folder.
_LIBRARIES = ("diffusers", "transformers")


def check_components(index: dict[str, Any], folder: Path | None, spec: str) -> None:
    """Refuse, before any weight loads, a model whose ``model_index.json`` names custom code (a component
    whose library is a Python file of the folder, run only with diffusers' ``trust_remote_code``, which cadkit
    never passes) and one whose model or scheduler folders lack their configuration file (named, rather than
    diffusers' "no file named ..."). Needs the local ``folder`` (None: nothing to check before loading)."""
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, (list, tuple)) or len(entry) != 2 or entry[0] is None:
            continue
        lib, cls = str(entry[0]), str(entry[1])
        if folder is None:
            continue
        code = next((p for p in (folder / name / f"{lib}.py", folder / f"{lib}.py") if p.is_file()), None)
        if lib not in _LIBRARIES and code is not None:
            raise UsageError("model", f"{spec}: component {name!r} is custom code ({cls} in {code}); cadkit refuses to run code "
                             "shipped with a model (it never passes trust_remote_code: a model folder is data, not a program); "
                             "use a model whose components are diffusers and transformers classes")
        if lib not in _LIBRARIES:  # a diffusers pipeline module (safety_checker: stable_diffusion), not loaded by cadkit
            continue
        need = "scheduler_config.json" if cls.endswith("Scheduler") else "config.json" if lib == "diffusers" or cls.endswith(("Model", "ModelWithProjection")) else None
        if need is not None and not (folder / name / need).is_file():
            raise UsageError("model", f"{folder / name / need} is missing: {spec} is not a complete diffusers folder "
                             f"(model_index.json names {name} = {lib}.{cls})")


def _family(index: dict[str, Any], spec: str) -> tuple[str, str]:
    cls = str(index.get("_class_name", ""))
    families = family_of_class()
    fam = families.get(cls)
    if fam is None:
        raise bad_arg("model", "a pipeline of family " + ", ".join(f"{v} ({k})" for k, v in families.items()), f"{spec} ({cls or 'unknown class'})")
    return cls, fam


def _not_available(spec: str, hub_id: str, why: str = "") -> CadkitError:
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    extra = f" ({why})" if why else ""
    return CadkitError(
        f"{spec!r} ({hub_id}) is not available: not a local folder and not in the Hugging Face cache "
        f"under {cache}, and the hub could not be reached{extra}; download it on a connected machine "
        f"(`huggingface-cli download {hub_id}`) or pass a local diffusers folder instead", param="model",
    )


def resolve_model(spec: str) -> ResolvedModel:
    """Resolve ``spec`` without loading weights; one-line errors for anything unusable."""
    spec = str(spec).strip()
    if not spec:
        raise bad_arg("model", "a registry name (" + ", ".join(REGISTRY) + "), a hub id or a folder", spec)
    entry = REGISTRY.get(spec)
    if entry is not None and entry.shipped is not None:
        folder = shipped_path(entry)
        if folder is None or not (folder / "model_index.json").exists():
            raise CadkitError(f"{spec!r} is not shipped in this install ({folder})", param="model")
        cls, fam = _family(_read_index(folder, spec), spec)
        return ResolvedModel(spec, str(folder), cls, fam, entry, True)
    path = Path(spec).expanduser()
    if entry is None and (path.exists() or spec.startswith((".", "/", "~"))):
        if not path.is_dir():
            raise bad_arg("model", "a diffusers pipeline folder (with model_index.json)", spec)
        cls, fam = _family(_read_index(path, spec), spec)
        return ResolvedModel(spec, str(path), cls, fam, None, True)
    if entry is None and spec.count("/") != 1:
        raise bad_arg("model", "a registry name (" + ", ".join(REGISTRY) + "), a hub id (owner/name) or a diffusers folder", spec)
    hub_id = entry.hub_id if entry else spec
    revision = entry.revision if entry else None
    cached = _hub_cached(hub_id, revision)
    if cached is not None:
        cls, fam = _family(_read_index(cached, spec, check=False), spec)  # a partial download: not available (exit 1) at load
        return ResolvedModel(spec, hub_id, cls, fam, entry, True)
    if hf_offline():
        raise _not_available(spec, hub_id, "HF_HUB_OFFLINE is set")
    try:
        from huggingface_hub import hf_hub_download

        got = hf_hub_download(hub_id, "model_index.json", revision=revision)
    except Exception as exc:  # any hub client failure becomes one line
        raise _not_available(spec, hub_id, type(exc).__name__) from None
    try:
        index = json.loads(Path(got).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # UnicodeDecodeError included
        raise UsageError("model", f"{hub_id}: its model_index.json is not readable JSON text") from None
    if not isinstance(index, dict):
        raise UsageError("model", f"{hub_id}: its model_index.json is not a JSON object")
    cls, fam = _family(index, spec)
    return ResolvedModel(spec, hub_id, cls, fam, entry, False)


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device:
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise bad_arg("device", "cpu, cuda, cuda:N or mps", device) from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise bad_arg("device", "a device present on this machine (cpu)", device)
        return dev
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: Weight dtypes a command line may name.
DTYPES = ("fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """The torch dtype named ``dtype`` (one of :data:`DTYPES` or its long name)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise bad_arg("dtype", DTYPES, dtype)
    return _DTYPES[dtype]


def load_pipeline(spec: str | ResolvedModel, dtype: str | torch.dtype = "fp32", device: str | torch.device | None = None) -> Any:
    """Load the diffusers pipeline for ``spec`` (no safety checker), on ``device``."""
    from diffusers import DiffusionPipeline

    resolved = spec if isinstance(spec, ResolvedModel) else resolve_model(spec)
    kwargs: dict[str, Any] = {"torch_dtype": torch_dtype(dtype)}
    if resolved.family == "sd":
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if resolved.entry is not None and resolved.entry.revision and not Path(resolved.source).exists():
        kwargs["revision"] = resolved.entry.revision
    try:
        import warnings

        from diffusers.utils import logging as dlog
        from transformers.utils import logging as tlog

        dlog.disable_progress_bar()
        tlog.disable_progress_bar()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            pipe = DiffusionPipeline.from_pretrained(resolved.source, local_files_only=resolved.local, **kwargs)
    except CadkitError:
        raise
    except Exception as exc:
        if not Path(resolved.source).exists():
            raise _not_available(resolved.spec, resolved.source, type(exc).__name__) from None
        raise CadkitError(f"could not load {resolved.spec!r} from {resolved.source}: {_load_failure(exc)}", param="model") from None
    pipe.set_progress_bar_config(disable=True)
    pipe._cadkit_spec = resolved.spec
    pipe._cadkit_revision = kwargs.get("revision")
    if device is not None:
        pipe.to(device)
    return pipe


def _load_failure(exc: BaseException) -> str:
    """A loader's exception as one line that names the missing file (diffusers: "no file named X found in
    directory D") and never passes on advice to run a model's code (``trust_remote_code=True``)."""
    import re

    text = " ".join(str(exc).split())
    missing = re.search(r"no file named (\S+?) found in directory (\S+?)\.?(?:\s|$)", text)
    if missing:
        return f"{Path(missing.group(2)) / missing.group(1)} is missing"
    if "trust_remote_code" in text or "custom code" in text:
        return "the folder holds custom code, which cadkit refuses to run (it never passes trust_remote_code)"
    return f"{type(exc).__name__}: {text[:300]}"


def load_adapter(spec: str | ResolvedModel, dtype: str | torch.dtype = "fp32", device: str | torch.device | None = None) -> DiffusionAdapter:
    """Resolve, load and wrap ``spec`` in its family adapter."""
    resolved = spec if isinstance(spec, ResolvedModel) else resolve_model(spec)
    cls = adapter_class(resolved.pipeline_class)
    if cls is None:
        raise bad_arg("model", "a pipeline of family " + ", ".join(family_of_class().values()), f"{resolved.spec} ({resolved.pipeline_class})")
    pipe = load_pipeline(resolved, dtype=dtype, device=device)
    adapter = cls(pipe)
    adapter.spec = resolved.spec  # type: ignore[attr-defined]
    return adapter


def adapter_from_pipeline(pipe: Any) -> DiffusionAdapter:
    """Wrap an already loaded pipeline in its adapter."""
    cls = adapter_class(type(pipe).__name__)
    if cls is None:
        raise bad_arg("pipe", "a supported diffusers pipeline", type(pipe).__name__)
    return cls(pipe)


__all__ += ["adapter_from_pipeline"]
