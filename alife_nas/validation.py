"""Checks for configuration values, shared by every options class so they refuse alike.

Each check raises ``ValueError`` with a one-line message naming the option by its config name
(the same name as the command-line option, with ``_`` for ``-``), and returns the value in its
canonical type. Config files and JSON bring values of any type, so nothing is assumed, and a
refused value is shown shortened (:func:`alife_nas.genome.shown`): a message is never longer than a line.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from alife_nas.genome import shown

__all__ = ["check_int", "check_number", "check_choice", "check_bool"]


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None,
              optional: bool = False) -> int | None:
    """A whole number in [low, high] (``None`` allowed when ``optional``); 3.0 is accepted as 3."""
    if value is None and optional:
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {shown(value)}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {_range(low, high)}, got {shown(value)}")
    return value


def check_number(name: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """A finite number in [low, high] (or (low, high] with ``low_open``); an int too large for a float is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        raise ValueError(f"{name} must be a finite number, got {shown(value)}")
    below = low is not None and (value <= low if low_open else value < low)
    if below or (high is not None and value > high):
        bound = f"more than {low}" if low_open and high is None else _range(low, high)
        raise ValueError(f"{name} must be {bound}, got {shown(value)}")
    return float(value) if isinstance(value, float) else value


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {shown(value)}")
    return str(value)


def check_bool(name: str, value: Any) -> bool:
    """True or false (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {shown(value)}")
    return value


def _finite(value: int | float) -> bool:
    """NaN and infinities are not numbers a search can use, nor ints past a float's range."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _range(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low is not None else f"at most {high}"
