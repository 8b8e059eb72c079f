"""The local exchange: a Bybit v5-compatible testnet-in-a-box that unmodified ccxt drives over loopback."""

from hedged.sim.client import make_client
from hedged.sim.engine import Engine, EngineError
from hedged.sim.server import Emulator
from hedged.sim.settings import EmulatorConfigError, EmulatorSettings, default_settings, load_settings

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
