"""Malformed configs and snapshots: each gives one clear line naming the field, exit 2, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hedged.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CFG = (ROOT / "examples" / "hedged.toml").read_text()
EXAMPLE_SNAP = json.loads((ROOT / "examples" / "snapshot.json").read_text())
runner = CliRunner()

MINIMAL = """
[venues.bybit]
exchange = "bybit"

[[hedge]]
asset = "BTC"
venue = "bybit"
instrument = "BTC/USD:BTC"
"""

BAD_CONFIGS = [
    ("missing exchange", MINIMAL.replace('exchange = "bybit"', ""), "venues.bybit.exchange: required key is missing"),
    ("missing asset", MINIMAL.replace('asset = "BTC"', ""), "hedge[0].asset: required key is missing"),
    ("no hedge", '[venues.bybit]\nexchange = "bybit"\n', "hedge: required key is missing"),
    ("wrong type", MINIMAL + '\n[keeper]\ninterval = "often"\n', "keeper.interval: expected a number, got a string"),
    ("negative ratio", MINIMAL.replace('instrument = "BTC/USD:BTC"', 'instrument = "BTC/USD:BTC"\nratio = -1'),
     "hedge[0].ratio: Input should be greater than or equal to 0"),
    ("ratio over max", MINIMAL.replace('instrument = "BTC/USD:BTC"', 'instrument = "BTC/USD:BTC"\nratio = 2'),
     "hedge[0].ratio: 2 exceeds limits.max_ratio 1.05"),
    ("unknown venue", MINIMAL.replace('venue = "bybit"', 'venue = "okx"'),
     "hedge[0].venue: unknown venue 'okx', expected one of ['bybit']"),
    ("unknown source", MINIMAL.replace('venue = "bybit"', 'venue = "bybit"\nsources = ["cold"]'),
     "hedge[0].sources[0]: unknown venue 'cold'"),
    ("bad instrument", MINIMAL.replace("BTC/USD:BTC", "BTCUSD"), "hedge[0].instrument: expected a ccxt perpetual"),
    ("inline secret", MINIMAL.replace('exchange = "bybit"', 'exchange = "bybit"\nsecret = "s3cr3t-value"'),
     "venues.bybit: inline secret 'secret' refused"),
    ("inline key in options", MINIMAL.replace('exchange = "bybit"', 'exchange = "bybit"\noptions = {apiKey = "k"}'),
     "venues.bybit: inline secret options.'apiKey' refused"),
    ("inline mqtt password", MINIMAL + '\n[mqtt]\npassword = "hunter2"\n',
     "mqtt: inline secret 'password' refused: use password_env or password_file"),
    ("unknown key", MINIMAL + '\n[limits]\nmax_orders = 5\n', "limits.max_orders: unknown key"),
    ("bad name", MINIMAL + '\n[keeper]\nname = "Main Keeper"\n', "keeper.name: String should match pattern"),
    # `_` ends the client-id prefix (`main_…`): a name holding it could take another keeper's orders for its own
    ("name with the separator", MINIMAL + '\n[keeper]\nname = "main_b"\n', "keeper.name: String should match pattern"),
    ("proxy without price", MINIMAL.replace('asset = "BTC"', 'asset = "SOL"'), "hedge[0].price_symbol: required"),
    ("naive until", MINIMAL.replace('venue = "bybit"', 'venue = "bybit"\nuntil = 2026-12-01T00:00:00'),
     "hedge[0].until: expected an RFC 3339 time with a UTC offset"),
    ("naive until string", MINIMAL.replace('venue = "bybit"', 'venue = "bybit"\nuntil = "2026-12-01T00:00:00"'),
     "hedge[0].until: expected an RFC 3339 time with a UTC offset"),
    ("bad toml", "[venues.bybit\nexchange=", "not valid TOML"),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_config_check_names_the_problem(tmp_path: Path, name: str, text: str, expected: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    result = runner.invoke(app, ["config", "check", str(cfg)])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert "s3cr3t-value" not in result.output and "hunter2" not in result.output
    # and `plan` refuses the same config, one line per problem on stderr, exit 2
    snap = tmp_path / "snap.json"
    snap.write_text(json.dumps(EXAMPLE_SNAP))
    result = runner.invoke(app, ["plan", "--config", str(cfg), "--snapshot", str(snap), "--json"])
    assert result.exit_code == 2 and expected in result.stderr and result.stdout == ""


def test_config_check_reports_every_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    bad = MINIMAL.replace('venue = "bybit"', 'venue = "bybit"\nratio = -3\nbeta = 0')
    cfg.write_text(bad + '[keeper]\ninterval = "x"\n')
    out = runner.invoke(app, ["config", "check", str(cfg)]).output.strip().splitlines()
    assert [line.split(":")[0] for line in out] == ["keeper.interval", "hedge[0].ratio", "hedge[0].beta"]


def test_minimal_config_is_ok_and_relative_sqlite_resolves(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.toml"
    cfg.write_text(MINIMAL)
    result = runner.invoke(app, ["config", "check", str(cfg)])
    assert (result.exit_code, result.output) == (0, "ok\n")
    from hedged.config import load_config

    assert load_config(cfg).audit_url == f"sqlite:///{tmp_path.resolve()}/hedged.db"


def _bad_snap(mutate: Callable[[dict[str, Any]], object]) -> str:
    snap = json.loads(json.dumps(EXAMPLE_SNAP))
    mutate(snap)
    return json.dumps(snap)


BAD_SNAPSHOTS = [
    ("garbage", "{not json", "not valid JSON"),
    ("not an object", "[1, 2]", "snapshot: expected an object"),
    ("wrong version", _bad_snap(lambda s: s.update(version=2)), "version: expected 1, got 2"),
    ("missing time", _bad_snap(lambda s: s.pop("time")), "time: expected an RFC 3339 time"),
    ("missing venue", _bad_snap(lambda s: s["venues"].pop("bybit")), "venues.bybit: venue is configured but missing"),
    ("missing market", _bad_snap(lambda s: s["venues"]["bybit"]["markets"].pop("ETH/USD:ETH")),
     "venues.bybit.markets: unknown instrument 'ETH/USD:ETH'"),
    ("string price", _bad_snap(lambda s: s["venues"]["bybit"]["tickers"]["BTC/USD:BTC"].update(markPrice="high")),
     "venues.bybit.tickers['BTC/USD:BTC'].markPrice: expected a number, got 'high'"),
    ("bad contract size", _bad_snap(lambda s: s["venues"]["bybit"]["markets"]["BTC/USD:BTC"].update(contractSize=0)),
     "venues.bybit.markets['BTC/USD:BTC'].contractSize: expected a number > 0"),
    ("bad side", _bad_snap(lambda s: s["venues"]["bybit"]["positions"][0].update(side="flat")),
     "venues.bybit.positions[0].side: expected 'long' or 'short'"),
    ("positions not list", _bad_snap(lambda s: s["venues"]["bybit"].update(positions={})),
     "venues.bybit.positions: expected a list"),
    ("no price", _bad_snap(lambda s: s["venues"]["bybit"]["tickers"].pop("ETH/USD:ETH")),
     "venues.bybit.tickers['ETH/USD:ETH']: no mark or last price"),
    # text that is not a number is refused wherever a number is read, the empty string too (it is not
    # ccxt's "absent", which is null): one parser (hedged.snapshot.to_decimal) for every field
    *[(f"{name} {text!r}", _bad_snap(lambda s, put=put, text=text: put(s["venues"]["bybit"], text)),  # type: ignore[misc]
       f"venues.bybit.{field}: expected a number, got {text!r}")
      for name, field, put in (
          ("balance total", "balance.BTC.total", lambda v, x: v["balance"]["BTC"].update(total=x)),
          ("balance total map", "balance.total.BTC", lambda v, x: v["balance"]["total"].update(BTC=x)),
          ("contracts", "positions[0].contracts", lambda v, x: v["positions"][0].update(contracts=x)),
          ("entry price", "positions[0].entryPrice", lambda v, x: v["positions"][0].update(entryPrice=x)),
          ("mark price", "tickers['BTC/USD:BTC'].markPrice",
           lambda v, x: v["tickers"]["BTC/USD:BTC"].update(markPrice=x)),
          ("contract size", "markets['BTC/USD:BTC'].contractSize",
           lambda v, x: v["markets"]["BTC/USD:BTC"].update(contractSize=x)),
          ("tick", "markets['BTC/USD:BTC'].precision.price",
           lambda v, x: v["markets"]["BTC/USD:BTC"]["precision"].update(price=x)),
          ("order amount", "open_orders[0].amount",
           lambda v, x: v.update(open_orders=[{"symbol": "BTC/USD:BTC", "side": "buy", "amount": x}])),
      )
      for text in ("", " ", " 10", "1_000", "NaN")],
    ("empty time", _bad_snap(lambda s: s["venues"]["bybit"]["positions"][0].update(timestamp="")),
     "venues.bybit.positions[0].timestamp: expected an RFC 3339 time, got ''"),
]


@pytest.mark.parametrize(("name", "text", "expected"), BAD_SNAPSHOTS, ids=[c[0] for c in BAD_SNAPSHOTS])
def test_plan_rejects_bad_snapshots(tmp_path: Path, name: str, text: str, expected: str) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(EXAMPLE_CFG)
    snap = tmp_path / "snap.json"
    snap.write_text(text)
    result = runner.invoke(app, ["plan", "--config", str(cfg), "--snapshot", str(snap), "--json"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines
    assert result.stdout == ""


def test_plan_json_shape_and_exit_zero_even_when_blocked(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(EXAMPLE_CFG + "\n[limits]\nmax_data_age = 1\n")
    snap = _bad_snap(lambda s: s.update(time="2026-11-21T12:00:05Z"))
    (tmp_path / "s.json").write_text(snap)
    result = runner.invoke(app, ["plan", "--config", str(cfg), "--snapshot", str(tmp_path / "s.json"), "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert set(out) == {"instruments", "hedges", "orders", "cancels"}
    assert out["orders"] == []
    inst = out["instruments"][0]
    assert set(inst) == {"venue", "symbol", "hedge", "inflight", "target", "drift", "mark", "band", "action",
                         "reasons"}
    assert inst["action"] == "blocked" and any(r.startswith("stale_data") for r in inst["reasons"])
    assert all(isinstance(inst[k], int | float) for k in ("hedge", "inflight", "target", "drift", "mark", "band"))


def test_example_plan_exact_figures() -> None:
    result = runner.invoke(app, ["plan", "--config", str(ROOT / "examples/hedged.toml"),
                                 "--snapshot", str(ROOT / "examples/snapshot.json"), "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    orders = {o["symbol"]: o for o in out["orders"]}
    assert orders["BTC/USD:BTC"]["amount"] == 40625 and orders["BTC/USD:BTC"]["side"] == "sell"
    assert orders["ETH/USD:ETH"]["amount"] == 100000  # 300,000 wanted, cut to max_order_usd
    assert orders["ETH/USD:ETH"]["client_id"].startswith("main_")


def test_cli_process_never_prints_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text("{oops")
    proc = subprocess.run(
        [sys.executable, "-m", "hedged", "plan", "--config", str(ROOT / "examples/hedged.toml"),
         "--snapshot", str(tmp_path / "s.json")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr
