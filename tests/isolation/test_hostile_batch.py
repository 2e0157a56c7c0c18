"""Hostile submissions in a batch (`python -m checks grade`): none may lose or falsify another's grade. Each batch
mixes honest submissions (the fixture course's day-1 solution) with hostile ones, and asserts that every honest one
gets 7/7, every hostile one fails what it cheated on, and what the batch writes (reports, logs, summary) is sound.
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
from pathlib import Path

import pytest

from checks.__main__ import main as checks_main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EXERCISES = ("attention_pattern", "mean_logit", "count_repeats", "describe_shape", "head_summary",
             "distinct_tokens", "slow_sum")
RIGHT = "int((tokens[:, 1:] == tokens[:, :-1]).sum())"

# A process chain that tries to outlive its exercise (each link forks the next and exits, so a killer chasing
# orphans keeps missing it) and to drain every pipe of the batch process: the reports of the submissions after it.
DRAINER = f"""
import ctypes, os, time
def _drain(batch):
    end = time.monotonic() + 60
    while time.monotonic() < end:
        if os.fork():
            os._exit(0)
        ctypes.CDLL(None).prctl(15, b"course-survivor", 0, 0, 0)  # PR_SET_NAME: how the test finds it
        for fd in os.listdir(f"/proc/{{batch}}/fd"):
            try:
                if os.readlink(f"/proc/{{batch}}/fd/{{fd}}").startswith("pipe:"):
                    handle = os.open(f"/proc/{{batch}}/fd/{{fd}}", os.O_RDONLY | os.O_NONBLOCK)
                    try:
                        os.read(handle, 1 << 20)
                    except OSError:
                        pass
                    os.close(handle)
            except OSError:
                pass
        time.sleep(0.001)
def count_repeats(tokens):
    if os.fork() == 0:
        try:
            os.setsid()
            _drain(BATCH)
        finally:
            os._exit(0)
    return {RIGHT}
