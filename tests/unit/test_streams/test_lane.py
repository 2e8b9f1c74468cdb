"""The worker's state lane says how long its holder has kept it and what that holder waits for."""

from __future__ import annotations

import asyncio

from streams.lane import Lane


def test_a_lane_held_too_long_names_what_its_holder_waits_for() -> None:
    now = [100.0]
    lane = Lane(clock=lambda: now[0])

    async def scenario() -> tuple[object, object, object]:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def deliver_batch() -> None:
            async with lane:
                await never

        holder = asyncio.ensure_future(deliver_batch())
        await asyncio.sleep(0)
        free = Lane().stall(0)
        early = lane.stall(60)
        now[0] += 61
        late = lane.stall(60)
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        return free, early, late

    free, early, late = asyncio.run(scenario())
    assert free is None and early is None
    assert isinstance(late, tuple)
    held, chain = late
    assert held == 61
    assert chain.startswith("deliver_batch (test_lane.py:") and chain.endswith(" -> a future")
    assert not lane.locked() and lane.stall(0) is None
