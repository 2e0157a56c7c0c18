"""Shared fixtures of the project's tests (their plain helpers are in `support.py`). `pytester` is enabled for the
plugin's tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import pytest

from support import make_fixture_course

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    # Under `pytest -n N`, each worker (and the processes it starts) gets its share of the cores as torch threads,
    # so that N workers do not oversubscribe them; an explicit OMP_NUM_THREADS is left as it is.
    _share = max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = str(_share)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_share)
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