"""

# Another learner's submission, from the same folder, graded as this one's.
COPIER = "import importlib.util, os\n\n\ndef _other():\n" + textwrap.indent(textwrap.dedent("""
    spec = importlib.util.spec_from_file_location("other", os.path.join(os.path.dirname(__file__), "ana_day1.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""), "    ") + "".join(f"\n\ndef {name}(**inputs):\n    return _other().{name}(**inputs)\n" for name in EXERCISES)

FORGER = """
import gc
def count_repeats(tokens):
    channel = next(o for o in gc.get_objects() if type(o).__name__ == "Channel")
    channel.send(kind="rejection", case="", status="error", message="forged: the course's fault", hint="")
    os._exit(0)
"""

THIEF = f"""
import os
def _read_another_process():
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{{entry}}/maps") as maps:
                    start = int(maps.readline().split("-")[0], 16)
                with open(f"/proc/{{entry}}/mem", "rb") as mem:
                    mem.seek(start)
                    if mem.read(16):
                        return int(entry)
            except (OSError, ValueError):
                pass
    return None
_STOLEN = _read_another_process()
def count_repeats(tokens):
    if _STOLEN is None:
        raise PermissionError("no other process's memory could be read")
    return {RIGHT}
"""

FLOOD = """
def describe_shape(tokens):
    for _ in range(24):
        print("x" * 2**20, flush=True)
    return f"batch={tokens.shape[0]}, pos={tokens.shape[1]}"
"""


def _write(folder: Path, name: str, course, hostile: str | None) -> Path:
    solution = course.days[1].solution_path.read_text()
    path = folder / f"{name}_day1.py"
    path.write_text(COPIER if hostile == COPIER else solution + ("\n\n" + hostile if hostile else "") + "\n")
    return path


def _grade(tmp: Path, course, submissions: list[Path], jobs: int) -> tuple[dict, dict]:
    out = tmp / "grades"
    code = checks_main(["grade", "--day", "1", "--root", str(course.root), "--models", course.model_loader,
                        "--out", str(out), "--device", "cpu", "--jobs", str(jobs), *map(str, submissions)])
    assert code in (0, 1)
    statuses = {}
    for path in submissions:
        name = path.stem
        report = json.loads((out / f"{name}.json").read_text())
        statuses[name] = {entry["exercise"]: (entry["status"], entry["message"]) for entry in report["exercises"]}
    rows = {row["submission"]: row for row in csv.DictReader(open(out / "summary.csv"))}
    return statuses, rows


def _survivors() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/comm").read_text().strip() == "course-survivor":
                found.append(entry)
        except OSError:
            pass
    return found


def _all_passed(statuses: dict, name: str) -> None:
    assert {exercise: status for exercise, (status, _) in statuses[name].items()} == dict.fromkeys(EXERCISES,
                                                                                                    "passed"), name


def test_a_process_chain_cannot_drain_the_reports_of_the_submissions_after_it(pytester, built_course):
    drainer = DRAINER.replace("BATCH", str(os.getpid()))  # the batch process: this one
    submissions = [_write(pytester.path, "drainer", built_course, drainer),
                   _write(pytester.path, "ana", built_course, None), _write(pytester.path, "bea", built_course, None)]
    statuses, rows = _grade(pytester.path, built_course, submissions, jobs=1)
    assert not _survivors(), "a process the submission started outlived its grading"
    _all_passed(statuses, "ana_day1")
    _all_passed(statuses, "bea_day1")
    assert rows["ana_day1"]["passed"] == rows["bea_day1"]["passed"] == "7"


def test_hostile_submissions_beside_honest_ones_leave_every_honest_grade_true(pytester, built_course):
    folder = pytester.path
    submissions = [_write(folder, "ana", built_course, None), _write(folder, "copier", built_course, COPIER),
                   _write(folder, "forger", built_course, FORGER), _write(folder, "thief", built_course, THIEF),
                   _write(folder, "flood", built_course, FLOOD), _write(folder, "bea", built_course, None)]
    statuses, rows = _grade(folder, built_course, submissions, jobs=2)
    _all_passed(statuses, "ana_day1")
    _all_passed(statuses, "bea_day1")
    # another learner's file is out of reach: every exercise fails, none is the other learner's pass
    assert {status for status, _ in statuses["copier_day1"].values()} == {"failed"}
    # a forged status is a failure, never "not started" or the course's error
    assert statuses["forger_day1"]["count_repeats"][0] == "failed"
    assert rows["forger_day1"]["course_errors"] == "0" and rows["forger_day1"]["passed"] == "6"
    # no other process's memory can be read, not even from a module-level assignment
    assert statuses["thief_day1"]["count_repeats"][0] == "failed"
    assert rows["thief_day1"]["passed"] == "6"
    # a flood of output is cut in the log, and loses nothing of the report
    assert rows["flood_day1"]["passed"] == "7"
    assert (folder / "grades" / "flood_day1.log").stat().st_size < 17 * 2**20
    # an exercise written exactly as the reference solution is flagged for the instructor (the honest submissions
    # here are the solution itself; the flood rewrote describe_shape)
    flagged = {path.stem: json.loads((folder / "grades" / f"{path.stem}.json").read_text()).get(
        "identical_to_solution", []) for path in submissions}
    assert flagged["ana_day1"] == list(EXERCISES) and "identical to the reference solution" in rows["ana_day1"]["note"]
    assert flagged["flood_day1"] == [name for name in EXERCISES if name != "describe_shape"]
    assert flagged["copier_day1"] == []


def test_a_re_permissioned_course_file_is_given_back_its_mode_and_restoring_never_raises(fresh_course, monkeypatch):
    """A course file whose mode a submission changed (seccomp refuses fchmod on Linux x86-64; elsewhere it may
    happen) gets its mode back; one its owner cannot read any more is made readable and checked, never left to
    raise in the supervisor or the batch process."""
    import stat

    from checks.store import manifest

    expected = manifest.verify_manifest(fresh_course)
    contents, stats = manifest.file_contents(fresh_course), manifest.file_stats(fresh_course)
    target = next(path for path in manifest.manifest_files(fresh_course) if path.suffix == ".pt")
    key = manifest._key(fresh_course, target)
    mode = stat.S_IMODE(target.stat().st_mode)
    target.chmod(0)
    assert manifest.restore_changed(fresh_course, expected, contents, stats) == [key]
    assert stat.S_IMODE(target.stat().st_mode) == mode
    # as the files' owner (not root), reading a file of mode 0 raises PermissionError: as root, pretend it does
    real_hash, refused = manifest.file_hash, []

    def unreadable_once(path):
        if path == target and not refused:
            refused.append(path)
            raise PermissionError(13, "Permission denied", str(path))
        return real_hash(path)

    monkeypatch.setattr(manifest, "file_hash", unreadable_once)
    target.chmod(0)
    assert manifest.restore_changed(fresh_course, expected, contents) == [key]  # the batch's call: no stats
    assert refused and stat.S_IMODE(target.stat().st_mode) & stat.S_IRUSR
