"""TOTP codes (RFC 6238 test vectors), the drift window, and backup-code digests."""

from __future__ import annotations

import re

from hypothesis import given, strategies as st

from agentim.auth import totp

# RFC 6238 appendix B's SHA-1 key "12345678901234567890", base32-encoded.
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def test_rfc_6238_vectors_name_their_time_step() -> None:
    # The RFC lists 8 digits (94287082, 07081804); a 6-digit code is their last six.
    assert totp.matching_step(RFC_SECRET, "287082", now=59) == 1
    assert totp.matching_step(RFC_SECRET, "081804", now=1111111109) == 1111111109 // 30


def test_one_step_of_drift_either_way_and_no_more() -> None:
    code = "081804"  # the code of step 37037036
    step = 1111111109 // 30
    assert totp.matching_step(RFC_SECRET, code, now=(step + 1) * 30) == step
    assert totp.matching_step(RFC_SECRET, code, now=(step - 1) * 30) == step
    assert totp.matching_step(RFC_SECRET, code, now=(step + 2) * 30) is None
    assert totp.matching_step(RFC_SECRET, code, now=(step - 2) * 30) is None
    assert totp.matching_step(RFC_SECRET, "81804", now=1111111109) is None


def test_new_secrets_and_backup_codes() -> None:
    secret = totp.new_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    codes = totp.new_backup_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(re.fullmatch(r"[0-9a-f]{8}", code) for code in codes)


def test_provisioning_uri_names_issuer_and_account() -> None:
    uri = totp.provisioning_uri(RFC_SECRET, "ada", "AgentIM")
    assert uri == f"otpauth://totp/AgentIM:ada?secret={RFC_SECRET}&issuer=AgentIM"


@given(st.binary(min_size=4, max_size=4))
def test_backup_digest_ignores_case_and_spaces_and_depends_on_the_secret(raw: bytes) -> None:
    code = raw.hex()
    digest = totp.backup_code_digest(RFC_SECRET, code)
    assert digest is not None and re.fullmatch(r"[0-9a-f]{64}", digest)
    assert totp.backup_code_digest(RFC_SECRET, f"  {code.upper()}\n") == digest
    assert totp.backup_code_digest("JBSWY3DPEHPK3PXP", code) != digest


def test_only_eight_hex_digits_can_be_a_backup_code() -> None:
    for text in ("123456", "abcdefg", "abcdefghi", "abcdef0g", "", "ａｂｃｄｅｆ１２"):
        assert totp.backup_code_digest(RFC_SECRET, text) is None
