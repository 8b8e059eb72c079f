"""The de-duplication state machine: once, worse, cooldown, resolved, and again — directly and via evaluate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest

from hedged.alerts.dedupe import Condition, DedupeState, Level, Notice, step
from hedged.alerts.monitors import MonitorState, evaluate
from hedged.config import MonitorsConfig
from tests.core.factory import T0

from .crafted import INV, observe, raw

D = Decimal
KEY = "liquidation:bybit:BTC/USD:BTC"


def liq(level: Level, distance: str) -> Condition:
    return Condition(KEY, "liquidation", level, f"liquidation {distance}% away", {"distance_pct": distance},
                     {"venue": "bybit", "symbol": INV}, D(distance), higher_is_worse=False)


def lev(level: Level, value: str) -> Condition:
    return Condition("leverage:bybit", "leverage", level, f"leverage {value}", {}, {"venue": "bybit"}, D(value))


class Machine:
    """Drives `step` one minute per cycle; every key is checked unless said otherwise."""

    def __init__(self, cooldown: float = 3600, factor: str = "1.5") -> None:
        self.memory = DedupeState()
        self.minute = 0
        self.cooldown, self.factor = cooldown, D(factor)

    def cycle(self, *firing: Condition, checked: Sequence[str] = (KEY, "leverage:bybit"),
              minutes: int = 1) -> list[Notice]:
        self.minute += minutes
        self.memory, notices = step(self.memory, firing, checked, now=T0 + timedelta(minutes=self.minute),
                                    cooldown=self.cooldown, worsen_factor=self.factor)
        return list(notices)


def kinds(notices: list[Notice]) -> list[tuple[str, str]]:
    return [(n.kind, n.level) for n in notices]


def test_same_condition_twice_alerts_once() -> None:
    m = Machine()
    assert kinds(m.cycle(liq("warning", "20"))) == [("new", "warning")]
    assert m.cycle(liq("warning", "20")) == []
    assert m.cycle(liq("warning", "19")) == []  # a little worse is not news


def test_level_going_up_re_alerts() -> None:
    m = Machine()
    m.cycle(liq("warning", "20"))
    (n,) = m.cycle(liq("critical", "14"))
    assert (n.kind, n.level, n.data["reason"], n.data["status"]) == ("worse", "critical", "worse", "firing")
    assert n.data["since"] == "2026-11-21T12:01:00.000Z"  # the episode's start, not this alert's


def test_materially_worse_value_re_alerts_lower_is_worse() -> None:
    m = Machine()
    m.cycle(liq("critical", "12"))
    assert m.cycle(liq("critical", "8.1")) == []  # 12 / 1.5 = 8: not yet
    assert kinds(m.cycle(liq("critical", "8"))) == [("worse", "critical")]
    assert m.cycle(liq("critical", "6")) == []  # measured against 8 now: 5.33 needed
    assert kinds(m.cycle(liq("critical", "5"))) == [("worse", "critical")]


def test_materially_worse_value_re_alerts_higher_is_worse() -> None:
    m = Machine()
    m.cycle(lev("warning", "3.2"))
    assert m.cycle(lev("warning", "4.7")) == []
    assert kinds(m.cycle(lev("warning", "4.8"))) == [("worse", "warning")]


def test_easing_then_returning_is_not_news() -> None:
    m = Machine()
    m.cycle(liq("critical", "10"))
    assert m.cycle(liq("warning", "20")) == []  # eased: quiet, still active
    assert m.cycle(liq("critical", "10")) == []  # back where the operator was last told
    assert KEY in m.memory.active


def test_after_cooldown_re_alerts() -> None:
    m = Machine(cooldown=600)
    m.cycle(liq("warning", "20"))
    assert m.cycle(liq("warning", "20"), minutes=9) == []
    (n,) = m.cycle(liq("warning", "20"), minutes=1)  # 10 minutes after the first send
    assert (n.kind, n.data["reason"]) == ("cooldown", "cooldown")
    assert m.memory.active[KEY].sent == 2
    assert m.cycle(liq("warning", "20"), minutes=9) == []  # the cooldown restarts at each send


def test_cooldown_zero_repeats_every_cycle() -> None:
    m = Machine(cooldown=0)
    assert [len(m.cycle(liq("warning", "20"))) for _ in range(4)] == [1, 1, 1, 1]


def test_cleared_resolves_once_then_firing_again_is_new() -> None:
    m = Machine()
    m.cycle(liq("critical", "10"))
    m.cycle(liq("critical", "10"))
    (r,) = m.cycle()  # checked, not firing
    assert (r.kind, r.level, r.code, r.key) == ("resolved", "info", "liquidation", KEY)
    assert r.data == {"venue": "bybit", "symbol": INV, "status": "resolved", "key": KEY, "was": "critical",
                      "since": "2026-11-21T12:01:00.000Z", "duration_s": 120}
    assert r.message == "resolved: liquidation 10% away"
    assert m.cycle() == []  # resolved once only
    assert m.memory.active == {}
    (n,) = m.cycle(liq("warning", "25"))
    assert (n.kind, n.data["since"]) == ("new", "2026-11-21T12:05:00.000Z")


def test_unchecked_key_stays_active_and_silent() -> None:
    m = Machine()
    m.cycle(liq("warning", "20"))
    assert m.cycle(checked=()) == []  # no data about it this cycle
    assert KEY in m.memory.active
    assert kinds(m.cycle()) == [("resolved", "info")]


def test_keys_are_independent() -> None:
    m = Machine()
    assert kinds(m.cycle(liq("warning", "20"), lev("warning", "4"))) == [("new", "warning"), ("new", "warning")]
    (r,) = m.cycle(liq("warning", "20"))
    assert (r.kind, r.key) == ("resolved", "leverage:bybit")
    assert r.data["venue"] == "bybit" and "symbol" not in r.data


def test_duplicate_key_in_one_cycle_is_a_bug() -> None:
    with pytest.raises(ValueError, match="twice"):
        Machine().cycle(liq("warning", "20"), liq("critical", "10"))


def test_memory_is_a_value() -> None:
    m = Machine()
    before = m.memory
    m.cycle(liq("warning", "20"))
    assert before.active == {}  # the old memory is untouched


# --- the same rules through evaluate ---------------------------------------------------------------------


def test_liquidation_sequence_through_evaluate() -> None:
    config = MonitorsConfig(cooldown=1800)
    steps = [(60000, [("liquidation", "warning", "firing")]),   # 20 %: warning
             (60000, []),                                       # same: quiet
             (59000, []),                                       # 18 %: not materially worse
             (56000, [("liquidation", "critical", "firing")]),  # 12 %: level up
             (55500, []),                                       # 11 %
             (55500, []),
             (80000, [("liquidation", "info", "resolved")]),    # 60 %: cleared
             (80000, []),
             (56000, [("liquidation", "critical", "firing")])]  # again: new
    memory = MonitorState()
    ids: set[str] = set()
    for i, (price, expected) in enumerate(steps):
        memory, alerts = evaluate(config, observe(raw(liq=price), at=i), memory)
        assert [(a.code, a.level, a.data["status"]) for a in alerts] == expected, (i, alerts)
        for a in alerts:
            assert a.ts == T0 + timedelta(minutes=i)
            assert a.keeper == "main"
            ids.add(a.id)
    assert len(ids) == 4


def test_cooldown_through_evaluate() -> None:
    config = MonitorsConfig(cooldown=120)
    memory = MonitorState()
    sent = []
    for i in range(7):
        memory, alerts = evaluate(config, observe(raw(liq=60000), at=i), memory)
        sent.append([a.data["reason"] for a in alerts])
    assert sent == [["new"], [], ["cooldown"], [], ["cooldown"], [], ["cooldown"]]
