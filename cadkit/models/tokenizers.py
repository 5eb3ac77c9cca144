"""A genuine CLIP BPE tokenizer built offline from a word list (no hub call).

The vocabulary holds the 256 byte-level symbols (with and without the end-of-word marker ``</w>``),
one entry per merge, and the two special tokens, exactly the layout of OpenAI's CLIP vocabulary.
Merges are made for each given word, left to right, so known words usually become one token while
any other text still tokenizes (down to single bytes).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["DEFAULT_WORDS", "write_clip_tokenizer", "make_clip_tokenizer"]

DEFAULT_WORDS: tuple[str, ...] = (
    "a", "an", "the", "of", "in", "on", "with", "and", "image", "photo", "picture", "style",
    "painting", "by", "cat", "dog", "church", "parachute", "tench", "naked", "person", "car",
)


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins that byte-level BPE uses for raw bytes, in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    table: dict[int, str] = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return [table[b] for b in range(256)]


def _words(texts: Iterable[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for text in texts:
        for w in re.findall(r"[a-z0-9]+", text.lower()):
            if w not in seen:
                seen.add(w)
                out.append(w)
    return out


def write_clip_tokenizer(
    path: str | os.PathLike[str], words: Iterable[str] = DEFAULT_WORDS, model_max_length: int = 77
) -> Path:
    """Write ``vocab.json``, ``merges.txt`` and the tokenizer config to folder ``path``."""
    from transformers import CLIPTokenizer

    symbols = _byte_symbols()
    vocab_list = symbols + [s + "</w>" for s in symbols]
    merges: list[str] = []
    known: set[str] = set(vocab_list)
    for word in _words(words):
        chars = list(word)
        chars[-1] = chars[-1] + "</w>"
        cur = chars[0]
        for nxt in chars[1:]:
            merged = cur + nxt
            if merged not in known:
                merges.append(f"{cur} {nxt}")
                vocab_list.append(merged)
                known.add(merged)
            cur = merged
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        tok = CLIPTokenizer(
            vocab=str(Path(tmp) / "vocab.json"),
            merges=str(Path(tmp) / "merges.txt"),
            model_max_length=model_max_length,
        )
        tok.save_pretrained(str(out))
    return out


def make_clip_tokenizer(words: Iterable[str] = DEFAULT_WORDS, model_max_length: int = 77):  # type: ignore[no-untyped-def]
    """Return a ``CLIPTokenizer`` built offline from ``words`` (see :func:`write_clip_tokenizer`)."""
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_clip_tokenizer(tmp, words, model_max_length)
        return CLIPTokenizer.from_pretrained(tmp)
