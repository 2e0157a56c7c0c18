"""Shared fixtures of the project's tests (their plain helpers are in `support.py`). `pytester` is enabled for the
plugin's tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from support import make_fixture_course

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest_plugins = ["pytester"]


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
