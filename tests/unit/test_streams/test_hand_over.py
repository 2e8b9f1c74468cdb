"""The worker's consumer hands a record over without a task unless the hand-over has to wait (`streams.app`).

`_handed_over` runs a coroutine until it first waits; `_carry_on` finishes one that waits, in a task, exactly as if
the task had run it from its start: what it waited on is awaited first, its result (or exception, or the task's
cancellation) reaches the coroutine where it waits.
"""

from __future__ import annotations

import asyncio

import pytest

from streams.app import _DONE, _carry_on, _handed_over


def test_a_coroutine_that_never_waits_runs_to_its_end_at_once() -> None:
    ran: list[str] = []

    async def hand_over() -> None:
        ran.append("handed over")

    assert _handed_over(hand_over()) is _DONE
    assert ran == ["handed over"]


def test_a_coroutine_that_waits_is_finished_by_a_task_with_what_it_waited_for() -> None:
    async def scenario() -> tuple[object, list[object]]:
        seen: list[object] = []
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def hand_over() -> str:
            seen.append(await ready)
            await asyncio.sleep(0)  # a bare turn of the loop after that
            seen.append("after a turn")
            return "done"

        coroutine = hand_over()
        waiting_on = _handed_over(coroutine)
        assert waiting_on is ready
        task = asyncio.ensure_future(_carry_on(coroutine, waiting_on))
        await asyncio.sleep(0)
        assert not task.done()  # still waiting on `ready`
        ready.set_result("room in the buffer")
        return await task, seen

    result, seen = asyncio.run(scenario())
    assert result == "done"
    assert seen == ["room in the buffer", "after a turn"]


def test_an_exception_of_what_it_waited_on_reaches_the_coroutine() -> None:
    async def scenario() -> list[str]:
        caught: list[str] = []
        failing: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def hand_over() -> None:
            try:
                await failing
            except LookupError as exc:
                caught.append(str(exc))
                raise

        coroutine = hand_over()
        task = asyncio.ensure_future(_carry_on(coroutine, _handed_over(coroutine)))
        failing.set_exception(LookupError("no such partition"))
        with pytest.raises(LookupError):
            await task
        return caught

    assert asyncio.run(scenario()) == ["no such partition"]


def test_a_cancelled_hand_over_leaves_a_full_queue_as_it_was() -> None:
    """A flow stop cancels a hand-over waiting on a full buffer: the put is withdrawn, nothing is left half done."""

    async def scenario() -> tuple[bool, list[str], int, list[int]]:
        buffer: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        buffer.put_nowait(1)
        cleaned: list[str] = []

        async def hand_over() -> None:
            try:
                await buffer.put(2)
            finally:
                cleaned.append("finally ran")

        coroutine = hand_over()
        waiting_on = _handed_over(coroutine)
        assert waiting_on is not _DONE
        task = asyncio.ensure_future(_carry_on(coroutine, waiting_on))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        held = [buffer.get_nowait() for _ in range(buffer.qsize())]
        return task.cancelled(), cleaned, buffer.qsize(), held

    cancelled, cleaned, left, held = asyncio.run(scenario())
    assert cancelled
    assert cleaned == ["finally ran"]
    assert (left, held) == (0, [1])  # the record handed over meanwhile is not in the buffer
