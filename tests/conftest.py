"""Shared fixtures of the project's tests. `pytester` is enabled for the plugin's tests."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest_plugins = ["pytester"]

FIXTURE_COURSE = Path(__file__).parent / "fixtures" / "course"
FIXTURE_MODELS = f"{FIXTURE_COURSE / 'models.py'}:load_model"


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


@pytest.fixture(scope="session", autouse=True)
def isolated_workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The project's tests never see (nor write) the learner's own workspace: a fresh one under pytest's temporary
    folder while they run. A fixture, not an import-time setting, so that `pytest --day N` run inside the checkout
    (which loads this file but runs no test of it) grades the learner's workspace."""
    workspace = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MECHINTERP_WORKSPACE", str(workspace))
        yield workspace


@pytest.fixture(scope="session")
def built_course(tmp_path_factory: pytest.TempPathFactory):
    """The fixture course with references and curriculum built: shared, so never modify it (use `fresh_course`)."""
    return make_fixture_course(tmp_path_factory.mktemp("built"))


@pytest.fixture
def fresh_course(tmp_path: Path):
    """A private copy of the fixture course with references and curriculum built, free to modify."""
    return make_fixture_course(tmp_path)
