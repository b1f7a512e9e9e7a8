"""Depth and collection-size limits on decoded JSON frames (realtime.md §1.3, steps 3 and 3b).

Iterative, so hostile nesting cannot exhaust the Python stack.
"""

from __future__ import annotations

from typing import Final, Literal

LimitBreach = Literal["depth", "collection"]

_DEPTH: Final = "depth"
_COLLECTION: Final = "collection"


def check_json_limits(
    value: object, *, max_depth: int, max_collection: int | None
) -> LimitBreach | None:
    """Return which limit `value` breaks, or None.

    Depth: the root sits at depth 0 and each array element or object value one deeper; any value
    deeper than `max_depth` breaks it. Collection: an array with more than `max_collection` items
    or an object with more keys. Depth is checked first, so it wins when both are broken.
    """
    too_big = False
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return _DEPTH
        children = _children(item)
        if max_collection is not None and len(children) > max_collection:
            too_big = True
        stack.extend((child, depth + 1) for child in children)
    return _COLLECTION if too_big else None


def _children(item: object) -> list[object]:
    if isinstance(item, dict):
        return list(item.values())
    if isinstance(item, list):
        return item
    return []
