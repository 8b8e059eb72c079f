"""The wake rule and the coalescer: pure, so every case is a table row."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from hedged.wake import Event, Headroom, Spacing, price_sensitive, warrants_cycle


@pytest.mark.parametrize("event", [Event.FILL, Event.ORDER, Event.POSITION, Event.BALANCE, Event.RESYNC])
def test_account_events_always_wake(event: Event) -> None:
    assert warrants_cycle(event)


def test_price_never_wakes_a_price_invariant_hedge() -> None:
    # own-coin inverse with collateral counted, own-coin linear: drift does not move with price (§2)
    assert not price_sensitive(inverse=True, own_coin=True, collateral_counted=True)
    assert not price_sensitive(inverse=False, own_coin=True, collateral_counted=False)
    assert not warrants_cycle(Event.PRICE, sensitive=False, move=D("0.5"))


def test_price_wakes_a_sensitive_hedge_only_when_the_band_could_be_crossed() -> None:
    assert price_sensitive(inverse=True, own_coin=True, collateral_counted=False)
    assert price_sensitive(inverse=False, own_coin=False, collateral_counted=True)
    room = Headroom(drift=D(2), band=D(10), scale=D(1000))  # 8 of headroom on 1000: a 0.8 % move
    assert not warrants_cycle(Event.PRICE, sensitive=True, move=D("0.007"), headroom=room)
    assert warrants_cycle(Event.PRICE, sensitive=True, move=D("0.008"), headroom=room)
    assert warrants_cycle(Event.PRICE, sensitive=True, move=D("-0.009"), headroom=room)
    assert warrants_cycle(Event.PRICE, sensitive=True, move=D(0), headroom=None)  # never planned


def test_a_burst_coalesces_into_one_cycle_then_spacing() -> None:
    s = Spacing(min_spacing=0.1)
    assert s.fire_at() is None
    for _ in range(100):
        s = s.event(True)
    assert s.fire_at() == 0.0  # first ever: at once, once
    s = s.cycle_started(5.0)
    assert s.fire_at() is None
    for _ in range(1000):
        s = s.event(True)
    assert s.fire_at() == pytest.approx(5.1)  # the next one waits for the spacing
    assert Spacing(0.1).event(False).fire_at() is None  # a non-waking event never schedules
