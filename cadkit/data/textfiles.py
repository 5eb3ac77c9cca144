"""Reading prompt files as text: CSV rows with normalised headers, plain lines, the I2P hub dataset.

Every failure is a one-line :class:`cadkit.errors.CadkitError` naming the ``prompts`` parameter.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from cadkit.errors import CadkitError, bad_arg
from cadkit.outputs import hf_offline

__all__ = [
    "ALIASES",
    "I2P_HUB_ID",
    "normalise_header",
    "read_text",
    "read_csv",
    "read_lines",
    "read_hub_i2p",
    "parse_int",
    "parse_float",
    "unquote",
]

I2P_HUB_ID = "AIML-TUDA/i2p"

# Other spellings of the seed and guidance columns (the I2P hub dataset uses sd_*).
ALIASES = {
    "sd_seed": "evaluation_seed",
    "seed": "evaluation_seed",
    "sd_guidance_scale": "evaluation_guidance",
    "sd_guidance": "evaluation_guidance",
    "guidance": "evaluation_guidance",
}


def normalise_header(header: Sequence[str]) -> list[str]:
    """Strip column names and map aliases (``sd_seed`` -> ``evaluation_seed`` ...) unless the target exists."""
    names = [h.strip() for h in header]
    return [ALIASES[h] if h in ALIASES and ALIASES[h] not in names else h for h in names]


def read_text(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark dropped); a missing or unreadable file is a one-line error."""
    if not path.exists():
        raise bad_arg("prompts", "an existing prompt file", f"{path} (no such file)")
    if not path.is_file():
        raise bad_arg("prompts", "a prompt file", f"{path} (not a file)")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise bad_arg("prompts", "a UTF-8 text file", f"{path} (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise bad_arg("prompts", "a readable prompt file", f"{path} ({exc.strerror})") from None


def read_csv(text: str, path: object) -> tuple[list[str], list[dict[str, str]]]:
    """``(header, rows)``: the normalised header and one ``{column: text}`` dict per non-blank row.

    Quoted fields may span lines; a row with a different number of fields than the header, a quote
    that never closes (which would swallow the rest of the file into one field) or text after a
    closing quote is an error naming the line.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    out: list[dict[str, str]] = []
    header: list[str] | None = None
    start = 1  # line on which the row being read starts
    try:
        for row in reader:
            start_of_row, start = start, reader.line_num + 1
            if header is None:
                header = normalise_header(row)
                continue
            if not row:  # blank line
                continue
            if len(row) != len(header):
                raise bad_arg(
                    "prompts",
                    f"{len(header)} fields in every row",
                    f"{path} line {start_of_row}: {len(row)} fields",
                )
            out.append(dict(zip(header, row)))
    except csv.Error as exc:
        why = f"a quote opened on line {start} is never closed" if "end of data" in str(exc) else str(exc)
        raise bad_arg("prompts", "a well-formed CSV file", f"{path} line {reader.line_num} ({why})") from None
    if header is None:
        raise bad_arg("prompts", "a prompt file with a header and rows", f"{path} (empty)")
    return header, out


def read_hub_i2p() -> tuple[list[str], list[dict[str, str]]]:
    """``(header, rows)`` of the hub dataset ``AIML-TUDA/i2p`` (train split), values as text.

    Needs the optional ``datasets`` package and a network connection; otherwise one line says to
    pass a local path instead.
    """
    fix = f"pass the path of a local I2P CSV instead (i2p_benchmark.csv of the hub dataset {I2P_HUB_ID}, or unsafe-prompts4703.csv)"
    if hf_offline():
        raise CadkitError(
            f"the hub dataset {I2P_HUB_ID} cannot be read offline (HF_HUB_OFFLINE is set); {fix}", param="prompts"
        )
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise CadkitError(
            f"reading {I2P_HUB_ID} from the hub needs the 'datasets' package (pip install datasets); {fix}", param="prompts"
        ) from None
    try:
        ds = datasets.load_dataset(I2P_HUB_ID, split="train")
    except Exception as exc:  # network, auth, cache: all end as one line
        msg = " ".join(str(exc).split())[:200]
        raise CadkitError(
            f"could not load {I2P_HUB_ID} from the hub ({type(exc).__name__}: {msg}); {fix}", param="prompts"
        ) from None
    header = normalise_header(list(ds.column_names))
    rows = [{h: "" if v is None else str(v) for h, v in zip(header, r.values())} for r in ds]
    return header, rows


def parse_int(value: str) -> int | None:
    """Parse an integer, accepting integral floats such as ``"1174.0"``; None when not one."""
    v = value.strip()
    try:
        return int(v)
    except ValueError:
        pass
    try:
        f = float(v)
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


def parse_float(value: str) -> float | None:
    """Parse a float; None when not one."""
    try:
        return float(value.strip())
    except ValueError:
        return None


def unquote(line: str) -> str:
    """A line written as one quoted CSV field (``"a, b"``) becomes its text; others stay as they are."""
    if len(line) >= 2 and line[0] == '"' and line[-1] == '"':
        fields = next(csv.reader([line]), [])
        if len(fields) == 1:
            return fields[0]
    return line


def read_lines(text: str) -> list[str]:
    """The non-blank lines of ``text``, stripped; a line that is one quoted CSV field is unquoted."""
    return [unquote(ln.strip()) for ln in text.splitlines() if ln.strip()]
