"""server/turns.py: at most ``limit`` pieces of work of one scope at once, the others
waiting in order; other scopes unaffected; nothing kept once a scope's work is done."""

from __future__ import annotations

import asyncio

from deltacloud.server.turns import Turns


def test_a_scope_runs_at_most_its_limit_in_order_and_others_go_on() -> None:
    async def scenario() -> None:
        turns = Turns()
        running: dict[str, int] = {"a": 0, "b": 0}
        most = {"a": 0, "b": 0}
        started: list[str] = []
        release = asyncio.Event()

        async def work(scope: str, name: str) -> None:
            async with turns.turn(f"call/{scope}", 2):
                started.append(name)
                running[scope] += 1
                most[scope] = max(most[scope], running[scope])
                if scope == "a":
                    await release.wait()  # scope a's work stalls (a hung cloud)
                else:
                    await asyncio.sleep(0)
                running[scope] -= 1

        stalled = [asyncio.create_task(work("a", f"a{i}")) for i in range(5)]
        await asyncio.sleep(0.01)
        assert started == ["a0", "a1"] and turns.waiting() == {"call": 3}
        # Another scope is not behind scope a's queue.
        await asyncio.wait_for(asyncio.gather(*(work("b", f"b{i}") for i in range(4))), 1)
        assert most["b"] == 2 and turns.waiting() == {"call": 3}
        release.set()
        await asyncio.wait_for(asyncio.gather(*stalled), 1)
        assert [n for n in started if n.startswith("a")] == ["a0", "a1", "a2", "a3", "a4"]
        assert most["a"] == 2
        assert turns.waiting() == {} and not turns._slots  # nothing kept

    asyncio.run(scenario())


def test_work_cancelled_while_waiting_leaves_its_place() -> None:
    """A call whose client left (or whose deadline passed) while it waited takes no turn,
    and the scope's slot goes once nothing of it runs or waits."""

    async def scenario() -> None:
        turns = Turns()
        hold = asyncio.Event()

        async def work() -> None:
            async with turns.turn("call/s", 1):
                await hold.wait()

        first = asyncio.create_task(work())
        waiting = asyncio.create_task(work())
        await asyncio.sleep(0.01)
        assert turns.waiting() == {"call": 1}
        waiting.cancel()
        await asyncio.sleep(0.01)
        assert turns.waiting() == {}
        hold.set()
        await asyncio.wait_for(first, 1)
        assert not turns._slots

    asyncio.run(scenario())
