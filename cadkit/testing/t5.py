"""A genuine T5 (SentencePiece-Unigram) tokenizer built offline from a word list (no hub call).

The vocabulary follows T5's layout: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then the pieces.
Pieces are the word-boundary marker ``▁``, every lower-case letter and digit (alone and after
``▁``) and one piece ``▁word`` per given word. Unigram scores make a known word a single token
(score -1) while any other lower-case text still tokenizes, character by character (score -10 per
character); characters outside the alphabet become ``<unk>``. ``</s>`` is appended to every
sequence, exactly as the real T5 tokenizer does.
"""

from __future__ import annotations

import os
import re
import string
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cadkit.testing.tokenizer import DEFAULT_WORDS

__all__ = ["t5_vocab", "write_t5_tokenizer", "make_t5_tokenizer"]

_MARK = "\u2581"  # SentencePiece's word-boundary marker "▁"


def t5_vocab(words: Iterable[str] = DEFAULT_WORDS) -> list[tuple[str, float]]:
    """``(piece, log-probability)`` pairs in id order: specials, marker, characters, then words."""
    vocab: list[tuple[str, float]] = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), (_MARK, -2.0)]
    seen = {p for p, _ in vocab}
    for ch in string.ascii_lowercase + string.digits:
        for piece in (ch, _MARK + ch):
            if piece not in seen:
                seen.add(piece)
                vocab.append((piece, -10.0))
    for text in words:
        for w in re.findall(r"[a-z0-9]+", text.lower()):
            piece = _MARK + w
            if piece not in seen:
                seen.add(piece)
                vocab.append((piece, -1.0))
    return vocab


def write_t5_tokenizer(
    path: str | os.PathLike[str], words: Iterable[str] = DEFAULT_WORDS, model_max_length: int = 256
) -> Path:
    """Write a ``T5Tokenizer`` (``tokenizer.json`` + config) for ``words`` to folder ``path``."""
    from transformers import T5Tokenizer

    tok = T5Tokenizer(vocab=t5_vocab(words), extra_ids=0, model_max_length=model_max_length)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out))
    return out


def make_t5_tokenizer(words: Iterable[str] = DEFAULT_WORDS, model_max_length: int = 256) -> Any:
    """Return a ``T5Tokenizer`` built offline from ``words`` (see :func:`write_t5_tokenizer`)."""
    from transformers import T5Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_t5_tokenizer(tmp, words, model_max_length)
        return T5Tokenizer.from_pretrained(tmp)
