"""The offline CLIP tokenizer of the test kit (it lives in :mod:`cadkit.models.tokenizers`, where the
embedded model's training code uses it too)."""

from cadkit.models.tokenizers import DEFAULT_WORDS, make_clip_tokenizer, write_clip_tokenizer

__all__ = ["DEFAULT_WORDS", "write_clip_tokenizer", "make_clip_tokenizer"]
