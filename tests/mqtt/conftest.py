"""MQTT tests: the local exchange in-process (real ccxt), a real SQLite audit store, real Mosquitto."""

from __future__ import annotations

from tests.keeper.conftest import emulator

__all__ = ["emulator"]
