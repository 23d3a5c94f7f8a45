"""Reading JSON lines so that nothing is lost silently and nothing escapes as a traceback.

- ``split_lines``: a file's bytes split on ``\\n`` only (``str.splitlines`` would also cut at U+2028, U+0085 and
  form feeds inside a value), each line decoded on its own so one line of bad bytes loses only itself; a UTF-8
  byte-order mark is dropped and ``\\r\\n`` endings are fine.
- ``json_line``: one JSON value per line, where malformed JSON, nesting too deep for Python's parser and lone
  surrogates (``"\\ud800"``, which no UTF-8 output can carry) are each one ``InputError`` naming file, line and
  field.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import InputError

__all__ = ["json_line", "split_lines", "valid_unicode"]


def split_lines(data: bytes, *, source: str) -> list[str | InputError]:
    """The lines of a file's bytes, split on ``\n`` only and decoded one by one: a line that is not UTF-8 becomes
    an ``InputError`` in its place, so the lines around it are kept. A leading byte-order mark is dropped."""
    lines: list[str | InputError] = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        try:
            lines.append(raw.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError as error:
            lines.append(InputError(f"not UTF-8 (byte {raw[error.start]:#04x} at column {error.start + 1})",
                                    path=source, line=number))
    return lines


def _first_bad_string(value: Any, where: str) -> str | None:
    """The JSON path of the first string (key or value) holding a lone surrogate, which no UTF-8 output can carry."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:  # iterative: a deep document must not exhaust the stack here either
        item, path = stack.pop()
        if isinstance(item, str):
            if not valid_unicode(item):
                return path or "(the line)"
        elif isinstance(item, dict):
            for key, child in item.items():
                if not valid_unicode(key):
                    return path or "(a key)"
                stack.append((child, f"{path}.{key}" if path else key))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


def valid_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (``"\\ud800"`` in JSON): it cannot be written as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def json_line(line: str, *, source: str, number: int) -> Any:
    """One JSON value from one line; malformed JSON, nesting too deep for Python and lone surrogates are one
    ``InputError`` naming the file, the line and (for a surrogate) the field."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError as error:
        raise InputError(f"malformed JSON ({error.msg} at column {error.colno})", path=source, line=number) from None
    except RecursionError:
        raise InputError("JSON nested too deeply to read", path=source, line=number) from None
    bad = _first_bad_string(value, "")
    if bad is not None:
        raise InputError("holds a lone surrogate (an unpaired \\ud800-\\udfff escape), which is not valid Unicode",
                         path=source, line=number, field=bad)
    return value
