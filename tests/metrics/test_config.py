"""`[metrics]`: bad values are one line naming the key; a port that cannot be bound stops `hedged run` cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hedged.config import ConfigError, MetricsConfig, parse_config

BASE = {"venues": {"x": {"exchange": "bybit"}}, "hedge": [{"asset": "BTC", "venue": "x", "instrument": "BTC/USD:BTC"}]}


@pytest.mark.parametrize("listen", ["9464", "localhost", "127.0.0.1:99999", "127.0.0.1:-1", "a b:1", ""])
def test_bad_listen_is_one_line_naming_the_key(listen: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "metrics": {"enabled": True, "listen": listen}})
    assert err.value.problems == ["metrics.listen: expected HOST:PORT, e.g. 127.0.0.1:9464 (port 0-65535)"]


def test_listen_forms() -> None:
    assert (MetricsConfig(listen="0.0.0.0:9464").host, MetricsConfig(listen="0.0.0.0:9464").port) == ("0.0.0.0", 9464)
    assert MetricsConfig(listen="[::1]:9000").host == "::1"
    assert MetricsConfig().listen == "127.0.0.1:9464" and not MetricsConfig().enabled
    with pytest.raises(ConfigError) as err:
        parse_config({**BASE, "metrics": {"enable": True}})
    assert err.value.problems == ["metrics.enable: unknown key"]


def test_port_in_use_stops_run_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "hedged.toml"
        cfg.write_text(f"""
[venues.sim]
exchange = "bybit"
url = "http://127.0.0.1:9"

[[hedge]]
asset = "BTC"
venue = "sim"
instrument = "BTC/USD:BTC"

[audit]
url = "sqlite:///{tmp_path / 'a.db'}"

[metrics]
enabled = true
listen = "127.0.0.1:{port}"
""")
        out = subprocess.run([sys.executable, "-m", "hedged", "run", "--config", str(cfg)], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert out.returncode == 2, out
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: metrics.listen: cannot listen on 127.0.0.1:{port}")
    assert "Traceback" not in out.stderr


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["demo.toml", "hedged.toml"])
def test_the_compose_keeper_configs_are_valid(name: str) -> None:
    from hedged.config import load_config

    cfg = load_config(ROOT / "deploy" / "docker" / name)
    assert cfg.metrics.enabled and cfg.metrics.listen == "0.0.0.0:9464"  # the port compose publishes
    assert cfg.keeper.name == "main"  # deploy/mosquitto/acl is written for it
    assert cfg.audit.url.startswith("postgresql://hedged@postgres:5432/")  # password from PGPASSFILE


@pytest.mark.parametrize("path", ["deploy/docker/emulator.toml", "scripts/smoke-exchange.toml"])
def test_the_compose_exchange_configs_are_valid(path: str) -> None:
    from hedged.sim.settings import load_settings

    settings = load_settings(ROOT / path)
    assert {a.api_key for a in settings.accounts} == {"demo-key"}
    assert {"BTC/USD:BTC", "ETH/USD:ETH"} <= {i.symbol for i in settings.instruments}
