"""`hedged simulate` / `hedged report` from the command line: JSON shape, bad input, the rendered report."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hedged.cli import app

CONFIG = '[venues.sim]\nexchange = "bybit"\n[[hedge]]\nasset = "BTC"\nvenue = "sim"\ninstrument = "BTC/USD:BTC"\n'


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    f = tmp_path / "hedged.toml"
    f.write_text(CONFIG)
    return f


def test_json_has_every_scenario_field(cfg: Path) -> None:
    out = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--days", "1", "--step", "600", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [s["rule"] for s in data["scenarios"]] == ["config", "naive", "unhedged"]
    for s in data["scenarios"]:
        for key in ("orders", "fills", "cancelled_unfilled", "fees_usd", "funding_usd", "spread_usd", "cost_usd",
                    "cost_pct_per_year", "hedge_effectiveness", "max_drift", "mean_drift", "worst_day_usd",
                    "start_usd", "final_usd", "steps", "time_outside_band_pct"):
            assert key in s
        assert s["steps"] == 144
    assert data["scenarios"][0]["funding_usd"] > 0  # default 0.0001 per interval, received by the short


def test_sweep_runs_the_grid(cfg: Path) -> None:
    out = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--days", "1", "--step", "900", "--json",
                                   "--sweep", "band=0.005,0.02", "--sweep", "ratio=0.5,1"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)["sweep"]
    assert [r["params"] for r in rows] == [{"band": b, "ratio": r} for b in ("0.005", "0.02") for r in ("0.5", "1")]
    assert rows[0]["hedged_notional_usd"] < rows[1]["hedged_notional_usd"]  # ratio 0.5 hedges half


@pytest.mark.parametrize(("args", "needle"), [
    (["--path", "nope.csv"], "--path nope.csv: expected one of gbm, jumps, crash, flat or a CSV file"),
    (["--start", "yesterday"], "--start: expected an RFC 3339 time"),
    (["--deposit", "BTC=1"], "expected COIN=AMOUNT@DAYS"),
    (["--balance", "DOGE=5"], "DOGE: no start price"),
    (["--sweep", "band=2"], "hedge[0].band"),
    (["--days", "0"], "--days"),
])
def test_bad_input_is_one_line_and_exit_2(cfg: Path, args: list[str], needle: str) -> None:
    out = CliRunner().invoke(app, ["simulate", "--config", str(cfg), *args])
    assert out.exit_code == 2
    assert needle in out.output
    assert "Traceback" not in out.output


def test_csv_candles(cfg: Path, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    rows = ["timestamp,open,high,low,close,funding"]
    price = 65000.0
    for i in range(48):
        nxt = price * (1.03 if i % 2 else 0.97)
        rows.append(f"{1767225600 + 3600 * (i + 1)},{price},{max(price, nxt) + 50},{min(price, nxt) - 50},{nxt},0")
        price = nxt
    f.write_text("\n".join(rows) + "\n")
    out = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--path", str(f), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["path"]["step_s"] == 3600 and data["path"]["steps"] == 48
    ours, naive = data["scenarios"][0], data["scenarios"][1]
    assert ours["orders"] == 0 and ours["funding_usd"] == 0
    assert naive["orders"] > 10  # ±3 % every hour: the naive rule chases each move


def test_report_renders_html_and_pngs(cfg: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--days", "1", "--step", "600",
                                   "--out", str(run)])
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(app, ["report", "--sim", str(run)])
    assert out.exit_code == 0, out.output
    names = ("value.png", "hedge.png", "funding_fees.png", "drift.png", "orders.png", "funding_rate.png")
    for n in names:
        assert (run / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (run / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(names)
    assert "naive rule:" in page


def test_report_without_matplotlib_says_how_to_install(cfg: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    assert CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--days", "0.5", "--step", "900",
                                    "--out", str(run)]).exit_code == 0
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = CliRunner().invoke(app, ["report", "--sim", str(run)])
    assert out.exit_code == 1
    assert "pip install 'hedged[report]'" in out.output


def test_report_of_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["report", "--sim", str(tmp_path)])
    assert out.exit_code == 2
    assert "summary.json" in out.output


def test_drawn_funding_and_snapshot_files_for_plan(cfg: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--days", "2", "--step", "900", "--funding-vol",
                                   "0.0002", "--out", str(run), "--snapshot-at", "5", "--snapshot-at", "100"])
    assert out.exit_code == 0, out.output
    rates = {line.split(",")[-1] for line in (run / "series_config.csv").read_text().splitlines()[1:]}
    assert len(rates) > 50  # a drawn path, not a constant
    for step in (5, 100):
        snap = run / f"snapshot_{step}.json"
        res = CliRunner().invoke(app, ["plan", "--config", str(cfg), "--snapshot", str(snap), "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["instruments"][0]["action"] == "hold"
