"""Web Push (head-gap A15): the VAPID key, subscriptions, and notifications that a local push
endpoint receives, decrypts and verifies; expired subscriptions (404/410) are removed."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import attrs
import httpx
import pytest
import trio

from agentim.actions.messages import send_message
from agentim.devsecrets import ensure_vapid_keys, new_vapid_keys, vapid_public_of
from agentim.routing.webpush import PushJob, PushQueue, VapidSigner
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.gateway_helpers import agent_with_watcher
from tests.helpers import RunningHub, User, create_room, signed_in_user
from tests.http.push_support import Browser, unb64url, vapid_claims, wait_requests
from tests.routing.fake_llm import FakeLlm, start_fake_llm
from tests.ws.wsclient import signed_in


@pytest.fixture
async def push_service(nursery: trio.Nursery) -> FakeLlm:
    service = await start_fake_llm(nursery)
    service.status, service.body = 201, b""
    return service


@pytest.fixture
async def push_hub(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> RunningHub:
    """PUSH_ALLOW_PRIVATE_NETWORKS=true: the push endpoint listens on 127.0.0.1."""
    allowed = attrs.evolve(settings, push_allow_private_networks=True)
    return await start_hub(nursery, allowed, redis_prefix)


@pytest.fixture
async def http(push_hub: RunningHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=push_hub.url, timeout=30) as client:
        yield client


async def subscribe(http: httpx.AsyncClient, user: User, browser: Browser) -> None:
    response = await http.post(
        "/api/push/subscribe", json=browser.subscription(), headers=user.headers
    )
    assert (response.status_code, response.json()) == (200, {"ok": True})


async def subscriptions(hub: RunningHub, user: User) -> list[str]:
    rows = await hub.services.db.fetch(
        "SELECT endpoint FROM push_subscriptions WHERE user_id = $1 ORDER BY endpoint", user.id
    )
    return [row["endpoint"] for row in rows]


async def say(hub: RunningHub, user: User, room_id: str, content: str) -> dict[str, Any]:
    """A user message stored and broadcast as any client's would be (no socket of the user)."""
    return await send_message(
        hub.services, user_id=user.id, username=user.username, room_id=room_id, content=content,
        reply_to_id=None, attachment_ids=[],
    )  # fmt: skip


# GET /api/push/vapid-key ----------------------------------------------------------------------


async def test_vapid_key_is_public_and_a_p256_point(
    push_hub: RunningHub, http: httpx.AsyncClient
) -> None:
    response = await http.get("/api/push/vapid-key")
    assert response.status_code == 200
    body = response.json()
    key = body["data"]["publicKey"]
    assert body == {"ok": True, "data": {"publicKey": key}}
    assert len(unb64url(key)) == 65 and unb64url(key)[0] == 4  # uncompressed P-256 point
    assert key == vapid_public_of(push_hub.services.settings.vapid_private_key or "")


async def test_generated_keys_are_kept_and_the_environment_wins(tmp_path: Any) -> None:
    base = Settings(data_dir=tmp_path / "data")
    first = await ensure_vapid_keys(base)
    again = await ensure_vapid_keys(base)
    assert first.vapid_public_key and first.vapid_private_key
    assert (again.vapid_public_key, again.vapid_private_key) == (
        first.vapid_public_key, first.vapid_private_key,
    )  # fmt: skip
    assert (tmp_path / "data" / "secrets.json").stat().st_mode & 0o777 == 0o600
    public, private = new_vapid_keys()
    chosen = await ensure_vapid_keys(
        attrs.evolve(base, vapid_public_key=public, vapid_private_key=private)
    )
    assert (chosen.vapid_public_key, chosen.vapid_private_key) == (public, private)
    mismatched = await ensure_vapid_keys(
        attrs.evolve(base, vapid_public_key=first.vapid_public_key, vapid_private_key=private)
    )
    assert (mismatched.vapid_public_key, mismatched.vapid_private_key) == (None, None)


