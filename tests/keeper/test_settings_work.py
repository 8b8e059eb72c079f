"""Settings that did nothing: each now acts, and every config field is read by something."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hedged.alerts.hub import AlertHub
from hedged.audit.store import AuditStore
from hedged.config import Config

ROOT = Path(__file__).resolve().parents[2] / "hedged"


async def test_markets_refresh_reloads_markets_before_a_cycle(harness_factory: Any) -> None:
    h = await harness_factory(keeper={"markets_refresh": 0.05})
    venue = h.venues["sim"]
    loaded = venue.markets_loaded_at
    await asyncio.sleep(0.1)  # more than markets_refresh: the next cycle is due to reload
    res = await h.keeper.step()
    assert not res.error and venue.markets_loaded_at > loaded
    h2 = await harness_factory(keeper={"markets_refresh": 3600})
    before = h2.venues["sim"].markets_loaded_at
    await h2.keeper.step()
    assert h2.venues["sim"].markets_loaded_at == before  # not due: no reload


async def test_hedged_run_opens_the_store_with_audit_write_timeout(emulator: Any, tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    from hedged import service

    from .conftest import keeper_config

    opened: list[AuditStore] = []
    real_open = AuditStore.open

    async def spy(*args: Any, **kwargs: Any) -> AuditStore:
        store = await real_open(*args, **kwargs)
        opened.append(store)
        return store

    monkeypatch.setattr(AuditStore, "open", spy)  # the class hedged.service opens the store with
    cfg = keeper_config(emulator.url, tmp_path / "k.db", audit={"url": f"sqlite:///{tmp_path / 'k.db'}",
                                                                "write_timeout": 1.25})
    stop = asyncio.Event()
    cycles: list[Any] = []
    task = asyncio.create_task(service.run_keeper(cfg, stop=stop, install_signals=False,
                                                  on_cycle=lambda r, s: cycles.append(r)))
    for _ in range(600):
        if cycles:
            break
        await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 60)
    (store,) = opened
    assert store._timeout == 1.25 and store.quiet_every == cfg.audit.quiet_every == 600


async def test_alerts_keep_data_and_keeper_and_start_stop_keep_venues_and_cycles(tmp_path: Path) -> None:
    from hedged.audit.migrate import upgrade
    from hedged.config import parse_config

    url = f"sqlite:///{tmp_path / 'a.db'}"
    await upgrade(url)
    cfg = parse_config({"keeper": {"name": "k"}, "venues": {"sim": {"exchange": "bybit"}},
                        "hedge": [{"asset": "BTC", "venue": "sim", "instrument": "BTC/USD:BTC"}]})
    store = await AuditStore.open(url, "k", allow_keys=["sim"])
    try:
        hub = AlertHub(cfg, store)
        from datetime import UTC, datetime
        await hub.event("circuit_breaker", "critical", "tripped", {"status": "firing", "failures": 5},
                        datetime.now(UTC))
        await store.append("start", {"mode": "live", "venues": ["sim"]})
        await store.append("stop", {"cycles": 12})
        alert, start, stop = await store.tail(3)
        assert alert.payload["data"] == {"status": "firing", "failures": 5} and alert.payload["keeper"] == "k"
        assert "_dropped" not in alert.payload
        assert start.payload == {"mode": "live", "venues": ["sim"]} and stop.payload == {"cycles": 12}
    finally:
        await store.close()


def fields(model: type[BaseModel], prefix: str) -> list[str]:
    out: list[str] = []
    for name, info in model.model_fields.items():
        if name == "base_dir":
            continue
        ann = info.annotation
        sub = next((a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
                   ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None)
        if sub is not None and name not in ("venues", "hedge"):
            out.extend(fields(sub, f"{prefix}{name}."))
        elif name in ("venues", "hedge"):
            from hedged.config import HedgeConfig, VenueConfig
            out.extend(fields(VenueConfig if name == "venues" else HedgeConfig, f"{prefix}{name}[]."))
            out.append(f"{prefix}{name}")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_config_field_is_read_by_something() -> None:
    """A field nothing reads is a setting that does nothing. Read = an attribute access `.name` (or a
    getattr of the name) somewhere in hedged/ outside the field's own declaration in config.py."""
    sources = {p: p.read_text() for p in ROOT.rglob("*.py")}
    config_src = (ROOT / "config.py").read_text()
    unread = []
    for path in fields(Config, ""):
        name = path.rsplit(".", 1)[-1]
        attr = re.compile(rf"\.{re.escape(name)}\b(?!\s*=[^=])|getattr\([^)]*['\"]{re.escape(name)}['\"]")
        used = any(attr.search(text) for p, text in sources.items() if p.name != "config.py")
        # config.py reads some of its own fields: self.name, or by name (getattr(self, "api_key_env"))
        used = used or bool(re.search(rf"self\.{re.escape(name)}\b|['\"]{re.escape(name)}['\"]", config_src))
        if not used:
            unread.append(path)
    assert unread == [], f"config fields nothing reads: {unread}"
    assert len(fields(Config, "")) > 60
