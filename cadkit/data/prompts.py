"""Prompt files of the paper's benchmarks, read into one record type with schema checks.

Formats (``format=`` names; ``"auto"`` detects them from the header's columns):

* ``imagenette``  -- ``case_number, prompt, class, evaluation_seed`` (object suites);
* ``i2p``         -- I2P: an unnamed index column, ``prompt, categories, ..., evaluation_seed,
  evaluation_guidance, ..., case_number``; ``categories`` is a comma-separated list;
  the hub dataset ``AIML-TUDA/i2p`` is read when it is given as the path (needs ``datasets``
  and a network connection);
* ``mma``         -- MMA-Diffusion: the ``adv_prompt`` column (``target_prompt`` is kept in ``extra``);
* ``ring-a-bell`` -- one prompt per line without a header, or the ``sensitive prompt`` column of
  the pairs CSV (``sensitive prompt, normal prompt``);
* ``coco``        -- COCO-30k: ``image_id, source, prompt, evaluation_seed`` or
  ``case_number, source, prompt, evaluation_seed, coco_id``;
* ``artists``     -- ``[index,] [case_number,] prompt, evaluation_seed, artist``;
* ``csv``         -- any CSV with a ``prompt`` column (optional ``evaluation_seed``,
  ``evaluation_guidance``, ``case_number``), e.g. the UnlearnDiff attack prompt files.

Without a file, :func:`class_prompts` makes ImageNette-style rows from class names and a template.

Seed policies: ``fixed`` gives every prompt ``fixed_seed`` (the official code's seed 0) and no
per-row guidance; ``per-row`` takes each row's ``evaluation_seed`` and ``evaluation_guidance``.
``auto`` picks the protocol's default for the format (:data:`DEFAULT_SEED_POLICY`).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cadkit.errors import CadkitError, bad_arg
from cadkit.typed_options import MAX_SEED

from .textfiles import (
    I2P_HUB_ID,
    normalise_header,
    parse_float,
    parse_int,
    read_csv,
    read_hub_i2p,
    read_lines,
    read_text,
)

__all__ = [
    "PromptRecord",
    "FORMATS",
    "SEED_POLICIES",
    "ROW_OR_FIXED",
    "DEFAULT_SEED_POLICY",
    "I2P_HUB_ID",
    "DEFAULT_TEMPLATE",
    "load_prompts",
    "prompt_file_format",
    "detect_format",
    "class_prompts",
]

FORMATS: tuple[str, ...] = ("imagenette", "i2p", "mma", "ring-a-bell", "coco", "artists", "csv")
SEED_POLICIES: tuple[str, ...] = ("fixed", "per-row")
#: Seed policy of ``cadkit generate``: each row's ``evaluation_seed`` when the file has the column, else ``fixed_seed``.
ROW_OR_FIXED = "per-row-or-fixed"
#: Largest seed a file row may give (torch generators take 63-bit seeds; the ``--seed`` flags' bound).
# As the official CAD code: the nudity suites use seed 0 for every prompt; the others each row's seed.
DEFAULT_SEED_POLICY: dict[str, str] = {
    "imagenette": "per-row",
    "i2p": "fixed",
    "mma": "fixed",
    "ring-a-bell": "fixed",
    "coco": "per-row",
    "artists": "per-row",
    "csv": "per-row",
    "classes": "per-row",
}
DEFAULT_TEMPLATE = "an image of a {class}"

_FORMAT_HELP = (
    "imagenette: prompt,class,evaluation_seed; i2p: prompt,categories,...; mma: adv_prompt; "
    "ring-a-bell: one prompt per line (.txt or --prompts-format ring-a-bell) or 'sensitive prompt'; "
    "coco: image_id|coco_id,prompt,evaluation_seed; artists: prompt,evaluation_seed,artist; csv: prompt"
)
# The column that holds the prompt text, per format.
_PROMPT_COLUMN = {"mma": "adv_prompt", "ring-a-bell": "sensitive prompt"}
# Columns a format must have (besides its prompt column).
_REQUIRED = {"imagenette": ("class",), "i2p": ("categories",), "artists": ("artist",)}
_MAPPED = {"prompt", "evaluation_seed", "evaluation_guidance", "class", "artist", "categories", "case_number"}


@dataclass
class PromptRecord:
    """One prompt to generate from.

    ``index`` is the row's 0-based position in its file (unique; kept through filters), ``seed``
    and ``guidance`` are what the seed policy resolved (``guidance`` None = the suite's default),
    ``cls`` the object class, ``artist`` the artist, ``categories`` the I2P categories,
    ``case_number`` the file's own row id (int when numeric), ``extra`` every other column as text.
    """

    index: int
    prompt: str
    seed: int
    guidance: float | None = None
    cls: str | None = None
    artist: str | None = None
    categories: list[str] = field(default_factory=list)
    case_number: int | str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields (copies of the list and dict)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PromptRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)


def _is_index_column(name: str) -> bool:
    return name == "" or name.startswith("Unnamed:")


def detect_format(columns: Sequence[str]) -> str | None:
    """The format a CSV header belongs to, or None when it has no prompt column."""
    cols = set(columns)
    if "adv_prompt" in cols:
        return "mma"
    if "sensitive prompt" in cols:
        return "ring-a-bell"
    if "prompt" not in cols:
        return None
    if "categories" in cols:
        return "i2p"
    if "class" in cols:
        return "imagenette"
    if "artist" in cols:
        return "artists"
    if "image_id" in cols or "coco_id" in cols:
        return "coco"
    return "csv"


def _schema_error(path: object, need: str, columns: Sequence[str]) -> CadkitError:
    shown = ", ".join(repr(c) if _is_index_column(c) else c for c in columns) or "none"
    return bad_arg("prompts", f"a CSV with {need} (formats: {_FORMAT_HELP})", f"{path} (columns: {shown})")


def _case_number(value: str) -> int | str | None:
    v = value.strip()
    if v == "":
        return None
    n = parse_int(v)
    return n if n is not None and str(n) == v else v


def _match_names(arg: str, wanted: Iterable[str], known: Sequence[str]) -> set[str]:
    """Map user names onto the file's spelling (exact, else case-insensitive); unknown -> error."""
    by_lower = {k.lower(): k for k in known}
    out = set()
    for w in wanted:
        w = w.strip()
        if w in known:
            out.add(w)
        elif w.lower() in by_lower:
            out.add(by_lower[w.lower()])
        else:
            raise bad_arg(arg, sorted(known), w)
    return out


def _split_list(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    items = [s.strip() for s in items if s.strip()]
    return items


def _records_from_lines(text: str) -> list[PromptRecord]:
    """One prompt per non-blank line (no header); a line that is one quoted CSV field is unquoted."""
    lines = read_lines(text)
    return [PromptRecord(index=i, prompt=ln, seed=0) for i, ln in enumerate(lines)]


def _records_from_rows(fmt: str, header: list[str], rows: list[dict[str, str]], path: object) -> list[PromptRecord]:
    prompt_col = _PROMPT_COLUMN.get(fmt, "prompt")
    if prompt_col not in header:
        raise _schema_error(path, f"a '{prompt_col}' column", header)
    for col in _REQUIRED.get(fmt, ()):
        if col not in header:
            raise _schema_error(path, f"a '{col}' column for format {fmt}", header)
    records: list[PromptRecord] = []
    for i, row in enumerate(rows):
        extra: dict[str, Any] = {
            k: v for k, v in row.items() if not _is_index_column(k) and k != prompt_col and k not in _MAPPED
        }
        if fmt == "coco":
            cid = parse_int(row.get("coco_id", row.get("image_id", "")))
            if cid is not None:
                extra["coco_id"] = cid
        cats = [c.strip() for c in row.get("categories", "").split(",") if c.strip()]
        records.append(
            PromptRecord(
                index=i,
                prompt=row[prompt_col],
                seed=0,
                cls=row["class"].strip() if "class" in row else None,
                artist=row["artist"].strip() if "artist" in row else None,
                categories=cats,
                case_number=_case_number(row.get("case_number", "")),
                extra=extra,
            )
        )
    return records


def _apply_seeds(
    records: list[PromptRecord],
    header: list[str],
    rows: list[dict[str, str]] | None,
    policy: str,
    fixed_seed: int,
    path: object,
) -> None:
    if policy == ROW_OR_FIXED:
        policy = "per-row" if rows is not None and "evaluation_seed" in header else "fixed"
    if policy == "fixed":
        for r in records:
            r.seed, r.guidance = fixed_seed, None
        return
    if rows is None or "evaluation_seed" not in header:
        raise bad_arg("seed_policy", "fixed for a prompt file without an 'evaluation_seed' column", policy)
    # a file's numbers follow the rules of the flags they stand for (--seed, --guidance): finite, in range
    for r in records:
        row = rows[r.index]
        seed = parse_int(row["evaluation_seed"])
        if seed is None or not 0 <= seed <= MAX_SEED:
            raise bad_arg(
                "prompts",
                "an integer 'evaluation_seed' from 0 to 2**63 - 1 in every row",
                f"{path} row {r.index}: {_cut(row['evaluation_seed'])!r}",
            )
        r.seed = seed
        g = row.get("evaluation_guidance")
        if g is not None and g.strip():
            gv = parse_float(g)
            if gv is None or not math.isfinite(gv) or gv < 0:
                raise bad_arg("prompts", "a finite number >= 0 in 'evaluation_guidance'", f"{path} row {r.index}: {_cut(g)!r}")
            r.guidance = gv
        else:
            r.guidance = None


def _cut(text: str, n: int = 40) -> str:
    """``text`` cut to ``n`` characters for a one-line message (a 5,000-digit seed stays readable)."""
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def _positive(arg: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise bad_arg(arg, "a positive integer", value)


def _is_hub_i2p(path: str | os.PathLike[str]) -> bool:
    """``path`` names the hub dataset (and no local file of that name exists)."""
    return not Path(path).exists() and str(path).strip().lower() in (I2P_HUB_ID.lower(), f"hub:{I2P_HUB_ID.lower()}")


def _file_format(p: Path, first: list[str], format: str) -> str:
    if format != "auto":
        return format
    detected = detect_format(normalise_header(first))
    if detected is None and p.suffix.lower() == ".txt":
        return "ring-a-bell"
    if detected is None:
        raise _schema_error(p, "a 'prompt' column", first)
    return detected


def prompt_file_format(path: str | os.PathLike[str], format: str = "auto") -> str:
    """The format :func:`load_prompts` reads ``path`` as (``format`` unless it is ``"auto"``)."""
    if format != "auto":
        return format
    p = Path(path)
    if _is_hub_i2p(path):
        return "i2p"
    text = read_text(p)
    first = next(csv.reader([text.splitlines()[0]]), []) if text.strip() else []
    return _file_format(p, first, format)


def load_prompts(
    path: str | os.PathLike[str],
    format: str = "auto",
    seed_policy: str = "auto",
    fixed_seed: int = 0,
    limit: int | None = None,
    categories: str | Sequence[str] | None = None,
    classes: str | Sequence[str] | None = None,
    artists: str | Sequence[str] | None = None,
    per_class: int | None = None,
) -> list[PromptRecord]:
    """Read a prompt file (or the hub's I2P when ``path`` is ``"AIML-TUDA/i2p"``) into records.

    Filters apply in this order: ``categories`` (I2P rows having any of them), ``classes`` and
    ``artists`` (rows of those names; comma string or list; matched exactly, else ignoring case),
    ``per_class`` (first N rows of each class), then ``limit`` (first N rows). Records keep the
    file's order and their file row ``index``. Bad input raises a one-line :class:`CadkitError`.
    """
    if format != "auto" and format not in FORMATS:
        raise bad_arg("prompts_format", ("auto", *FORMATS), format)
    if seed_policy != "auto" and seed_policy not in (*SEED_POLICIES, ROW_OR_FIXED):
        raise bad_arg("seed_policy", ("auto", *SEED_POLICIES), seed_policy)
    _positive("limit", limit)
    _positive("images_per_class", per_class)
    p = Path(path)
    rows: list[dict[str, str]] | None
    if _is_hub_i2p(path):
        header, rows = read_hub_i2p()
        fmt = "i2p"
        records = _records_from_rows(fmt, header, rows, I2P_HUB_ID)
    else:
        text = read_text(p)
        if not text.strip():
            raise bad_arg("prompts", "a prompt file with at least one prompt", f"{path} (empty)")
        first = next(csv.reader([text.splitlines()[0]]), [])
        fmt = _file_format(p, first, format)
        if fmt == "ring-a-bell" and "sensitive prompt" not in [h.strip() for h in first]:
            header, rows = [], None
            records = _records_from_lines(text)
        else:
            header, rows = read_csv(text, p)
            records = _records_from_rows(fmt, header, rows, p)
    if not records:
        raise bad_arg("prompts", "a prompt file with at least one prompt", f"{path} (no rows)")
    policy = DEFAULT_SEED_POLICY[fmt] if seed_policy == "auto" else seed_policy
    _apply_seeds(records, header, rows, policy, fixed_seed, path)

    wanted = _split_list(categories)
    if wanted:
        if "categories" not in header:
            raise bad_arg("categories", "a prompt file with a 'categories' column (I2P)", f"{path} ({fmt} format)")
        known = sorted({c for r in records for c in r.categories})
        keep = _match_names("categories", wanted, known)
        records = [r for r in records if keep.intersection(r.categories)]
    for arg, col, attr, value in (("classes", "class", "cls", classes), ("artists", "artist", "artist", artists)):
        names = _split_list(value)
        if names:
            if col not in header:
                raise bad_arg(arg, f"a prompt file with the '{col}' column", f"{path} ({fmt} format)")
            known = sorted({getattr(r, attr) for r in records})
            keep = _match_names(arg, names, known)
            records = [r for r in records if getattr(r, attr) in keep]
    if per_class is not None:
        if "class" not in header:
            raise bad_arg("images_per_class", "a prompt file with a 'class' column", f"{path} ({fmt} format)")
        seen: dict[str | None, int] = {}
        kept = []
        for r in records:
            seen[r.cls] = seen.get(r.cls, 0) + 1
            if seen[r.cls] <= per_class:
                kept.append(r)
        records = kept
    if limit is not None:
        records = records[:limit]
    return records


def _class_seed(template: str, cls: str, i: int, base_seed: int) -> int:
    digest = hashlib.sha256(f"{base_seed}\x1f{template}\x1f{cls}\x1f{i}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def class_prompts(
    classes: str | Sequence[str],
    per_class: int,
    template: str = DEFAULT_TEMPLATE,
    base_seed: int = 0,
    seed_policy: str = "per-row",
    fixed_seed: int = 0,
) -> list[PromptRecord]:
    """ImageNette-style rows without a file: ``per_class`` rows per class, class by class.

    The prompt is ``template`` with ``{class}`` replaced by the class name. Per-row seeds are
    deterministic: the first 31 bits of SHA-256 of ``(base_seed, template, class, j)``, with a
    seed already used in that class skipped, so each class's seeds do not depend on the other
    classes or their order and no two rows of a class share a seed. ``case_number`` counts rows.
    """
    names = _split_list(classes) or []
    if not names:
        raise bad_arg("classes", "one or more class names", classes)
    if len(set(names)) != len(names):
        raise bad_arg("classes", "class names without repeats", ",".join(names))
    _positive("images_per_class", per_class)
    if "{class}" not in template:
        raise bad_arg("template", "a prompt template containing '{class}'", template)
    if seed_policy not in SEED_POLICIES:
        raise bad_arg("seed_policy", SEED_POLICIES, seed_policy)
    records: list[PromptRecord] = []
    for cls in names:
        used: set[int] = set()
        j = 0
        while len(used) < per_class:
            s = _class_seed(template, cls, j, base_seed)
            j += 1
            if s in used:
                continue
            used.add(s)
            n = len(records)
            seed = s if seed_policy == "per-row" else fixed_seed
            records.append(
                PromptRecord(index=n, prompt=template.replace("{class}", cls), seed=seed, cls=cls, case_number=n)
            )
    return records