async def test_without_keys_the_routes_say_not_configured(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    unusable = attrs.evolve(settings, vapid_public_key="x", vapid_private_key="y")
    hub = await start_hub(nursery, unusable, redis_prefix)
    user = await signed_in_user(hub)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        key = await http.get("/api/push/vapid-key")
        sub = await http.post("/api/push/subscribe", json={}, headers=user.headers)
    for response in (key, sub):
        assert (response.status_code, response.json()) == (
            404, {"ok": False, "error": "Web Push is not configured"},
        )  # fmt: skip


# POST /api/push/subscribe and /unsubscribe ----------------------------------------------------


async def test_subscribe_keeps_the_subscription_and_unsubscribe_forgets_it(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    alice = await signed_in_user(push_hub)
    browser = Browser.new(push_service)
    await subscribe(http, alice, browser)
    await subscribe(http, alice, browser)  # the same browser again: still one row
    row = await push_hub.services.db.fetchrow(
        "SELECT user_id, p256dh, auth FROM push_subscriptions WHERE endpoint = $1",
        browser.endpoint,
    )
    assert row is not None
    assert dict(row) == {"user_id": alice.id, **browser.subscription()["keys"]}
    response = await http.post(
        "/api/push/unsubscribe", json={"endpoint": browser.endpoint}, headers=alice.headers
    )
    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert await subscriptions(push_hub, alice) == []


async def test_an_endpoint_moves_to_its_latest_user_and_only_its_owner_unsubscribes(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    alice, bob = await signed_in_user(push_hub), await signed_in_user(push_hub)
    browser = Browser.new(push_service)
    await subscribe(http, alice, browser)
    await subscribe(http, bob, browser)  # bob signed in on the same browser
    assert (await subscriptions(push_hub, alice), await subscriptions(push_hub, bob)) == (
        [], [browser.endpoint],
    )  # fmt: skip
    response = await http.post(
        "/api/push/unsubscribe", json={"endpoint": browser.endpoint}, headers=alice.headers
    )
    assert response.status_code == 200
    assert await subscriptions(push_hub, bob) == [browser.endpoint]  # not alice's to remove


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        "x",
        {"endpoint": "https://push.example/1"},
        {"endpoint": "https://push.example/1", "keys": {"p256dh": "k"}},
        {"endpoint": "https://push.example/1", "keys": {"p256dh": 5, "auth": "a"}},
        {"endpoint": 7, "keys": {"p256dh": "k", "auth": "a"}},
        {"endpoint": "", "keys": {"p256dh": "k", "auth": "a"}},
        {"endpoint": "javascript:alert(1)", "keys": {"p256dh": "k", "auth": "a"}},
        {"endpoint": "https://push.example/" + "x" * 3000, "keys": {"p256dh": "k", "auth": "a"}},
    ],
)
async def test_bad_subscriptions_are_refused(
    push_hub: RunningHub, http: httpx.AsyncClient, body: Any
) -> None:
    user = await signed_in_user(push_hub)
    response = await http.post("/api/push/subscribe", json=body, headers=user.headers)
    assert (response.status_code, response.json()) == (
        400, {"ok": False, "error": "Invalid subscription data"},
    )  # fmt: skip
    assert await subscriptions(push_hub, user) == []


async def test_bad_requests(push_hub: RunningHub, http: httpx.AsyncClient) -> None:
    user = await signed_in_user(push_hub)
    for path in ("/api/push/subscribe", "/api/push/unsubscribe"):
        anonymous = await http.post(path, json={"endpoint": "https://p.example/1"})
        assert anonymous.status_code == 401
        broken = await http.post(path, content=b"{", headers=user.headers)
        assert (broken.status_code, broken.json()["error"]) == (400, "Invalid JSON body")
    missing = await http.post("/api/push/unsubscribe", json={"endpoint": 3}, headers=user.headers)
    assert (missing.status_code, missing.json()) == (
        400, {"ok": False, "error": "Missing endpoint"},
    )  # fmt: skip


# Notifications --------------------------------------------------------------------------------


async def test_an_offline_member_gets_an_encrypted_signed_notification(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    alice, bob = await signed_in_user(push_hub), await signed_in_user(push_hub)
    room_id = await create_room(push_hub, alice, members=(bob,))
    alice_browser, bob_browser = Browser.new(push_service), Browser.new(push_service)
    await subscribe(http, alice, alice_browser)
    await subscribe(http, bob, bob_browser)
    message = await say(push_hub, alice, room_id, "x" * 250)
    [request] = await wait_requests(push_service, 1)
    assert (request.method, request.path) == ("POST", bob_browser.path)  # not to the sender
    assert bob_browser.decrypt(request) == {
        "title": alice.username, "body": "x" * 200 + "...",
        "data": {"roomId": room_id, "messageId": message["id"]},
    }  # fmt: skip
    public = push_hub.services.settings.vapid_public_key or ""
    claims = vapid_claims(request, public)
    assert claims["aud"] == push_service.url
    assert claims["sub"] == "mailto:noreply@agentim.app"
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    assert int(request.headers["ttl"]) > 0
    await trio.sleep(0.3)
    assert len(push_service.requests) == 1


async def test_members_with_an_open_socket_get_no_push(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    alice, bob, carol = [await signed_in_user(push_hub) for _ in range(3)]
    room_id = await create_room(push_hub, alice, members=(bob, carol))
    bob_browser, carol_browser = Browser.new(push_service), Browser.new(push_service)
    await subscribe(http, bob, bob_browser)
    await subscribe(http, carol, carol_browser)
    async with signed_in(push_hub, carol):  # carol's app is open (not even in the room)
        await say(push_hub, alice, room_id, "hello")
        [request] = await wait_requests(push_service, 1)
        assert request.path == bob_browser.path
        await trio.sleep(0.3)
        assert [r.path for r in push_service.requests] == [bob_browser.path]


async def test_a_socket_on_another_hub_process_counts_as_online(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    push_service: FakeLlm,
) -> None:  # fmt: skip
    allowed = attrs.evolve(settings, push_allow_private_networks=True)
    first = await start_hub(nursery, allowed, redis_prefix)
    second = await start_hub(nursery, allowed, redis_prefix)  # same data dir: the same keys
    assert first.services.settings.vapid_public_key == second.services.settings.vapid_public_key
    alice, bob, carol = [await signed_in_user(first) for _ in range(3)]
    room_id = await create_room(first, alice, members=(bob, carol))
    bob_browser, carol_browser = Browser.new(push_service), Browser.new(push_service)
    async with httpx.AsyncClient(base_url=second.url, timeout=30) as http:
        await subscribe(http, bob, bob_browser)
        await subscribe(http, carol, carol_browser)
    async with signed_in(second, carol):
        await say(first, alice, room_id, "across processes")
        [request] = await wait_requests(push_service, 1)
        assert request.path == bob_browser.path
        await trio.sleep(0.3)
        assert len(push_service.requests) == 1


async def test_an_agent_reply_is_pushed_with_the_agent_as_title(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    bob = await signed_in_user(push_hub)
    browser = Browser.new(push_service)
    await subscribe(http, bob, browser)
    async with agent_with_watcher(push_hub) as scene:  # the owner watches: no push for them
        await subscribe(http, scene.owner, Browser.new(push_service))
        await push_hub.services.db.execute(
            "INSERT INTO room_members (room_id, member_id, member_type, role, joined_at) "
            "VALUES ($1, $2, 'user', 'member', now()::text)",
            scene.room_id, bob.id,
        )  # fmt: skip
        await scene.gateway.complete(scene.room_id, scene.agent_id, "m-push-1", "done!")
        complete = await scene.client.receive_type("server:message_complete")
        [request] = await wait_requests(push_service, 1)
        assert request.path == browser.path
        assert browser.decrypt(request) == {
            "title": complete["message"]["senderName"], "body": "done!",
            "data": {"roomId": scene.room_id, "messageId": complete["message"]["id"]},
        }  # fmt: skip


@pytest.mark.parametrize("status", [404, 410])
async def test_an_expired_subscription_is_removed(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm, status: int
) -> None:
    alice, bob = await signed_in_user(push_hub), await signed_in_user(push_hub)
    room_id = await create_room(push_hub, alice, members=(bob,))
    await subscribe(http, bob, Browser.new(push_service))
    push_service.status = status
    await say(push_hub, alice, room_id, "anyone?")
    await wait_requests(push_service, 1)
    with trio.fail_after(10):
        while await subscriptions(push_hub, bob):  # noqa: ASYNC110
            await trio.sleep(0.02)  # a database row: polling is the only way to watch it
    await trio.sleep(0.7)
    assert len(push_service.requests) == 1  # gone: no retry


async def test_a_failed_push_is_retried_once_and_the_subscription_kept(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    alice, bob = await signed_in_user(push_hub), await signed_in_user(push_hub)
    room_id = await create_room(push_hub, alice, members=(bob,))
    browser = Browser.new(push_service)
    await subscribe(http, bob, browser)
    push_service.status = 500
    await say(push_hub, alice, room_id, "anyone?")
    await wait_requests(push_service, 2)
    await trio.sleep(0.7)
    assert len(push_service.requests) == 2
    assert await subscriptions(push_hub, bob) == [browser.endpoint]


async def test_a_hung_push_service_does_not_slow_messages(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str,
    push_service: FakeLlm,
) -> None:  # fmt: skip
    hub = await start_hub(
        nursery, attrs.evolve(settings, push_allow_private_networks=True, push_timeout_s=1.0),
        redis_prefix,
    )  # fmt: skip
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        await subscribe(http, bob, Browser.new(push_service))
    push_service.delay_s = 30
    started = trio.current_time()
    for n in range(5):
        await say(hub, alice, room_id, f"message {n}")
    assert trio.current_time() - started < 1.0  # five stored and broadcast meanwhile
    await wait_requests(push_service, 2)  # the first push and its retry, each given up after 1 s


async def test_the_push_queue_is_bounded_and_never_blocks() -> None:
    queue = PushQueue()
    job = PushJob("room", None, {})
    assert queue.offer(job) is False  # no sender yet: nothing is kept
    receive = queue.open(2)
    assert [queue.offer(job) for _ in range(3)] == [True, True, False]
    assert receive.receive_nowait() == job


async def test_private_endpoints_are_refused_by_default(
    hub: RunningHub, client: httpx.AsyncClient, push_service: FakeLlm,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    alice, bob = await signed_in_user(hub), await signed_in_user(hub)
    room_id = await create_room(hub, alice, members=(bob,))
    await subscribe(client, bob, Browser.new(push_service))  # accepted: checked when sending
    await say(hub, alice, room_id, "to 127.0.0.1?")
    with trio.fail_after(10):
        while "points to internal or private networks" not in caplog.text:  # noqa: ASYNC110
            await trio.sleep(0.05)  # the refusal is only seen in the log
    assert push_service.requests == []


async def test_keys_that_are_not_a_browsers_are_refused(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    user = await signed_in_user(push_hub)
    good = Browser.new(push_service).subscription()
    point = good["keys"]["p256dh"]
    for keys in (
        {"p256dh": point[:-4], "auth": good["keys"]["auth"]},  # cut short
        {
            "p256dh": point[:40] + ("A" if point[40] != "A" else "B") + point[41:],
            "auth": good["keys"]["auth"],
        },  # not on the curve
        {"p256dh": point, "auth": good["keys"]["auth"][:10]},  # auth not 16 bytes
        {"p256dh": point, "auth": "%%%"},
    ):
        response = await http.post(
            "/api/push/subscribe", json={**good, "keys": keys}, headers=user.headers
        )
        assert (response.status_code, response.json()["error"]) == (
            400,
            "Invalid subscription data",
        )
    assert await subscriptions(push_hub, user) == []


def test_vapid_tokens_are_signed_once_per_push_service() -> None:
    public, private = new_vapid_keys()
    signer = VapidSigner(private, "mailto:ops@example.com")
    first = signer.headers("https://push.example.net/a/1")
    assert signer.headers("https://push.example.net/b/2") == first  # one origin, one token
    other = signer.headers("https://updates.example.org/x")
    assert other["Authorization"] != first["Authorization"]
    assert other["Authorization"].endswith(f",k={public}")
    assert (first["Content-Encoding"], first["TTL"]) == ("aes128gcm", "86400")


async def test_a_user_keeps_only_the_newest_subscriptions(
    push_hub: RunningHub, http: httpx.AsyncClient, push_service: FakeLlm
) -> None:
    user = await signed_in_user(push_hub)
    browsers = [Browser.new(push_service, f"/push/{n:02}") for n in range(22)]
    for browser in browsers:
        await subscribe(http, user, browser)
        await trio.sleep(0.002)  # distinct created_at
    assert await subscriptions(push_hub, user) == sorted(b.endpoint for b in browsers[2:])
