"""Tokens, passwords, secrets at rest and revocation."""
