"""Request ids handed out before their submit, and cancels that arrive first.

A caller takes an id with new_request_id() (the GUI, on its own thread), shows
the turn under it, and sends it later from a background thread; Stop may come
in between. Every engine keeps that bookkeeping the same way, here.
"""

from __future__ import annotations

import itertools
import threading


class RequestIds:
    """Thread-safe; one per engine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._reserved: set[int] = set()  # handed out, not yet submitted
        self._cancelled: set[int] = set()  # of those, cancelled already

    def new(self) -> int:
        with self._lock:
            request_id = next(self._counter)
            self._reserved.add(request_id)
            return request_id

    def cancel_before_submit(self, request_id: int | None) -> bool:
        """Remember a cancel for an id not submitted yet; False if it is not one."""
        with self._lock:
            if request_id not in self._reserved:
                return False
            self._cancelled.add(request_id)
            return True

    def submitted(self, request_id: int) -> bool:
        """The id reaches submit(): True when it was cancelled before, so the
        engine ends it at once instead of running it."""
        with self._lock:
            self._reserved.discard(request_id)
            if request_id in self._cancelled:
                self._cancelled.discard(request_id)
                return True
            return False
