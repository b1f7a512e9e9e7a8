from __future__ import annotations

import json

from hypothesis import given, strategies as st

from agentim.protocol.jsonlimits import check_json_limits


def nested_lists(levels: int) -> object:
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


def nested_objects(levels: int) -> object:
    value: object = "leaf"
    for _ in range(levels):
        value = {"k": value}
    return value


def test_depth_exactly_at_limit_passes() -> None:
    # 10 arrays around a scalar: the scalar sits at depth 10.
    assert check_json_limits(nested_lists(10), max_depth=10, max_collection=1000) is None
    assert check_json_limits(nested_objects(10), max_depth=10, max_collection=1000) is None


def test_depth_one_past_limit_fails() -> None:
    assert check_json_limits(nested_lists(11), max_depth=10, max_collection=1000) == "depth"
    assert check_json_limits(nested_objects(11), max_depth=10, max_collection=1000) == "depth"


def test_empty_container_at_limit_passes() -> None:
    # An empty list wrapped in 10 lists sits at depth 10 and has no values below it.
    empty: object = []
    for _ in range(10):
        empty = [empty]
    assert check_json_limits(empty, max_depth=10, max_collection=None) is None
    assert check_json_limits([empty], max_depth=10, max_collection=None) == "depth"
    assert check_json_limits({"a": {}}, max_depth=1, max_collection=None) is None


def test_scalar_root() -> None:
    assert check_json_limits(5, max_depth=0, max_collection=0) is None
    assert check_json_limits([1], max_depth=0, max_collection=None) == "depth"
    assert check_json_limits([], max_depth=0, max_collection=None) is None


def test_collection_limit() -> None:
    assert check_json_limits([0] * 1000, max_depth=10, max_collection=1000) is None
    assert check_json_limits([0] * 1001, max_depth=10, max_collection=1000) == "collection"
    big = {str(i): i for i in range(1001)}
    assert check_json_limits(big, max_depth=10, max_collection=1000) == "collection"
    assert check_json_limits({"a": [big]}, max_depth=10, max_collection=1000) == "collection"


def test_no_collection_limit_for_gateways() -> None:
    assert check_json_limits([0] * 5000, max_depth=15, max_collection=None) is None


def test_depth_wins_over_collection() -> None:
    value = [[0] * 2000, nested_lists(20)]
    assert check_json_limits(value, max_depth=10, max_collection=1000) == "depth"


def test_hostile_nesting_does_not_recurse() -> None:
    deep = nested_lists(200_000)
    assert check_json_limits(deep, max_depth=15, max_collection=None) == "depth"


def test_decoded_frame() -> None:
    frame = json.loads('{"type":"client:send_message","roomId":"r","content":"hi","mentions":[]}')
    assert check_json_limits(frame, max_depth=10, max_collection=1000) is None


def reference(value: object, max_depth: int, max_collection: int | None) -> str | None:
    def depth_ok(v: object, depth: int) -> bool:
        if depth > max_depth:
            return False
        children = list(v.values()) if isinstance(v, dict) else v if isinstance(v, list) else []
        return all(depth_ok(c, depth + 1) for c in children)

    def size_ok(v: object) -> bool:
        children = list(v.values()) if isinstance(v, dict) else v if isinstance(v, list) else []
        if max_collection is not None and len(children) > max_collection:
            return False
        return all(size_ok(c) for c in children)

    if not depth_ok(value, 0):
        return "depth"
    return None if size_ok(value) else "collection"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=3), inner, max_size=6)
    ),
    max_leaves=60,
)


@given(json_values, st.integers(0, 8), st.none() | st.integers(0, 6))
def test_matches_recursive_reference(
    value: object, max_depth: int, max_collection: int | None
) -> None:
    expected = reference(value, max_depth, max_collection)
    assert check_json_limits(value, max_depth=max_depth, max_collection=max_collection) == expected
