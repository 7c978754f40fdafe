"""Parsing what a user typed or a file holds: one value of an enum, a comma-separated list. Each refusal is
one line that names what was wrong and what is accepted."""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

from mnprof.errors import MnprofError

E = TypeVar("E", bound=Enum)

__all__ = ["parse_choice", "parse_list"]


def parse_choice(value: object, enum: type[E], what: str) -> E:
    """Turn a string (or enum member) into a member of ``enum``, naming the accepted values when it is not one."""
    if isinstance(value, enum):
        return value
    for member in enum:
        if value == member.value:
            return member
    accepted = ", ".join(str(member.value) for member in enum)
    raise MnprofError(f"unknown {what} {value!r}; accepted: {accepted}")


def parse_list(text: str, what: str, accepted: str = "comma-separated values", *, numbers: bool = False) -> list[str]:
    """Split ``"a, b"`` into stripped items; an empty list or item is a one-line error naming ``accepted``
    (``numbers``: items are numbers, so a digit separator is refused too)."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise MnprofError(f"{what} list {text!r} is empty or has an empty item; accepted: {accepted}")
    for item in items:  # int() and float() take other scripts' digits (١, ３２): only ASCII is accepted
        if not item.isascii() or not item.isprintable():
            raise MnprofError(f"{what} {item!r} is not plain ASCII text; accepted: {accepted}")
        if numbers and "_" in item:  # int() and float() also take digit separators: "1_0" is 10
            raise MnprofError(f"{what} {item!r} has a digit separator; accepted: {accepted}")
    return items
