"""Request timeouts with one timer per event loop, not one per request.

Every request waits at most MNIST_SERVE_REQUEST_TIMEOUT_S for the model, the same for all, so the deadlines fall
in the order the requests started waiting: a FIFO queue, whose oldest entry alone needs a timer. A `call_later`
per request (a timer handle made, scheduled and cancelled for every image) cost more on a busy server, its code
out of the caches between requests, than all the queue's bookkeeping (measured with
`benchmarks/app_overhead.py`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any


class Deadlines:
    """Fails each watched future that is still pending `timeout_s` after `watch`, with `make_error()`.

    Futures answered (or cancelled) in time are dropped from the front of the queue as later ones are watched and
    when the timer fires, so the queue holds about the requests in flight. Use it from the loops the futures
    belong to (each loop gets its own queue and timer).
    """

    def __init__(self, timeout_s: float, make_error: Callable[[], BaseException]) -> None:
        self.timeout_s = timeout_s
        self._make_error = make_error
        self._queues: dict[asyncio.AbstractEventLoop, _LoopQueue] = {}

    def watch(self, future: asyncio.Future[Any]) -> None:
        """Fail `future` with the error if it is not done `timeout_s` from now."""
        loop = future.get_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue(loop, self._make_error)
        queue.add(loop.time() + self.timeout_s, future)

    def pending(self) -> int:
        """How many watched futures are queued, answered ones not yet dropped included (for tests)."""
        return sum(len(queue.entries) for queue in self._queues.values())


class _LoopQueue:
    """The deadlines of one event loop's futures, oldest first, and the one timer armed for the oldest."""

    __slots__ = ("entries", "loop", "make_error", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, make_error: Callable[[], BaseException]) -> None:
        self.loop = loop
        self.make_error = make_error
        self.entries: deque[tuple[float, asyncio.Future[Any]]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def add(self, deadline: float, future: asyncio.Future[Any]) -> None:
        entries = self.entries
        while entries and entries[0][1].done():  # answered in time: nothing left to watch
            entries.popleft()
        entries.append((deadline, future))
        if self.timer is None:
            self.timer = self.loop.call_at(entries[0][0], self._expire)

    def _expire(self) -> None:
        """Fail what is due, drop what was answered, and arm the timer for the oldest deadline left."""
        self.timer = None
        entries, now = self.entries, self.loop.time()
        while entries and (entries[0][1].done() or entries[0][0] <= now):
            _, future = entries.popleft()
            if not future.done():
                future.set_exception(self.make_error())
        if entries:
            self.timer = self.loop.call_at(entries[0][0], self._expire)
