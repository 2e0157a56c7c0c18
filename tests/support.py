"""Plain helpers shared by the project's tests (imported as `support`: pytest puts this folder on `sys.path` for
`conftest.py`): where the fixture course lies, how to build a private copy of it, and hostile code that more than
one test file submits."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
FIXTURE_MODELS = f"{FIXTURE_COURSE / 'models.py'}:load_model"

# A submission's source that reads another process's memory (the supervisor's, where it holds the references):
# `_read_another_process()` returns the pid whose memory it read, or None when none could be read.
READ_ANOTHER_PROCESS = """
import os
def _read_another_process():
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/maps") as maps:
                start = int(maps.readline().split("-")[0], 16)
            with open(f"/proc/{entry}/mem", "rb") as mem:
                mem.seek(start)
                if mem.read(16):
                    return int(entry)
        except (OSError, ValueError):
            continue
    return None
"""


def make_fixture_course(destination: Path):
    """A copy of the fixture course (tests/fixtures/course) under `destination`, with references and curriculum
    built, as a `checks.course.Course`."""
    from checks.course import Course
    from checks.store.manifest import write_manifest
    from checks.store.references import build_references
    from notebooks.builder import curriculum_text, find_days

    root = destination / "course"
    shutil.copytree(FIXTURE_COURSE, root, ignore=shutil.ignore_patterns("__pycache__"))
    course = Course(root, FIXTURE_MODELS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for number in course.days:
            build_references(course, number, "cpu")
    write_manifest(course)
    for files in find_days(root):
        files.curriculum.parent.mkdir(parents=True, exist_ok=True)
        files.curriculum.write_text(curriculum_text(files.solution))
    return course
