"""Label maps for augmentations that turn one class into another: horizontal flips and time reversal.

A mirrored "move left" clip is a "move right" clip, a mirrored clockwise turn a counter-clockwise one; a
zoom or an up/down motion stays what it was. TSN's random flip (on for UCF-101 and HMDB-51) would teach
such classes the wrong label, so for them the flip either stays off or swaps the label: ``data.flip_map``
names the mirrored class of each class (classes not named are their own mirror), or ``"auto"`` derives it
from the class names by swapping the words *left* / *right* and *clockwise* / *counterclockwise*
(also written *counter-clockwise*, *anticlockwise*, *cw* / *ccw*)::

    >>> flip_permutation("auto", ["MoveLeft", "MoveRight", "ZoomIn", "TurnClockwise", "TurnCounterclockwise"])
    (1, 0, 2, 4, 3)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from offnet.data.classnames import name_words

__all__ = ["auto_flip_map", "flip_permutation", "reversal_labels"]

# direction words and their mirror images; spellings of one direction share a canonical form
_CANONICAL = {"counterclockwise": "ccw", "anticlockwise": "ccw", "ccw": "ccw", "acw": "ccw",
              "clockwise": "cw", "cw": "cw", "left": "left", "right": "right"}
_MIRROR = {"left": "right", "right": "left", "cw": "ccw", "ccw": "cw"}


def _key(words: Sequence[str]) -> tuple[str, ...]:
    return tuple(_CANONICAL.get(w, w) for w in words)


def auto_flip_map(class_names: Sequence[str]) -> dict[str, str]:
    """The mirrored class of every class whose name holds a direction word (see the module docstring).

    Raises ``ValueError`` naming the class when its mirror image is not one of ``class_names`` (a flip
    would then make a clip of a class the dataset does not have): give ``data.flip_map`` explicitly, or
    turn ``data.flip`` off.
    """
    by_key: dict[tuple[str, ...], str] = {}
    for name in class_names:
        by_key.setdefault(_key(name_words(name)), name)
    mapping: dict[str, str] = {}
    for name in class_names:
        key = _key(name_words(name))
        mirrored = tuple(_MIRROR.get(w, w) for w in key)
        if mirrored == key:
            continue
        twin = by_key.get(mirrored)
        if twin is None:
            raise ValueError(
                f"data.flip_map=auto: class {name!r} names a direction, but its mirror image is not a class "
                f"(classes: {list(class_names)}); give data.flip_map as a mapping, or set data.flip=false"
            )
        mapping[name] = twin
    return mapping


def flip_permutation(spec: str | Mapping[str, str], class_names: Sequence[str]) -> tuple[int, ...]:
    """Label index after a horizontal flip, per label index: ``spec`` is ``"auto"`` or a mapping of class
    names (one direction suffices: ``{A: B}`` also maps B to A; unnamed classes map to themselves).

    Raises ``ValueError`` for an unknown class name or a class mapped to two different classes.
    """
    names = list(class_names)
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError(f"data.flip_map={spec!r} is not valid; give 'auto' or a mapping of class names")
        spec = auto_flip_map(names)
    return _symmetric_labels(spec, names, key="data.flip_map", unmapped=list(range(len(names))),
                             one="a flip has one mirror image per class")


def reversal_labels(spec: str | Mapping[str, str], class_names: Sequence[str]) -> tuple[int, ...]:
    """Label index of a clip played backwards, per label index, or -1 for a class that is not reversed.

    A clip of "zoom in" played backwards is a clip of "zoom out", of "open door" one of "close door".
    ``spec`` is ``"auto"`` (the pairs :func:`offnet.data.synth.reversal_pairs` reads from the class names:
    right/left, clockwise/counterclockwise, in/out, open/close, push/pull, ...) or a mapping of class names
    (one direction suffices). Classes in no pair are never reversed: played backwards, most actions are no
    action of the dataset.
    """
    from offnet.data.synth import reversal_pairs

    names = list(class_names)
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError(f"data.reverse_map={spec!r} is not valid; give 'auto' or a mapping of class names")
        spec = dict(reversal_pairs(names))
    return _symmetric_labels(spec, names, key="data.reverse_map", unmapped=[-1] * len(names),
                             one="a clip played backwards has one class")


def _symmetric_labels(spec: Mapping[str, str], names: list[str], *, key: str, unmapped: list[int],
                      one: str) -> tuple[int, ...]:
    """``unmapped`` with each pair of ``spec`` set both ways (A -> B and B -> A), by label index; ``ValueError``
    (naming ``key``) for a name that is not a class or a class mapped to two classes (``one`` says why not)."""
    index = {name: i for i, name in enumerate(names)}
    labels = list(unmapped)
    assigned: dict[int, int] = {}
    for a, b in spec.items():
        for name in (a, b):
            if name not in index:
                raise ValueError(f"{key} names {name!r}, which is not a class (classes: {names})")
        for src, dst in ((index[a], index[b]), (index[b], index[a])):
            if assigned.get(src, dst) != dst:
                raise ValueError(f"{key} maps {names[src]!r} to both {names[assigned[src]]!r} and {names[dst]!r}; "
                                 f"{one}")
            assigned[src] = labels[src] = dst
    return tuple(labels)
