"""AES-256-GCM secrets at rest (api.md §10.6), against values sealed by Node's crypto."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, strategies as st

from agentim.auth.crypto import (
    MASK,
    derive_key,
    mask_secret,
    node_base64_decode,
    open_secret,
    seal,
    seal_with_iv,
)

KEY_TEXT = "test-encryption-key-that-is-32-chars-plus"
IV = bytes(range(12))
# Sealed by Node v20 (`createCipheriv("aes-256-gcm", key, iv)`) with the reference's derivation.
NODE_SEALED = (
    "enc:000102030405060708090a0b:467c6d9bfdaf029feb46adede355341796ccef11d455:"
    "43b450b3b2c6a6c4c62bbf5f8d9c7394"
)
NODE_B64_KEY = base64.b64encode(bytes([7]) * 32).decode()
NODE_SEALED_B64_KEY = (
    "enc:000102030405060708090a0b:6beac4127c7abc7f439f8ef99b752db8a278:"
    "66ba7162f7f4607ae381c1434dfbd383"
)


@given(st.text(), st.text(min_size=1))
def test_seal_then_open_round_trips(plaintext: str, key_text: str) -> None:
    sealed = seal(plaintext, key_text)
    assert sealed.startswith("enc:")
    assert open_secret(sealed, key_text) == plaintext


def test_sealed_layout_is_lowercase_hex_with_12_byte_iv_and_16_byte_tag() -> None:
    prefix, iv, ciphertext, tag = seal("sk-secret", KEY_TEXT).split(":")
    assert prefix == "enc"
    assert len(bytes.fromhex(iv)) == 12
    assert len(bytes.fromhex(tag)) == 16
    assert len(bytes.fromhex(ciphertext)) == len("sk-secret")
    assert iv + ciphertext + tag == (iv + ciphertext + tag).lower()


def test_each_seal_draws_a_fresh_iv() -> None:
    assert seal("same", KEY_TEXT) != seal("same", KEY_TEXT)


def test_values_sealed_by_node_open() -> None:
    assert open_secret(NODE_SEALED, KEY_TEXT) == "sk-test-1234567890abcd"
    assert open_secret(NODE_SEALED_B64_KEY, NODE_B64_KEY) == "sk-base64-key-ABCD"
    assert seal_with_iv("sk-test-1234567890abcd", KEY_TEXT, IV) == NODE_SEALED


def test_node_layout_built_with_cryptography_opens() -> None:
    key = hashlib.sha256(KEY_TEXT.encode()).digest()
    sealed = AESGCM(key).encrypt(IV, b"hello", None)
    stored = f"enc:{IV.hex()}:{sealed[:-16].hex()}:{sealed[-16:].hex()}"
    assert open_secret(stored, KEY_TEXT) == "hello"


@pytest.mark.parametrize(
    ("text", "expected_hex"),
    [
        ("QUJD", "414243"),
        ("QUJ", "4142"),
        ("QU", "41"),
        ("Q", ""),  # 6 bits: the incomplete byte is dropped
        ("QU=JD", "41"),  # stops at "="
        ("Q U J D", "414243"),  # invalid characters are skipped
        ("QUJD!!QUJD", "414243414243"),
        ("-_-_", "fbffbf"),  # URL-safe symbols
        ("+/+/", "fbffbf"),
        ("QUJDQ", "414243"),
    ],
)
def test_node_base64_decoding_is_lenient(text: str, expected_hex: str) -> None:
    # Expected bytes are Node v20's Buffer.from(text, "base64").
    assert node_base64_decode(text).hex() == expected_hex


def test_key_is_the_base64_value_when_it_is_32_bytes() -> None:
    raw = bytes([0xFB]) * 32
    assert derive_key(base64.b64encode(raw).decode()) == raw
    assert derive_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw


def test_key_is_sha256_of_the_text_otherwise() -> None:
    assert derive_key(KEY_TEXT) == hashlib.sha256(KEY_TEXT.encode()).digest()
    short = base64.b64encode(bytes(16)).decode()
    assert derive_key(short) == hashlib.sha256(short.encode()).digest()


def test_tampered_tag_or_ciphertext_gives_none() -> None:
    prefix, iv, ciphertext, tag = NODE_SEALED.split(":")
    flipped_tag = tag[:-1] + ("0" if tag[-1] != "0" else "1")
    assert open_secret(":".join([prefix, iv, ciphertext, flipped_tag]), KEY_TEXT) is None
    flipped_ct = ("0" if ciphertext[0] != "0" else "1") + ciphertext[1:]
    assert open_secret(":".join([prefix, iv, flipped_ct, tag]), KEY_TEXT) is None


@pytest.mark.parametrize(
    "stored",
    [
        NODE_SEALED + ":extra",  # wrong part count
        "enc:00:11",
        "enc:zz:11:22",  # not hex
        NODE_SEALED.rsplit(":", 1)[0] + ":abcd",  # short tag
    ],
)
def test_malformed_values_give_none(stored: str) -> None:
    assert open_secret(stored, KEY_TEXT) is None


def test_wrong_key_or_no_key_gives_none() -> None:
    assert open_secret(NODE_SEALED, "another-key") is None
    assert open_secret(NODE_SEALED, None) is None


def test_without_a_key_secrets_stay_plaintext() -> None:
    assert seal("sk-plain", None) == "sk-plain"
    assert open_secret("sk-plain", None) == "sk-plain"
    assert open_secret("sk-plain", KEY_TEXT) == "sk-plain"  # legacy rows


@pytest.mark.parametrize(
    ("plain", "masked"),
    [
        ("sk-1234567890abcd", "••••abcd"),
        ("12345", "••••2345"),
        ("1234", "••••"),
        ("", "••••"),
        (None, "••••"),
    ],
)
def test_mask_shows_the_last_four_characters(plain: str | None, masked: str) -> None:
    assert MASK == "\u2022" * 4
    assert mask_secret(plain) == masked
