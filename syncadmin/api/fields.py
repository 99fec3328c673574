"""``Text``: a string the API takes from a caller only if every database can store it.

PostgreSQL refuses NUL in text, and a lone surrogate (``"\\ud800"``, which JSON can spell) is not
UTF-8 at all: either would fail in the database driver, a 500. As a field type it is a 400 that names
the field, before any endpoint runs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("is not valid Unicode (a lone surrogate)") from exc
    return value


Text = Annotated[str, AfterValidator(_storable)]


def storable(value: str) -> bool:
    """Whether ``value`` (e.g. a path parameter) could be stored, so could name a stored row."""
    try:
        _storable(value)
    except ValueError:
        return False
    return True
