"""The adjustable slots that enforce this process's share of a cap held across orchestrators."""

from __future__ import annotations

import asyncio

from reasonmed.llm.shared_caps import AdjustableSlots


async def test_adjustable_slots_follow_their_limit() -> None:
    slots = AdjustableSlots(0)
    order: list[int] = []

    async def request(i: int) -> None:
        await slots.acquire()
        order.append(i)

    tasks = [asyncio.create_task(request(i)) for i in range(5)]
    await asyncio.sleep(0.01)
    assert order == []  # no share yet: every request waits
    slots.set_limit(2)
    await asyncio.sleep(0.01)
    assert order == [0, 1] and slots.in_use == 2  # admitted in arrival order
    slots.set_limit(1)  # lowered while two are in flight: nothing is interrupted, nothing new starts
    slots.release()
    await asyncio.sleep(0.01)
    assert order == [0, 1] and slots.in_use == 1
    tasks[2].cancel()  # a waiter that gives up passes its turn on
    slots.release()
    await asyncio.sleep(0.01)
    assert order == [0, 1, 3] and slots.in_use == 1
    slots.set_limit(5)
    await asyncio.sleep(0.01)
    assert order == [0, 1, 3, 4] and slots.in_use == 2
    await asyncio.gather(*tasks, return_exceptions=True)
