"""Suite-wide: account locks live in one directory per test run, so this suite never contends with another
run of it on the same machine (keepers of one run exclude each other, as they would in production)."""

from __future__ import annotations

import os
import tempfile


def pytest_configure() -> None:
    if "HEDGED_LOCK_DIR" not in os.environ:
        os.environ["HEDGED_LOCK_DIR"] = tempfile.mkdtemp(prefix="hedged-test-locks-")
