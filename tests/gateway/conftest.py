"""The two-process harness of tests/e2e (hub children sharing this run's PostgreSQL and Redis)."""

from __future__ import annotations

from tests.e2e.conftest import spawn_hub  # noqa: F401  (a fixture, shared)
