"""The ticker: one daemon thread that refreshes live views while windows run.

Every live view (the ``%%cost`` widget, the comm to the lab extension) subscribes to a window.
At most ``1 / interval_s`` times a second the ticker computes each watched window's running totals
once and hands them to that window's subscribers. A window that ends within the first interval
costs nothing. With nothing to watch the thread sleeps on a condition, so an idle kernel pays
nothing either.

Subscribers run on the ticker thread; the ones that touch traitlets or comms guard their state
with their own lock so the main thread's final update never interleaves with a tick.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

__all__ = ["Subscriber", "Ticker"]

#: ``subscriber(window_id, live_totals)``; live_totals is ``Session.live_totals(window_id)``.
Subscriber = Callable[[str, dict], None]

DEFAULT_INTERVAL_S = 0.25  # at most four updates a second


class Ticker:
    """Feeds running totals of open windows to their subscribers from one thread."""

    def __init__(self, session: Any, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.session = session
        self.interval_s = interval_s
        self._cond = threading.Condition()
        self._watched: dict[str, list[Subscriber]] = {}
        self._due: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._wakes_at = float("inf")  # when the ticker's thread wakes by itself next

    def watch(self, window_id: str, subscriber: Subscriber) -> None:
        """Send ``window_id``'s running totals to ``subscriber`` until :meth:`unwatch`."""
        with self._cond:
            if self._stopped:
                return
            subscribers = self._watched.setdefault(window_id, [])
            if subscriber not in subscribers:
                subscribers.append(subscriber)
            due = self._due.setdefault(window_id, time.monotonic() + self.interval_s)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nbcost-ticker", daemon=True)
                self._thread.start()
            if due < self._wakes_at:  # else the ticker wakes in time anyway: a burst of short
                self._cond.notify()  # cells ("run all") wakes it once per interval, not per cell

    def unwatch(self, window_id: str, subscriber: Subscriber | None = None) -> None:
        """Stop sending ``window_id`` to ``subscriber`` (to every subscriber when None)."""
        with self._cond:
            subscribers = self._watched.get(window_id, [])
            if subscriber is not None and subscriber in subscribers:
                subscribers.remove(subscriber)
            if subscriber is None or not subscribers:
                self._watched.pop(window_id, None)
                self._due.pop(window_id, None)

    def stop(self) -> None:
        """End the thread. Idempotent."""
        with self._cond:
            self._stopped = True
            self._watched.clear()
            self._due.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)

    @property
    def watching(self) -> list[str]:
        with self._cond:
            return list(self._watched)

    def _run(self) -> None:
        linger_until = None  # with nothing watched: wake by time until then, not by each watch
        while True:
            with self._cond:
                while not self._stopped:
                    now = time.monotonic()
                    due = [w for w, at in self._due.items() if at <= now]
                    if due:
                        break
                    if self._due:
                        linger_until = None
                        self._wakes_at = min(self._due.values())
                    else:  # a burst of short cells: the next comes before the interval is out
                        if linger_until is None:
                            linger_until = now + self.interval_s
                        self._wakes_at = linger_until if now < linger_until else float("inf")
                    if self._cond.wait(timeout=min(self._wakes_at - now, 3600)):
                        linger_until = None  # woken by a watch: linger anew after it
                    self._wakes_at = float("inf")  # awake: a watch now is seen before it waits
                if self._stopped:
                    return
                for window_id in due:
                    self._due[window_id] = now + self.interval_s
                work = [(w, list(self._watched.get(w, ()))) for w in due]
            for window_id, subscribers in work:
                self._tick(window_id, subscribers)

    def _tick(self, window_id: str, subscribers: list[Subscriber]) -> None:
        try:
            live = self.session.live_totals(window_id)
        except KeyError:  # the window closed since we looked
            self.unwatch(window_id)
            return
        except Exception as exc:  # noqa: BLE001 - the ticker must never take the kernel down
            self._failed(window_id, None, exc)
            return
        for subscriber in subscribers:
            try:
                subscriber(window_id, live)
            except Exception as exc:  # noqa: BLE001 - one broken view must not stop the others
                self._failed(window_id, subscriber, exc)

    def _failed(self, window_id: str, subscriber: Subscriber | None, exc: Exception) -> None:
        self.unwatch(window_id, subscriber)
        self.session.warn_once(
            f"ticker:{type(exc).__name__}",
            f"nbcost: the live display stopped updating ({type(exc).__name__}: {exc}); "
            f"your code is unaffected and the final summary still comes.",
        )
