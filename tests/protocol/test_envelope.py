from __future__ import annotations

from agentim.protocol.envelope import dumpb, dumps, error, ok


def test_ok_without_data() -> None:
    assert dumps(ok()) == '{"ok":true}'


def test_ok_with_data_including_none() -> None:
    assert dumps(ok({"id": "x", "n": [1, 2]})) == '{"ok":true,"data":{"id":"x","n":[1,2]}}'
    assert dumps(ok(None)) == '{"ok":true,"data":null}'
    assert dumps(ok([])) == '{"ok":true,"data":[]}'


def test_error_with_extra_keys() -> None:
    assert dumps(error("Room not found")) == '{"ok":false,"error":"Room not found"}'
    body = error("Validation failed", fields=[{"field": "(root)", "message": "Required"}])
    expected = (
        '{"ok":false,"error":"Validation failed",'
        '"fields":[{"field":"(root)","message":"Required"}]}'
    )
    assert dumps(body) == expected


def test_non_ascii_is_kept_raw() -> None:
    body = ok({"apiKey": "sk-•••••abcd", "name": "日本 😀"})
    assert dumps(body) == '{"ok":true,"data":{"apiKey":"sk-•••••abcd","name":"日本 😀"}}'
    assert dumpb(body) == dumps(body).encode("utf-8")
    assert b"\xe2\x80\xa2" in dumpb(body)  # U+2022 as UTF-8, not \u2022


def test_escapes_match_json_stringify() -> None:
    assert dumps({"s": 'q"\\\n\t/<'}) == '{"s":"q\\"\\\\\\n\\t/<"}'


def test_dumpb_is_bytes() -> None:
    assert dumpb(ok()) == b'{"ok":true}'
