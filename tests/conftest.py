"""Suite-wide isolation. `make test` runs this suite in parallel (pytest-xdist, `-n 4 --dist loadgroup`), so
every test shares the machine with three others of this run and with other runs. The rules, for new tests:

- Account locks: each pytest process (each xdist worker) gets its own HEDGED_LOCK_DIR, made here. Keepers of
  one worker exclude each other as they would in production; two workers never see each other's locks.
- Ports: bind port 0 (the emulator does), or take `free_port()` from tests/mqtt/brokers.py (below the
  ephemeral range: safe for a server the test stops and starts again); never a fixed one except the
  machine's services (Postgres 5432, Mosquitto 1883).
- Postgres: a database of your own, named with `worker_tag()` (or os.getpid()) and a uuid, dropped after
  (tests/audit/conftest.py `pg_database`, tests/keeper/test_lock_lost.py `pg_url`); terminate only backends of
  your own database: the server is shared.
- MQTT on the machine's broker: a topic prefix of your own (`hedgedtest/<uuid>`), retained messages cleared.
- Files: tmp_path only; nothing written into the repository tree (Hypothesis keeps no example database).
- Exchange time: a local exchange on a manual clock starts just after a funding settlement
  (tests/clocks.py `manual_clock()`), never at wall time.
- A test that cannot run beside others (it measures pacing against the wall clock, say) is marked
  `@pytest.mark.xdist_group("serial")`: `--dist loadgroup` runs that group's tests one after another on one
  worker. Prefer making the test robust to load.

CI=true turns a missing service (Postgres, Mosquitto, Prometheus) into a failure instead of a skip; that check
runs inside each worker exactly as it does in a serial run.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_OWN = "_HEDGED_TEST_LOCK_DIR_OWNER"  # the pid of the pytest process that made HEDGED_LOCK_DIR


def worker_tag() -> str:
    """This pytest process's name in the run: the xdist worker id (gw0, gw1, ...) or "main"."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_configure() -> None:
    # xdist workers inherit the controller's environment: a lock directory made by another pytest process of
    # this run (marked by _OWN) is replaced by one of this process's own; one set by the user is kept.
    if "HEDGED_LOCK_DIR" not in os.environ or os.environ.get(_OWN, str(os.getpid())) != str(os.getpid()):
        os.environ["HEDGED_LOCK_DIR"] = tempfile.mkdtemp(prefix=f"hedged-test-locks-{worker_tag()}-")
        os.environ[_OWN] = str(os.getpid())
    # Hypothesis: no example database in the work tree (.hypothesis/) shared by the workers and the other runs;
    # a failing example is printed with the seed that reproduces it
    from hypothesis import settings

    settings.register_profile("hedged-tests", database=None)
    settings.load_profile("hedged-tests")


def pytest_unconfigure() -> None:
    if os.environ.get(_OWN) == str(os.getpid()):
        shutil.rmtree(os.environ.get("HEDGED_LOCK_DIR", ""), ignore_errors=True)
