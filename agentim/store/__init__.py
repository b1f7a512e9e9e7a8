"""Every SQL statement and Redis command; the only importer of triopg, redis and asyncio."""
