"""`actor(name, **options)`: marks a function as the Dramatiq actor `name` with its options (retries,
time limit) without declaring it, so importing a worker module binds no broker. workers/main.py
declares every marked function on the broker it builds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def actor(name: str, **options: Any) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def mark(function: Callable[..., None]) -> Callable[..., None]:
        function.actor_name = name  # type: ignore[attr-defined]
        function.actor_options = options  # type: ignore[attr-defined]
        return function

    return mark
