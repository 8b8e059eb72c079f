"""Hardening tests reuse the keeper fixtures: the local exchange in-process, real ccxt, a real store."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import structlog

from tests.audit.conftest import pg_database
from tests.keeper.conftest import emulator, harness_factory

__all__ = ["emulator", "harness_factory", "pg_database"]


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Some tests configure logging onto captured stderr: put it back, or later tests log to a closed file."""
    yield
    structlog.reset_defaults()
    sys.excepthook = sys.__excepthook__
