"""Grading ahead: the exercises pytest will ask for, graded in background threads, several at a time.

pytest runs its items one after another; the supervisor can grade `parallel` exercises side by side (each in its own
worker, one core each). `Lookahead` grades the planned exercises in pytest's order with that many threads and hands
each outcome over when pytest reaches it. Which exercises may run side by side, and what happens after an incident,
is the supervisor's business (`checks.isolation.supervisor`); this module only schedules, with one rule of its own: the
first exercise of each group (a day's file) ends before another of its group starts, so that if the file cannot be graded,
it is always that exercise which says why.
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable

from checks.pipeline.outcome import Outcome


class Lookahead:
    """Grades `plan` (keys, in order) with `grade(key)`, `width` at a time, from the moment it is created; `group(key)`
    names a key's group (see the module docstring)."""

    def __init__(self, plan: list[Hashable], grade: Callable[[Hashable], Outcome], width: int,
                 group: Callable[[Hashable], Hashable] = lambda key: None) -> None:
        self._plan = list(dict.fromkeys(plan))
        self._first_of_group: dict[Hashable, Hashable] = {}
        for key in self._plan:
            self._first_of_group.setdefault(group(key), key)
        self._group = group
        self._grade = grade
        self._next = 0
        self._done: dict[Hashable, Outcome | BaseException] = {}
        self._changed = threading.Condition()
        self._stopping = False
        self._threads = [threading.Thread(target=self._work, name=f"course-grading-{index}", daemon=True)
                         for index in range(max(1, min(width, len(self._plan))))]
        for thread in self._threads:
            thread.start()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._plan

    def outcome(self, key: Hashable) -> Outcome:
        """The outcome of planned exercise `key`, waiting for it (re-raises what grading it raised)."""
        with self._changed:
            while key not in self._done:
                if self._stopping and not any(thread.is_alive() for thread in self._threads):
                    raise RuntimeError(f"grading was stopped before {key} was graded")
                self._changed.wait(0.5)  # a timeout keeps Ctrl-C responsive
            result = self._done[key]
        if isinstance(result, BaseException):
            raise result
        return result

    def stop(self) -> None:
        """Start no more exercises (those running end when the caller stops the workers; then `join`)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()

    def join(self, timeout: float = 30.0) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._changed:
                if self._stopping or self._next >= len(self._plan):
                    return
                key = self._plan[self._next]
                self._next += 1
                first = self._first_of_group[self._group(key)]
                while first != key and first not in self._done and not self._stopping:
                    self._changed.wait()
                if self._stopping:
                    return
            try:
                result: Outcome | BaseException = self._grade(key)
            except BaseException as error:  # handed to whoever asks for this exercise
                result = error
            with self._changed:
                self._done[key] = result
                self._changed.notify_all()
