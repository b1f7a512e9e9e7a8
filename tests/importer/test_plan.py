"""The pure part of the importer: row conversion, source SELECTs per schema version, secrets."""

from __future__ import annotations

from agentim.auth.crypto import open_secret, seal
from agentim.importer.plan import NO_PASSWORD, Fixups, by_hub_name, convert, upload_name
from agentim.importer.run import Secrets, secret_sealer
from agentim.importer.source import V631, V728, SourceSchema

HUB_KEY, OLD_KEY = "hub-key-" * 5, "old-key-" * 5


def _row(table: str, **values: object) -> tuple[object, ...]:
    return tuple(values.get(name) for name in by_hub_name(table).names)


def test_agents_take_the_hub_types_and_start_offline() -> None:
    agents = by_hub_name("agents")
    row = convert(agents, _row("agents", type="cursor", visibility="shared", status="online"),
                  Fixups())  # fmt: skip
    values = dict(zip(agents.names, row, strict=True))
    assert (values["type"], values["visibility"], values["status"]) == ("generic", "all", "offline")
    kept = convert(agents, _row("agents", type="codex", visibility="whitelist"), Fixups())
    assert dict(zip(agents.names, kept, strict=True))["type"] == "codex"


def test_user_ids_are_remapped_in_columns_and_json_lists() -> None:
    fixups = Fixups(user_ids={"old": "new"})
    routers = by_hub_name("routers")
    row = convert(routers, _row("routers", created_by_id="old", llm_api_key="k",
                                visibility_list='["old", "other"]'), fixups)  # fmt: skip
    values = dict(zip(routers.names, row, strict=True))
    assert values["created_by_id"] == "new"
    assert values["visibility_list"] == '["new", "other"]'
    members = by_hub_name("room_members")
    row = convert(members, _row("room_members", member_id="agent1"), fixups)
    assert dict(zip(members.names, row, strict=True))["member_id"] == "agent1"


def test_a_user_without_password_gets_one_that_never_verifies() -> None:
    users = by_hub_name("users")
    row = convert(users, _row("users", password_hash=None), Fixups())
    assert dict(zip(users.names, row, strict=True))["password_hash"] == NO_PASSWORD


def test_selects_follow_the_source_column_types() -> None:
    messages = by_hub_name("messages")
    old = {"messages": {name: "text" for name in messages.names}}
    new = {"messages": {**old["messages"], "created_at": "timestamp with time zone",
                        "mentions": "jsonb"}}  # fmt: skip
    assert SourceSchema(old).version == V728
    assert SourceSchema({"messages": {**new["messages"], "chunks": "jsonb",
                         "updated_at": "timestamp with time zone"}}).version == V631  # fmt: skip
    select = SourceSchema(new).select(messages)
    assert """to_char("created_at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')""" in select
    assert '"mentions"::text' in select and select.endswith("ORDER BY id")
    rooms = by_hub_name("rooms")
    without = {"rooms": {n: "text" for n in rooms.names if n != "agent_command_role"}}
    assert "'member'" in SourceSchema(without).select(rooms)  # 728c8f5 has no such column


def test_router_keys_are_resealed_only_when_needed() -> None:
    counts = Secrets()
    same = seal("sk-1", HUB_KEY)
    reseal = secret_sealer(HUB_KEY, OLD_KEY, counts)
    assert reseal(same) == same
    moved = reseal(seal("sk-2", OLD_KEY))
    assert open_secret(moved, HUB_KEY) == "sk-2"
    assert open_secret(reseal("sk-plain"), HUB_KEY) == "sk-plain"
    lost = seal("sk-3", "another-key-" * 3)
    assert reseal(lost) == lost
    assert (counts.resealed, counts.unreadable) == (2, 1)
    assert secret_sealer(None, None, Secrets())("sk-plain") == "sk-plain"


def test_only_plain_upload_names_are_copied() -> None:
    assert upload_name("/uploads/a1.png") == "a1.png"
    for url in ("/uploads/../etc/passwd", "/uploads/.hidden", "https://x/uploads/a", None,
                "/uploads/", "/uploads/sub/a.png"):  # fmt: skip
        assert upload_name(url) is None
