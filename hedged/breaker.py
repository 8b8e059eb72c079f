"""The circuit breaker: consecutive failed cycles, by class, trip it; healthy cycles resume it.

Why two kinds: a 30 s network outage must not need a human, but a wrong API key or an order the exchange
refuses again and again will not heal by waiting. So a run of `Transient` failures (network, timeouts, 5xx,
429, clock) trips a *transient* breaker that stops new orders and resumes by itself after `resume_after`
healthy cycles in a row; `AuthFailed` at once, or `Rejected` twice in a run, trips a *permanent* one that
stays until a human resumes (the shell writes a HALTED command for it). A pure state machine over a frozen
dataclass: the keeper feeds it one outcome per cycle and acts on the transition it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from hedged.errors import AuthFailed, Rejected

Kind = Literal["transient", "permanent"]
Transition = Literal["trip_transient", "trip_permanent", "resume"]
PERMANENT_REJECTS = 2  # the same refusal twice in a run is not bad luck


def failure_kind(exc: BaseException) -> Kind:
    """Which breaker a cycle-level failure feeds: AuthFailed and Rejected are permanent, the rest transient."""
    return "permanent" if isinstance(exc, AuthFailed | Rejected) else "transient"


@dataclass(frozen=True, slots=True)
class Breaker:
    failures: int = 0  # consecutive failed cycles
    rejects: int = 0  # Rejected among them
    auth: bool = False  # an AuthFailed among them
    tripped: Kind | None = None
    healthy: int = 0  # consecutive healthy cycles since a transient trip
    last_error: str = ""

    @property
    def blocks_orders(self) -> bool:
        return self.tripped is not None

    def reason(self) -> str:
        """The words for store.record_state: 'breaker (transient): 5 consecutive failed cycles: …'."""
        if self.tripped is None:
            return ""
        return f"breaker ({self.tripped}): {self.failures} consecutive failed cycles: {self.last_error}"


def on_failure(b: Breaker, exc: BaseException, message: str, *, max_failures: int
               ) -> tuple[Breaker, Transition | None]:
    """A cycle failed with `exc`. Trips (or escalates a transient trip to permanent) when due."""
    auth = b.auth or isinstance(exc, AuthFailed)
    rejects = b.rejects + (1 if isinstance(exc, Rejected) and not isinstance(exc, AuthFailed) else 0)
    nb = replace(b, failures=b.failures + 1, rejects=rejects, auth=auth, healthy=0, last_error=message)
    permanent = auth or rejects >= PERMANENT_REJECTS
    if b.tripped == "permanent":
        return nb, None
    if permanent:
        return replace(nb, tripped="permanent"), "trip_permanent"
    if b.tripped is None and nb.failures >= max_failures:
        return replace(nb, tripped="transient"), "trip_transient"
    return nb, None


def on_success(b: Breaker, *, resume_after: int) -> tuple[Breaker, Transition | None]:
    """A cycle completed. Clears the failure run; a transient trip resumes after `resume_after` of these."""
    if b.tripped == "permanent":
        return replace(b, healthy=b.healthy + 1), None  # only a human resumes (the HALTED command stays)
    if b.tripped == "transient":
        healthy = b.healthy + 1
        if healthy >= resume_after:
            return Breaker(), "resume"
        return replace(b, healthy=healthy), None
    return (Breaker() if b.failures else b), None


def on_human_resume(b: Breaker) -> Breaker:
    """A RUNNING command after a permanent trip: start afresh."""
    return Breaker() if b.tripped == "permanent" else b
