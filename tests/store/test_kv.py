"""Kv.mget on both Redis paths (the trio-native pool and redis.asyncio, which sentinel URLs use):
one round trip for many keys, missing keys as None, in the order asked."""

from __future__ import annotations

from tests.store.test_pubsub import KvFactory, kv_factory  # noqa: F401  (the fixture)


async def test_mget_returns_values_in_order_and_none_for_missing_keys(
    bridge: None, redis_url: str, redis_prefix: str, kv_factory: KvFactory,  # noqa: F811
) -> None:  # fmt: skip
    async with kv_factory(redis_url, redis_prefix) as kv:
        await kv.set("a", "1", ex=30)
        await kv.set("c", "ü3", ex=30)
        assert await kv.mget("a", "b", "c") == ["1", None, "ü3"]
        assert await kv.mget() == []
