"""PasswordHasher: bcrypt in worker threads (DIFFERENCES D4)."""

from __future__ import annotations

import argon2
import trio

from agentim.auth.passwords import PasswordHasher
from agentim.importer.plan import NO_PASSWORD

ROUNDS = 4  # bcrypt's minimum cost keeps the tests fast


async def test_hash_and_verify() -> None:
    hasher = PasswordHasher(ROUNDS)
    with trio.fail_after(10):
        digest = await hasher.hash("Passw0rdX")
        assert digest.startswith("$2b$04$")
        assert await hasher.verify("Passw0rdX", digest)
        assert not await hasher.verify("passw0rdX", digest)


async def test_salted_hashes_differ() -> None:
    hasher = PasswordHasher(ROUNDS)
    assert await hasher.hash("same") != await hasher.hash("same")


async def test_non_bcrypt_digest_never_matches() -> None:
    """A row hashed by the reference (argon2id PHC) fails cleanly instead of raising."""
    argon2 = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
    assert not await PasswordHasher(ROUNDS).verify("anything", argon2)


async def test_argon2id_hashes_imported_from_agentim_verify() -> None:
    """AgentIM hashes with argon2id, the whole password; `agentim import-agentim` copies them."""
    long_password = "A1a" + "x" * 100
    digest = argon2.PasswordHasher(time_cost=1, memory_cost=1024).hash(long_password)
    hasher = PasswordHasher(ROUNDS)
    assert await hasher.verify(long_password, digest)
    assert not await hasher.verify("A1a" + "x" * 69 + "different tail", digest)
    assert hasher.needs_rehash(digest)
    assert not hasher.needs_rehash(await hasher.hash(long_password))


async def test_imported_account_without_password_never_matches() -> None:
    for attempt in ("", "!", "anything"):
        assert not await PasswordHasher(ROUNDS).verify(attempt, NO_PASSWORD)


async def test_passwords_past_72_bytes_are_cut_like_bcrypt() -> None:
    hasher = PasswordHasher(ROUNDS)
    digest = await hasher.hash("A1a" + "x" * 100)
    assert await hasher.verify("A1a" + "x" * 69 + "different tail", digest)


async def test_dummy_verification_runs() -> None:
    hasher = PasswordHasher(ROUNDS)
    with trio.fail_after(10):
        await hasher.verify_dummy("whatever")
        await hasher.verify_dummy("whatever")
