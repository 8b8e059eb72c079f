"""The local exchange's admin API (issue 17, item 13): 400 on bodies of the wrong shape, JSON only, and no
requests from a browser page."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hedged.sim.server import Emulator


async def post(emu: Emulator, path: str, **kw: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.post(f"{emu.url}/_admin/{path}", **kw) as r:
        return r.status, await r.json(content_type=None)


@pytest.mark.parametrize(("path", "body"), [
    ("faults", {"seed": "x"}),
    ("settings", {"rate_limit": 5}),
    ("account", {"api_key": "k", "secret": "s", "balances": 1}),
    ("account", {"api_key": "k", "secret": "s", "balances": {"BTC": "lots"}}),
    ("faults", {"rules": [5]}),
    ("step", {"seconds": "soon"}),
])
async def test_bad_bodies_are_400(emulator: Emulator, path: str, body: dict[str, Any]) -> None:
    status, reply = await post(emulator, path, json=body)
    assert status == 400 and reply["error"], reply


async def test_a_cross_origin_text_plain_post_is_refused(emulator: Emulator) -> None:
    before = emulator.engine.index["BTC"]
    status, _ = await post(emulator, "price", data='{"asset": "BTC", "price": 1}',
                           headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert status == 403
    status, _ = await post(emulator, "price", data='{"asset": "BTC", "price": 1}',
                           headers={"Content-Type": "text/plain"})
    assert status == 415
    status, _ = await post(emulator, "price", json={"asset": "BTC", "price": 1},
                           headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    assert emulator.engine.index["BTC"] == before
    assert (await post(emulator, "price", json={"asset": "BTC", "price": 70000}))[0] == 200  # tools still work
