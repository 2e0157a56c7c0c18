"""An exercise stopped by its time limit while another ran beside it (which may have starved it of CPU, e.g. a
submission's CPU burner) is graded again alone, and its outcome is the one it gets alone."""

from __future__ import annotations

import threading
from pathlib import Path

from checks.course import Course
from checks.pipeline.outcome import Outcome, Status
from checks.isolation.supervisor import Supervisor, _Gate
from support import FIXTURE_COURSE, FIXTURE_MODELS


def test_a_time_out_beside_another_exercise_is_graded_again_alone():
    day = Course(FIXTURE_COURSE, FIXTURE_MODELS).day(1)
    learner = Path("learner.py")
    supervisor = Supervisor.__new__(Supervisor)  # its grading rules only: no worker
    supervisor._gate, supervisor._parallel, supervisor._incidents, supervisor._closed = _Gate(), 2, 0, False
    supervisor._importable = {(day.number, str(learner))}
    both_running = threading.Barrier(2)
    attempts: list[tuple[str, int]] = []  # (exercise, how many ran at once)

    def run(day, check, learner):  # the first attempt of each runs beside the other and is starved into a time-out
        attempts.append((check.name, len(supervisor._gate._running)))
        if [name for name, _ in attempts].count(check.name) == 1:
            both_running.wait(timeout=10)
            return Outcome(check.name, day.number, Status.FAILED, f"{check.name} did not return within 1 s"), True, True
        return Outcome(check.name, day.number, Status.PASSED), True, False

    supervisor._run = run
    outcomes = {}
    threads = [threading.Thread(target=lambda name=name: outcomes.__setitem__(
        name, supervisor.grade_file(day, day.check(name), learner))) for name in ("count_repeats", "slow_sum")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert {name: outcome.status for name, outcome in outcomes.items()} == dict.fromkeys(
        ("count_repeats", "slow_sum"), Status.PASSED)
    assert len(attempts) == 4 and [running for _, running in attempts[2:]] == [1, 1]  # the second ones alone
    assert supervisor._parallel == 2  # a time-out is not an incident: grading goes on side by side
