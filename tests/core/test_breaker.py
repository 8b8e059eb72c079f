"""The circuit breaker's state machine: transient trips resume by themselves, permanent ones wait for a human."""

from __future__ import annotations

from hedged.breaker import Breaker, failure_kind, on_failure, on_human_resume, on_success
from hedged.errors import Ambiguous, AuthFailed, RateLimited, Rejected, Transient

NET = Transient("cannot reach 127.0.0.1:9: connection refused", reason="network")


def fail_n(b: Breaker, exc: Exception, n: int, max_failures: int = 5) -> tuple[Breaker, list[str | None]]:
    changes: list[str | None] = []
    for _ in range(n):
        b, ch = on_failure(b, exc, str(exc), max_failures=max_failures)
        changes.append(ch)
    return b, changes


def test_classes() -> None:
    assert failure_kind(NET) == failure_kind(RateLimited("429")) == failure_kind(Ambiguous("?")) == "transient"
    assert failure_kind(AuthFailed("key")) == failure_kind(Rejected("no")) == "permanent"
    assert failure_kind(TimeoutError()) == failure_kind(OSError()) == "transient"


def test_transient_trip_after_max_failures_and_resume_after_healthy_cycles() -> None:
    b, changes = fail_n(Breaker(), NET, 5)
    assert changes == [None, None, None, None, "trip_transient"]
    assert b.tripped == "transient" and b.blocks_orders
    assert b.reason() == ("breaker (transient): 5 consecutive failed cycles: "
                          "cannot reach 127.0.0.1:9: connection refused")
    b, ch = fail_n(b, NET, 10)  # an outage that lasts: no second trip
    assert set(ch) == {None} and b.failures == 15
    b, ch1 = on_success(b, resume_after=3)
    b, ch2 = on_success(b, resume_after=3)
    b, _ = on_failure(b, NET, "again", max_failures=5)  # a relapse restarts the healthy count
    assert b.healthy == 0 and b.tripped == "transient" and (ch1, ch2) == (None, None)
    for i in range(3):
        b, change = on_success(b, resume_after=3)
        assert change == ("resume" if i == 2 else None)
    assert b == Breaker()


def test_fewer_failures_than_max_reset_on_success() -> None:
    b, changes = fail_n(Breaker(), NET, 4)
    assert set(changes) == {None}
    b, ch = on_success(b, resume_after=3)
    assert b == Breaker() and ch is None


def test_auth_failure_trips_permanent_at_once_and_never_resumes_by_itself() -> None:
    b, ch = on_failure(Breaker(), AuthFailed("bybit refused our API key"), "bybit refused our API key",
                       max_failures=5)
    assert ch == "trip_permanent" and b.reason().startswith("breaker (permanent): 1 consecutive")
    for _ in range(50):
        b, ch = on_success(b, resume_after=3)
        assert ch is None and b.tripped == "permanent"
    assert on_human_resume(b) == Breaker()


def test_rejected_twice_is_permanent_and_escalates_a_transient_trip() -> None:
    b, changes = fail_n(Breaker(), Rejected("insufficient funds"), 2)
    assert changes == [None, "trip_permanent"]
    b, _ = fail_n(Breaker(), NET, 5)
    assert b.tripped == "transient"
    b, ch = on_failure(b, AuthFailed("key revoked"), "key revoked", max_failures=5)
    assert ch == "trip_permanent" and b.tripped == "permanent"
    b, ch = on_failure(b, NET, "x", max_failures=5)
    assert ch is None and b.tripped == "permanent"


def test_human_resume_leaves_a_transient_trip_alone() -> None:
    b, _ = fail_n(Breaker(), NET, 5)
    assert on_human_resume(b) is b
