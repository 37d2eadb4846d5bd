"""Words of a class name, for rules that read what a class name says (mirror and time-reversal twins)."""

from __future__ import annotations

import re

__all__ = ["name_words"]


def name_words(name: str) -> list[str]:
    """Lower-case words of a class name: camelCase, snake_case, spaces and hyphens split, and
    ``counter clockwise`` / ``anti-clockwise`` joined into one word.

    >>> name_words("TurnCounterClockwise"), name_words("rotate_counter-clockwise"), name_words("RotateCCW")
    (['turn', 'counterclockwise'], ['rotate', 'counterclockwise'], ['rotate', 'ccw'])
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    merged: list[str] = []
    for word in (w.lower() for w in re.split(r"[^A-Za-z0-9]+", spaced) if w):
        if merged and merged[-1] in ("counter", "anti") and word == "clockwise":
            merged[-1] += word
        else:
            merged.append(word)
    return merged
