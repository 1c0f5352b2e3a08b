"""The event-loop helpers behind bulk transfers: the byte budget, cancellation, errors."""

from __future__ import annotations

import asyncio
import threading

import pytest

from modelbox.objects._aio import ByteBudget, gather_or_cancel, run


def test_the_budget_lets_holders_in_first_come_first_served() -> None:
    async def scenario() -> list[str]:
        budget = ByteBudget(10)
        order: list[str] = []
        first = await budget.acquire(8)

        async def take(name: str, size: int) -> None:
            taken = await budget.acquire(size)
            order.append(name)
            budget.release(taken)

        big = asyncio.ensure_future(take("big", 9))
        await asyncio.sleep(0)
        small = asyncio.ensure_future(take("small", 1))  # would fit, but waits its turn
        await asyncio.sleep(0)
        assert order == []
        budget.release(first)
        await asyncio.gather(big, small)
        return order

    assert asyncio.run(scenario()) == ["big", "small"]


def test_a_request_larger_than_the_budget_runs_alone() -> None:
    async def scenario() -> int:
        budget = ByteBudget(10)
        taken = await budget.acquire(25)
        budget.release(taken)
        return taken

    assert asyncio.run(scenario()) == 10


def test_a_cancelled_waiter_gives_nothing_away() -> None:
    async def scenario() -> int:
        budget = ByteBudget(10)
        held = await budget.acquire(10)
        waiter = asyncio.ensure_future(budget.acquire(5))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        budget.release(held)
        return await asyncio.wait_for(budget.acquire(10), 1)

    assert asyncio.run(scenario()) == 10


def test_the_first_error_cancels_the_others_after_they_clean_up() -> None:
    cleaned: list[str] = []

    async def slow(name: str) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append(name)

    async def failing() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(gather_or_cancel([slow("a"), failing(), slow("b")]))
    assert sorted(cleaned) == ["a", "b"]


def test_run_returns_the_result_and_raises_the_error_of_the_coroutine() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:

        async def answer() -> int:
            await asyncio.sleep(0)
            return 42

        async def fail() -> None:
            raise KeyError("missing")

        assert run(loop, answer) == 42
        with pytest.raises(KeyError, match="missing"):
            run(loop, fail)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
