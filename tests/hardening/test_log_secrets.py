"""Secrets in logs (issue 17, item 12): an exchange error that quotes the API key never reaches a log line,
a rendered exception or an escaping traceback."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from aiohttp import web

KEY, SECRET = "PROXYKEY-7f3a9c21d4", "PROXYSECRET-2b8e61aa90"


def test_log_lines_and_rendered_exceptions_are_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    from hedged import log

    log.configure(json=True)
    log.register_secrets([KEY, SECRET])
    logger = log.get_logger("t")
    logger.error("keeper.cycle_failed", error=f"AuthFailed: 10004 error sign! origin_string[1700000000000{KEY}5000]",
                 nested={"deep": [f"x{SECRET}y"]})
    try:
        raise RuntimeError(f"bybit {{\"retCode\":10004,\"retMsg\":\"error sign! origin_string[{KEY}]\"}}")
    except RuntimeError:
        logger.exception("boom")
    logger.warning("pair", detail="GET /v5/x?api_key=abcdef123456&sign=0011223344")
    err = capsys.readouterr().err
    assert KEY not in err and SECRET not in err, err
    assert "abcdef123456" not in err and "0011223344" not in err
    assert "[redacted]" in err and "Traceback" in err  # the exception was rendered, then scrubbed


async def fake_bybit(request: web.Request) -> web.Response:
    """Answers like Bybit's older APIs behind a proxy: the error quotes the signed origin string, key included."""
    body = {"retCode": 10004, "retMsg": f"error sign! origin_string[{int(time.time() * 1000)}{KEY}5000]",
            "result": {}, "retExtInfo": {}, "time": int(time.time() * 1000)}
    return web.json_response(body)


@pytest.mark.timeout(120)
async def test_a_keeper_behind_a_proxy_quoting_the_key_never_prints_it(tmp_path: Path) -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake_bybit)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        cfg = tmp_path / "hedged.toml"
        cfg.write_text(f"""
[keeper]
name = "proxy"
interval = 0.2
max_failures = 1000
[venues.sim]
exchange = "bybit"
url = "http://127.0.0.1:{port}"
api_key_env = "PK"
secret_env = "PS"
timeout = 2
[[hedge]]
asset = "BTC"
venue = "sim"
instrument = "BTC/USD:BTC"
[audit]
url = "sqlite:///audit.db"
""")
        env = {**os.environ, "PK": KEY, "PS": SECRET}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hedged", "run", "--config", str(cfg), cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:  # still retrying its start-up: what it printed so far is what we check
            proc.terminate()
            out, err = await proc.communicate()
        text = (out + err).decode(errors="replace")
        assert "10004" in text or "sign" in text, text[-2000:]  # the error really was reported
        assert KEY not in text and SECRET not in text, text[-2000:]
    finally:
        await runner.cleanup()


def test_json_is_still_json_after_scrubbing(capsys: pytest.CaptureFixture[str]) -> None:
    from hedged import log

    log.configure(json=True)
    log.get_logger("t").info("x", n=3, items=["a", "b"])
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["n"] == 3
