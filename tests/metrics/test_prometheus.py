"""A real Prometheus scrapes a keeper trading against the local exchange; every PromQL expression of the
Grafana dashboard (deploy/grafana/hedged.json) must parse and return data through Prometheus's HTTP API."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import Running, free_port

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "hedged.json"
PROMETHEUS = shutil.which("prometheus")
if PROMETHEUS is None and os.environ.get("CI") == "true":
    raise RuntimeError("CI=true: Prometheus is required (apt-get install prometheus; .ci/run installs it)")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)")


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (label names inside by/on (...) are not metrics)."""
    bare = re.sub(r"\b(by|on)\s*\([^)]*\)", "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    return {w for w in re.findall(r"[a-z_][a-z0-9_]*", bare) if w.startswith("hedged_")}


def test_dashboard_is_importable_json() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "hedged" and dash["panels"]
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource"}
    titles = " ".join(p["title"].lower() for p in dash["panels"])
    for topic in ("drift", "hedge ratio", "usd exposure", "funding cost", "orders", "denials", "cycle latency",
                  "trading state"):
        assert topic in titles, topic
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


async def test_every_panel_query_returns_data_from_a_real_prometheus(running: Any, tmp_path: Path) -> None:
    r: Running = await running(keeper={"interval": 0.2})
    # some exchange errors to count (the keeper retries through them), and a deposit to trade on
    r.emu.faults.add({"kind": "http_5xx", "endpoint": "/v5/market/tickers", "count": 2})
    r.emu.engine.credit("demo-key", "ETH", Decimal(5))
    families = set(await r.scrape())

    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"scrape_configs:\n  - job_name: hedged\n    static_configs:\n      - targets: ['{r.url[7:]}']\n")
    assert PROMETHEUS is not None
    log = (tmp_path / "prometheus.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn", stdout=log, stderr=log)
    api = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:

            async def query(expr: str) -> dict[str, Any]:
                async with http.get(f"{api}/api/v1/query", params={"query": expr}) as resp:
                    body: dict[str, Any] = await resp.json()
                    return body

            async def scraped_enough() -> bool:
                assert proc.returncode is None, (tmp_path / "prometheus.log").read_text()
                body = await query("count_over_time(hedged_cycles_total[5m])")
                result = body.get("data", {}).get("result", [])
                return bool(result) and float(result[0]["value"][1]) >= 8

            await r.until("Prometheus has scraped the keeper 8 times", scraped_enough, bound=120)
            exprs = dashboard_exprs()
            assert len(exprs) >= 20
            empty = []
            for title, expr in exprs:
                unknown = metric_names(expr) - _series_names(families)
                assert not unknown, f"{title}: {expr} reads unknown metrics {unknown}"
                body = await query(expr)
                assert body["status"] == "success", (title, expr, body)
                if not body["data"]["result"]:
                    empty.append((title, expr))
            assert not empty, f"queries without data: {empty}"
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


def _series_names(families: set[str]) -> set[str]:
    """Names Prometheus stores for the parser's families: counters get _total, histograms _bucket/_sum/_count."""
    out: set[str] = set()
    for f in families:
        out |= {f, f"{f}_total", f"{f}_bucket", f"{f}_sum", f"{f}_count"}
    return out
