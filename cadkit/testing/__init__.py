"""Offline test kit: config-built tiny pipelines and a CLIP tokenizer made without the hub."""

from cadkit.testing.pipelines import TINY_FAMILIES, build_tiny_pipeline, save_tiny_pipeline
from cadkit.testing.t5 import make_t5_tokenizer, write_t5_tokenizer
from cadkit.testing.tokenizer import make_clip_tokenizer, write_clip_tokenizer

__all__ = ["TINY_FAMILIES", "build_tiny_pipeline", "save_tiny_pipeline", "make_clip_tokenizer", "write_clip_tokenizer", "make_t5_tokenizer", "write_t5_tokenizer"]
