"""Merge the items of concurrent requests into one call of a batch function.

Why, on top of BentoML's adaptive batching: behind it every request is still one HTTP call into the
model process (about 2 ms of that process's CPU, on the core it decodes with), and with clients that
send their next question when the last is answered its queue settles into alternating small and large
batches (2, 14, 2, 14, ...), paying two model calls per round. Merged in the public service's event
loop, a round is one call: when a call returns, the next one carries everything pending, and if that
is less than the call before carried, it first waits (at most `max_wait_s`) for as many items to
arrive. A lone client never waits: its previous call carried one item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

log = logging.getLogger(__name__)


@dataclass
class _Request(Generic[Item, Result]):
    items: list[Item]
    answer: asyncio.Future[list[Result]] = field(repr=False)


class RequestMerger(Generic[Item, Result]):
    """`await merger(items)` answers like `await call(items)`, but shares calls with concurrent requests.

    `call` takes a list and returns one result per item, in order. A merged call carries at most
    `max_items` items, except a single request that is larger on its own (it is never split here).
    At most `max_in_flight` calls run at once (one per model worker). An error of `call` is raised to
    every request it carried; a request whose caller went away is left out of the next call.
    """

    def __init__(
        self,
        call: Callable[[list[Item]], Awaitable[list[Result]]],
        *,
        max_items: int,
        max_in_flight: int = 1,
        max_wait_s: float = 0.02,
    ) -> None:
        if max_items < 1 or max_in_flight < 1 or max_wait_s < 0:
            raise ValueError("max_items and max_in_flight must be at least 1, max_wait_s not negative")
        self.call = call
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self.max_wait_s = max_wait_s
        self.calls = 0  # model calls made, for logs and tests
        self._pending: list[_Request[Item, Result]] = []
        self._last_size = 1
        self._arrived: asyncio.Event | None = None
        self._free: asyncio.Semaphore | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, items: list[Item]) -> list[Result]:
        if not items:
            return []
        self._start()
        request: _Request[Item, Result] = _Request(list(items), asyncio.get_running_loop().create_future())
        self._pending.append(request)
        self._arrived.set()
        return await request.answer  # cancelling the caller cancels `answer`: the dispatcher then skips it

    def _start(self) -> None:
        """The dispatcher lives in the loop of the first request (BentoML builds services outside any loop)."""
        if self._dispatcher is not None and not self._dispatcher.done():
            return
        self._arrived = asyncio.Event()
        self._free = asyncio.Semaphore(self.max_in_flight)
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch_forever(), name="request-merger")

    def _waiting_items(self) -> int:
        self._pending = [r for r in self._pending if not r.answer.done()]
        return sum(len(r.items) for r in self._pending)

    async def _dispatch_forever(self) -> None:
        while True:
            await self._free.acquire()
            try:
                await self._gather()
                batch = self._take()
            except BaseException:
                self._free.release()
                raise
            if not batch:
                self._free.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _gather(self) -> None:
        """Wait for a first item, then (up to `max_wait_s`) for as many as the previous call carried."""
        while not self._waiting_items():
            self._arrived.clear()
            await self._arrived.wait()
        target = min(self._last_size, self.max_items)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while self._waiting_items() < target and (remaining := deadline - loop.time()) > 0:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                break

    def _take(self) -> list[_Request[Item, Result]]:
        """Whole requests from the front, oldest first, up to `max_items` items (a larger first one alone)."""
        taken: list[_Request[Item, Result]] = []
        size = 0
        self._waiting_items()
        while self._pending and (not taken or size + len(self._pending[0].items) <= self.max_items):
            request = self._pending.pop(0)
            taken.append(request)
            size += len(request.items)
        if taken:
            self._last_size = size
        return taken

    async def _run(self, batch: list[_Request[Item, Result]]) -> None:
        items = [item for request in batch for item in request.items]
        self.calls += 1
        log.debug("call %d: %d items from %d requests", self.calls, len(items), len(batch))
        try:
            results = await self.call(items)
            if len(results) != len(items):
                raise RuntimeError(f"the batch call answered {len(results)} results for {len(items)} items")
        except Exception as error:  # every request of the batch gets the error; the dispatcher goes on
            for request in batch:
                if not request.answer.done():
                    request.answer.set_exception(error)
            return
        except asyncio.CancelledError:  # the loop is closing: nobody may wait forever
            for request in batch:
                request.answer.cancel()
            raise
        finally:
            self._free.release()
        start = 0
        for request in batch:
            end = start + len(request.items)
            if not request.answer.done():
                request.answer.set_result(results[start:end])
            start = end
