"""Hardening tests reuse the keeper fixtures: the local exchange in-process, real ccxt, a real store."""

from __future__ import annotations

from tests.keeper.conftest import emulator, harness_factory

__all__ = ["emulator", "harness_factory"]
