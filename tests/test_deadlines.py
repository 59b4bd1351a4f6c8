"""Deadlines: a watched future still pending after the timeout fails with the error; answered ones are left alone
and dropped; one timer serves the whole queue."""

from __future__ import annotations

import asyncio

import pytest

from app.deadlines import Deadlines


class Late(Exception):
    """The error the tests' deadlines fail futures with."""


def deadlines(timeout_s: float) -> Deadlines:
    return Deadlines(timeout_s, lambda: Late(f"over {timeout_s} s"))


async def test_a_future_still_pending_at_its_deadline_fails_with_a_fresh_error():
    loop = asyncio.get_running_loop()
    watched = deadlines(0.05)
    first, second = loop.create_future(), loop.create_future()
    watched.watch(first)
    watched.watch(second)
    started = loop.time()
    with pytest.raises(Late, match="over 0.05 s"):
        await first
    assert loop.time() - started >= 0.04  # not before its deadline
    with pytest.raises(Late) as caught:
        await second
    assert caught.value is not first.exception()  # each request gets its own exception (its own traceback)


async def test_answered_and_cancelled_futures_are_left_alone():
    loop = asyncio.get_running_loop()
    watched = deadlines(0.05)
    answered, cancelled, late = loop.create_future(), loop.create_future(), loop.create_future()
    for future in (answered, cancelled, late):
        watched.watch(future)
    answered.set_result("rows")
    cancelled.cancel()
    with pytest.raises(Late):
        await late
    assert answered.result() == "rows" and cancelled.cancelled()
    assert watched.pending() == 0  # the timer dropped all three


async def test_deadlines_follow_each_future_not_the_first_timer():
    """A future watched later than the oldest gets its own full timeout, after the oldest was answered."""
    loop = asyncio.get_running_loop()
    watched = deadlines(0.2)
    early = loop.create_future()
    watched.watch(early)
    await asyncio.sleep(0.1)
    later = loop.create_future()
    watched.watch(later)
    early.set_result("rows")
    await asyncio.sleep(0.15)  # past early's deadline, before later's
    assert not later.done()
    with pytest.raises(Late):
        await asyncio.wait_for(later, 1.0)


async def test_answered_futures_at_the_front_are_dropped_as_new_ones_come():
    loop = asyncio.get_running_loop()
    watched = deadlines(60.0)
    for _ in range(100):
        future = loop.create_future()
        watched.watch(future)
        future.set_result("rows")
    assert watched.pending() == 1  # only the last, answered after it was queued
    waiting = loop.create_future()
    watched.watch(waiting)
    assert watched.pending() == 1
    waiting.cancel()


def test_each_event_loop_gets_its_own_queue_and_timer():
    watched = deadlines(0.05)

    async def one_request() -> str:
        future = asyncio.get_running_loop().create_future()
        watched.watch(future)
        try:
            await future
        except Late:
            return "timed out"
        return "answered"

    assert asyncio.run(one_request()) == "timed out"
    assert asyncio.run(one_request()) == "timed out"  # a second loop, after the first closed
