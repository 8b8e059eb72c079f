"""Who halted trading: a typed origin, written with the halt and read back after a restart.

/health answers 503 for a halt caused by a fault and 200 for one an operator asked for (the keeper does what
it was told). That verdict is taken from this code, never from the words of a reason: an operator may write
"audit maintenance" or "breaker test" as the reason of a `hedged halt`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class HaltOrigin(StrEnum):
    OPERATOR = "operator"  # `hedged halt`, an MQTT command, the kill file
    BREAKER = "breaker"  # the permanent circuit breaker (AuthFailed, Rejected twice)
    FOREIGN_KEEPER = "foreign_keeper"  # another keeper trades with our prefix
    AUDIT = "audit"  # the audit store cannot be written (held in memory: the store cannot record it)


FAULTS = frozenset({HaltOrigin.BREAKER, HaltOrigin.FOREIGN_KEEPER, HaltOrigin.AUDIT})
# commands written before the origin was recorded: the keeper's own halts said so by their `via` code
_LEGACY_VIA = {"circuit-breaker": HaltOrigin.BREAKER, "foreign-keeper": HaltOrigin.FOREIGN_KEEPER}


def is_fault(origin: HaltOrigin | None) -> bool:
    return origin in FAULTS


def command_origin(payload: Mapping[str, Any]) -> HaltOrigin:
    """The origin a COMMAND event's payload records (a prune's carried copy keeps it); an unknown code is
    an operator's, as is a command from before the field existed unless its `via` is one of the keeper's."""
    raw = payload.get("origin")
    if isinstance(raw, str):
        try:
            return HaltOrigin(raw)
        except ValueError:
            return HaltOrigin.OPERATOR
    return _LEGACY_VIA.get(str(payload.get("via") or ""), HaltOrigin.OPERATOR)
