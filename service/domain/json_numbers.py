"""JSON numbers as every reader of JSON here takes them (request bodies, import lines)."""

from __future__ import annotations

MAX_INTEGER_DIGITS = 40  # far past the limit of every field that takes an integer


def integer(digits: str) -> int | float:
    """A JSON integer, for json.loads(parse_int=...): one too long for int() (which refuses
    thousands of digits) is read as a float, which no field takes where an integer or text
    is due, so that the field's own rule names the fault rather than "not valid JSON"."""
    return int(digits) if len(digits) <= MAX_INTEGER_DIGITS else float(digits)
