"""Argument checks of the pruning functions: errors that name the parameter, the value and
what is allowed."""
from __future__ import annotations

from typing import Sequence


def check_choice(name: str, value, allowed: Sequence) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed: expected one of {', '.join(map(repr, allowed))}")


def check_ratio(name: str, value: float, high_inclusive: bool = False) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (``<= 1`` with ``high_inclusive``)."""
    ok = 0.0 <= value <= 1.0 if high_inclusive else 0.0 <= value < 1.0
    if not ok:
        raise ValueError(f"{name}={value!r} is not allowed: expected a float in [0, 1{']' if high_inclusive else ')'}")
