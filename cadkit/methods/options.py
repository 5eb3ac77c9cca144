"""Typed method options (the helpers live in :mod:`cadkit.typed_options`, shared with the attacks' options)."""

from __future__ import annotations

from cadkit.typed_options import (
    check_once,
    choice,
    count,
    describe_options,
    flag,
    number,
    options_dict,
    parse_option_text,
    parse_options,
    text,
    texts,
)

__all__ = ["number", "count", "choice", "text", "texts", "flag", "parse_options", "options_dict", "parse_option_text", "describe_options", "check_once"]
