"""protocol/filetypes.py: the magic-byte check (api.md §11.3), served types (§11.4), safe names."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from agentim.protocol.filetypes import (
    MIME_EXTENSIONS,
    SIGNATURES,
    avatar_owner,
    clean_filename,
    content_matches,
    extension_for,
    is_inline,
    is_upload_name,
    js_round_mib,
    served_type,
)
from agentim.protocol.ids import new_id

WEBP_HEAD = b"RIFF\x00\x00\x00\x00WEBP"


@given(st.sampled_from(sorted(SIGNATURES)), st.binary(max_size=64))
def test_binary_types_need_their_signature(mime: str, tail: bytes) -> None:
    signature = SIGNATURES[mime]
    assert content_matches(mime, signature + tail)
    assert content_matches(mime, tail) == tail.startswith(signature)
    assert not content_matches(mime, signature[:-1])  # shorter than the signature


@given(st.sampled_from([b"VP8 ", b"VP8L", b"VP8X"]), st.binary(max_size=32))
def test_webp_needs_riff_webp_and_a_vp8_chunk(chunk: bytes, tail: bytes) -> None:
    assert content_matches("image/webp", WEBP_HEAD + chunk + tail)
    assert not content_matches("image/webp", WEBP_HEAD + b"VP9 " + tail)
    assert not content_matches("image/webp", b"RIFX" + WEBP_HEAD[4:] + chunk)
    assert not content_matches("image/webp", WEBP_HEAD + chunk[:3])


@given(st.text(), st.sampled_from(["text/plain", "text/markdown", "text/csv", "application/json"]))
def test_text_types_take_nul_free_utf8(text: str, mime: str) -> None:
    data = text.encode("utf-8", errors="surrogatepass")
    clean = "\x00" not in text and not any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)
    assert content_matches(mime, data) == clean


def test_an_empty_text_file_matches_and_an_empty_binary_does_not() -> None:
    assert content_matches("text/plain", b"")
    assert not content_matches("image/png", b"")
    assert not content_matches("application/json", b"\xc3")  # truncated UTF-8


def test_types_without_a_rule_pass_and_have_no_extension() -> None:
    assert content_matches("audio/mpeg", b"anything")
    assert extension_for("audio/mpeg") == ""
    assert extension_for("application/x-zip-compressed") == ".zip"
    assert set(MIME_EXTENSIONS.values()) >= {".jpg", ".png", ".md", ".gz"}


@pytest.mark.parametrize(
    ("name", "served"),
    [
        ("a.jpg", "image/jpeg"), ("a.JPEG", "image/jpeg"), ("a.webp", "image/webp"),
        ("a.txt", "text/plain; charset=utf-8"), ("a.csv", "text/csv; charset=utf-8"),
        ("a.md", "application/octet-stream"), ("noext", "application/octet-stream"),
        ("a.gz", "application/gzip"), ("a.svg", "application/octet-stream"),
    ],
)  # fmt: skip
def test_served_type_comes_from_the_extension(name: str, served: str) -> None:
    assert served_type(name) == served


def test_only_the_four_image_types_are_inline() -> None:
    assert all(is_inline(t) for t in ("image/jpeg", "image/png", "image/gif", "image/webp"))
    assert not any(is_inline(t) for t in ("image/svg+xml", "text/plain; charset=utf-8", ""))


@given(st.text(max_size=80))
def test_an_upload_name_is_always_one_plain_segment(name: str) -> None:
    if is_upload_name(name):
        assert "/" not in name and "\\" not in name and "\x00" not in name
        assert not name.startswith(".") and ".." not in name
        assert name.isascii()


def test_minted_names_are_upload_names_and_avatars_name_their_owner() -> None:
    attachment_id, user_id = new_id(), new_id()
    assert is_upload_name(f"{attachment_id}.png")
    assert is_upload_name(f"avatar_{user_id}.webp")
    assert avatar_owner(f"avatar_{user_id}.webp") == user_id
    assert avatar_owner(f"{attachment_id}.png") is None
    assert avatar_owner(f"avatar_{user_id}") is None
    for bad in ("..", "../x.png", "a/b.png", ".hidden", "a.png.", "a..png", ""):
        assert not is_upload_name(bad)


@given(st.text())
def test_clean_filename_has_no_control_characters_and_is_bounded(raw: str) -> None:
    cleaned = clean_filename(raw)
    assert 1 <= len(cleaned) <= 255
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in cleaned)
    assert "\x00" not in cleaned


def test_clean_filename_keeps_what_people_typed() -> None:
    assert clean_filename("Résumé (final).pdf") == "Résumé (final).pdf"
    assert clean_filename("../x\x00.txt") == "../x.txt"
    assert clean_filename("\x01\x02") == "file"


@given(st.integers(min_value=0, max_value=2**40))
def test_js_round_mib_rounds_halves_up(size: int) -> None:
    assert js_round_mib(size) == math.floor(size / (1024 * 1024) + 0.5)


def test_the_default_limit_reads_10mb() -> None:
    assert js_round_mib(10 * 1024 * 1024) == 10
    assert js_round_mib(512 * 1024) == 1  # Math.round(0.5) is 1 in JavaScript
