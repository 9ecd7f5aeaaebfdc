"""RequestMerger in a real event loop: which items travel together, and that every caller gets its own answer."""

from __future__ import annotations

import asyncio

import pytest

from service_support.request_merging import RequestMerger


class Recorder:
    """A batch function that answers item * 10 and remembers every call; `gate` holds calls until opened."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = 0
        self.most_running = 0
        self.fail_on: int | None = None  # a call that carries this item fails

    async def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            if self.fail_on in items:
                raise ValueError("model failed")
            return [item * 10 for item in items]
        finally:
            self.running -= 1


async def settle() -> None:
    """Let every ready task run until the loop is idle."""
    for _ in range(20):
        await asyncio.sleep(0)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, timeout=60))  # a hang fails the test instead of the suite


def test_requests_pending_while_a_call_runs_share_the_next_call():
    async def scenario():
        model = Recorder()
        merger = RequestMerger(model, max_items=32)
        model.gate.clear()
        first = asyncio.create_task(merger([1]))
        await settle()
        assert model.calls == [[1]]  # a lone request goes at once
        later = [asyncio.create_task(merger([n, n + 1])) for n in (2, 4, 6)]
        await settle()
        assert model.calls == [[1]]  # the model is busy: they wait together
        model.gate.set()
        answers = await asyncio.gather(first, *later)
        assert model.calls == [[1], [2, 3, 4, 5, 6, 7]]
        assert answers == [[10], [20, 30], [40, 50], [60, 70]]
        assert merger.calls == 2

    run(scenario())


def test_a_smaller_call_waits_for_as_many_items_as_the_last_one_carried():
    async def scenario():
        model = Recorder()
        merger = RequestMerger(model, max_items=32, max_wait_s=3600)
        model.gate.clear()
        first = asyncio.create_task(merger([0]))
        await settle()
        first_round = [first, *(asyncio.create_task(merger([n])) for n in (1, 2))]
        await settle()
        model.gate.set()
        assert await asyncio.gather(*first_round) == [[0], [10], [20]]
        assert model.calls == [[0], [1, 2]]  # the first went alone, the other two waited for it
        second_round = [asyncio.create_task(merger([7]))]
        await settle()
        assert model.calls == [[0], [1, 2]]  # 1 < 2 pending: waits for a second item
        second_round.append(asyncio.create_task(merger([8])))
        assert await asyncio.gather(*second_round) == [[70], [80]]
        assert model.calls[-1] == [7, 8]

    run(scenario())


def test_the_wait_for_more_items_ends_after_max_wait():
    async def scenario():
        model = Recorder()
        merger = RequestMerger(model, max_items=32, max_wait_s=0.05)
        await asyncio.gather(*(merger([n]) for n in range(4)))
        assert await merger([9]) == [90]  # fewer than the last call carried: sent when the wait ran out
        assert model.calls[-1] == [9]

    run(scenario())


def test_calls_carry_at_most_max_items_but_a_large_request_is_never_split():
    async def scenario():
        model = Recorder()
        merger = RequestMerger(model, max_items=4)
        model.gate.clear()
        tasks = [asyncio.create_task(merger(items)) for items in ([0], [1, 2, 3], [4, 5], [6, 7, 8, 9, 10, 11], [12])]
        await settle()
        model.gate.set()
        answers = await asyncio.gather(*tasks)
        assert model.calls == [[0, 1, 2, 3], [4, 5], [6, 7, 8, 9, 10, 11], [12]]
        assert answers[3] == [60, 70, 80, 90, 100, 110]

    run(scenario())


def test_an_error_reaches_every_request_of_its_call_and_the_next_call_still_works():
    async def scenario():
        model = Recorder()
        merger = RequestMerger(model, max_items=32, max_wait_s=0)
        model.fail_on = 3
        model.gate.clear()
        first = asyncio.create_task(merger([1]))
        await settle()
        others = [asyncio.create_task(merger([n])) for n in (2, 3)]
        await settle()
        model.gate.set()
        assert await first == [10]
        # the call carrying 2 and 3 fails: both callers see the model's error
        for task in others:
            with pytest.raises(ValueError, match="model failed"):
                await task
        assert await merger([4]) == [40]

    run(scenario())


def test_a_wrong_number_of_results_is_an_error_not_a_misaligned_answer():
    async def short(items: list[int]) -> list[int]:
        return items[:-1]

    async def scenario():
        merger = RequestMerger(short, max_items=8)
        with pytest.raises(RuntimeError, match="2 results for 3 items"):
            await merger([1, 2, 3])

    run(scenario())


def test_a_cancelled_request_is_left_out_and_the_others_are_answered():
    async def scenario():
        model = Recorder()
        merger = RequestMerger(model, max_items=32)
        model.gate.clear()
        first = asyncio.create_task(merger([1]))
        await settle()
        gone = asyncio.create_task(merger([2]))
        kept = asyncio.create_task(merger([3]))
        await settle()
        gone.cancel()  # e.g. the client disconnected
        await settle()
        model.gate.set()
        assert await first == [10]
        assert await kept == [30]
        assert gone.cancelled()
        assert model.calls == [[1], [3]]

    run(scenario())


def test_max_in_flight_lets_calls_overlap():
    async def scenario():
        model = Recorder()
        merger = RequestMerger(model, max_items=1, max_in_flight=2)
        model.gate.clear()
        tasks = [asyncio.create_task(merger([n])) for n in range(3)]
        await settle()
        assert model.running == 2  # two model workers busy, the third request waits
        model.gate.set()
        assert await asyncio.gather(*tasks) == [[0], [10], [20]]
        assert model.most_running == 2

    run(scenario())


def test_no_items_make_no_call_and_bad_settings_are_refused():
    async def scenario():
        model = Recorder()
        assert await RequestMerger(model, max_items=4)([]) == []
        assert model.calls == []

    run(scenario())
    with pytest.raises(ValueError, match="at least 1"):
        RequestMerger(Recorder(), max_items=0)
