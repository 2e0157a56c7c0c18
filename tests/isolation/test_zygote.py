"""What the zygote prepares once for all its children (`checks.isolation.zygote`): its memory in huge pages, the
Landlock ruleset, the learner's file compiled; each must leave every child exactly as safe and as current as before."""

from __future__ import annotations

import ctypes
import mmap
import os
import textwrap
from pathlib import Path

import pytest

from checks.frontends.session import GradingSession
from checks.isolation import sandbox
from checks.isolation.zygote import collapse_into_huge_pages

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _anon_huge_bytes() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) * 1024
    return 0


def _in_child(check) -> int:
    """Run `check()` in a forked child; its exit code (0: it held, 1: it did not, 2: it raised, 3: skip)."""
    pid = os.fork()
    if pid == 0:
        code = 2
        try:
            code = check()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WEXITSTATUS(status)


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux's /proc")
def test_collapsing_moves_written_memory_into_huge_pages():
    def check() -> int:
        memory = mmap.mmap(-1, 64 << 20)  # anonymous, private to this process after fork
        memory.write(b"\1" * (64 << 20))  # written: 16384 pages of 4 KiB, each one a page-table entry to copy
        before = _anon_huge_bytes()
        collapsed = collapse_into_huge_pages()
        if collapsed == 0:
            return 3  # a kernel without MADV_COLLAPSE (before 6.1): forks stay as they were
        held = _anon_huge_bytes() - before >= 32 << 20 and memory[:16] == b"\1" * 16 and memory[-1:] == b"\1"
        return 0 if held else 1

    code = _in_child(check)
    if code == 3:
        pytest.skip("the kernel cannot collapse memory into huge pages (MADV_COLLAPSE, Linux 6.1+)")
    assert code == 0


@pytest.mark.skipif(sandbox.landlock_abi() < 1, reason="needs Landlock")
def test_a_child_closes_its_copy_of_the_prepared_ruleset_when_it_restricts_itself(tmp_path):
    """The zygote builds the Landlock ruleset once; a child restricts itself with its copy of the descriptor and
    closes it, so no learner code can add a rule (a folder made readable) to the ruleset the next child gets."""
    forbidden, allowed = [tmp_path / "solutions"], [tmp_path / "learner.py"]
    forbidden[0].mkdir()
    allowed[0].write_text("")

    def check() -> int:
        ruleset = sandbox.prepare_ruleset(forbidden, allowed)
        if ruleset is None:
            return 1
        pid = os.fork()  # as the zygote forks a child, which restricts itself
        if pid == 0:
            held = False
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(38, 1, 0, 0, 0)  # no_new_privs, as the seccomp filter sets it first
                restricted = sandbox.restrict_files(forbidden, allowed)
                try:
                    os.fstat(ruleset)
                except OSError:
                    held = restricted
            finally:
                os._exit(0 if held else 1)
        _, status = os.waitpid(pid, 0)
        os.fstat(ruleset)  # the parent's own stays open for the next child
        return os.WEXITSTATUS(status)

    assert _in_child(check) == 0


def test_a_learner_file_changed_between_exercises_is_graded_as_it_is_now(built_course, tmp_path):
    """The zygote compiles a learner's file once for all its exercises: an edit in between is seen, as it always was."""
    day = built_course.days[1]
    name = day.checks[0].name
    learner = tmp_path / "learner_day1.py"
    solution = day.solution_path.read_text()
    learner.write_text(solution + "\n\n" + textwrap.dedent(f"""
        def {name}(*args, **kwargs):
            raise ValueError("a first draft")
        """))
    session = GradingSession(built_course, [day], device="cpu", learner=learner)
    try:
        first = session.supervisor.grade_file(day, day.check(name), learner)
        learner.write_text(solution)
        second = session.supervisor.grade_file(day, day.check(name), learner)
    finally:
        session.close()
    assert first.status == "failed" and "a first draft" in first.message, first.message
    assert second.status == "passed", second.message
