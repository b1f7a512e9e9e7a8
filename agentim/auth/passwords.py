"""PasswordHasher: bcrypt in worker threads behind one capacity limiter (DIFFERENCES D4).

bcrypt reads at most 72 bytes; we cut the UTF-8 password there explicitly (bcrypt ≥ 4.1
refuses longer input), which is what other bcrypt implementations do silently.

Accounts imported from AgentIM (`agentim import-agentim`) carry AgentIM's argon2id hashes; they
verify with argon2-cffi, on the whole password as AgentIM hashed it, and `needs_rehash` tells
the login to store a bcrypt hash in their place.
"""

from __future__ import annotations

import secrets
from typing import Final

import argon2
import bcrypt
import trio

BCRYPT_MAX_BYTES: Final = 72
HASHING_THREADS: Final = 2  # a login burst queues here instead of taking every worker thread
ARGON2_PREFIX: Final = "$argon2"
_ARGON2: Final = argon2.PasswordHasher()  # verify reads the parameters from the hash itself


def _encode(password: str) -> bytes:
    return password.encode("utf-8")[:BCRYPT_MAX_BYTES]


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_encode(password), bcrypt.gensalt(rounds)).decode()


def _verify(password: str, digest: str) -> bool:
    if digest.startswith(ARGON2_PREFIX):
        try:
            return _ARGON2.verify(digest, password)
        except (
            argon2.exceptions.Argon2Error,
            argon2.exceptions.InvalidHashError,
        ):  # wrong, or malformed
            return False
    try:
        return bcrypt.checkpw(_encode(password), digest.encode())
    except ValueError:  # not a bcrypt hash (e.g. a reference argon2 row)
        return False


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self._limiter = trio.CapacityLimiter(HASHING_THREADS)
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(_hash, password, self.rounds, limiter=self._limiter)

    async def verify(self, password: str, digest: str) -> bool:
        return await trio.to_thread.run_sync(_verify, password, digest, limiter=self._limiter)

    @staticmethod
    def needs_rehash(digest: str) -> bool:
        """True for an imported AgentIM (argon2) hash: replace it once the password verified."""
        return digest.startswith(ARGON2_PREFIX)

    async def verify_dummy(self, password: str) -> None:
        """Spend one verification on a fixed hash, so unknown users cost the same time."""
        if self._dummy is None:
            self._dummy = await self.hash(secrets.token_urlsafe(16))
        await self.verify(password, self._dummy)
