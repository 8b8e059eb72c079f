"""The local exchange: a Bybit v5-compatible testnet-in-a-box that unmodified ccxt drives over loopback.

The names below load on first use (PEP 562), so `hedged.sim.cli` (the `emulator` command's
registration) does not pull aiohttp and the engine into every `hedged` command.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hedged.sim.client import make_client
    from hedged.sim.engine import Engine, EngineError
    from hedged.sim.server import Emulator
    from hedged.sim.settings import EmulatorConfigError, EmulatorSettings, default_settings, load_settings

_HOME = {
    "Emulator": "server",
    "EmulatorConfigError": "settings",
    "EmulatorSettings": "settings",
    "Engine": "engine",
    "EngineError": "engine",
    "default_settings": "settings",
    "load_settings": "settings",
    "make_client": "client",
}
__all__ = [
    "Emulator",
    "EmulatorConfigError",
    "EmulatorSettings",
    "Engine",
    "EngineError",
    "default_settings",
    "load_settings",
    "make_client",
]


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(f"hedged.sim.{_HOME[name]}"), name)
    raise AttributeError(f"module 'hedged.sim' has no attribute {name!r}")
