"""GET / without WEB_DIR: the hub's own landing page; with WEB_DIR the web client keeps `/`."""

from __future__ import annotations

import re

import attrs
import httpx
import trio

from agentim import __version__
from agentim.settings import Settings
from tests.conftest import start_hub
from tests.helpers import RunningHub


async def test_landing_page_says_what_and_how_to_connect(hub: RunningHub) -> None:
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=hub.url) as client:
            page = await client.get("/", headers={"Host": "chat.example.test:8080"})
            head = await client.head("/")
            other = await client.get("/nothing-here")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f"AgentIM hub <small>{__version__}</small>" in page.text
    assert 'Health: <span class="ok">ok</span>' in page.text
    assert "npm i -g agentim\nagentim login -s http://chat.example.test:8080</pre>" in page.text
    assert "WEB_DIR" in page.text
    assert "<script" not in page.text and "https://" not in page.text  # nothing fetched from a CDN
    assert head.status_code == 200
    assert (other.status_code, other.text) == (404, "404 Not Found")  # only `/` changed


async def test_a_hostile_host_header_is_escaped(hub: RunningHub) -> None:
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=hub.url) as client:
            page = await client.get("/", headers={"Host": 'a<b>"c'})
    assert page.status_code == 200, page.status_code
    assert "a<b>" not in page.text
    found = re.search(r"agentim login -s (.*)</pre>", page.text)
    assert found is not None and found.group(1) == f"http://localhost:{hub.services.settings.port}"


async def test_with_web_dir_the_web_client_keeps_the_root(
    bridge: None, nursery: trio.Nursery, settings: Settings, redis_prefix: str
) -> None:
    web = settings.data_dir.parent / "web"
    web.mkdir()
    (web / "index.html").write_text("<html>app</html>")
    hub = await start_hub(nursery, attrs.evolve(settings, web_dir=web), redis_prefix)
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=hub.url) as client:
            root = await client.get("/")
    assert root.text == "<html>app</html>"
