"""The course's pytest entry point (`pytest11`): `pytest --day N` grades day N; without `--day` it does nothing.

pytest loads this module in every run of every project of the environment, so it stays harmless there: a unique
module name, options of the course's own (`--day` is the learner's interface; the others say `course` or name the
course's own things), and no import of the course until `--day` is given. Then it registers
`checks.frontends.plugin`, which does the grading, imported from the folder this file lies in, so that a `checks.py`,
`notebooks/` or `solutions/` of the user's own in the working directory is never taken for the course's.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

COURSE_PACKAGES = ("checks", "curriculum", "notebooks", "solutions")
_HOME = Path(__file__).resolve().parent
_ONLY_WITH_DAY = ("solutions", "learner", "grade_json", "course_device", "course_limits", "course_hints")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("course", "grading the mechanistic-interpretability course's exercises")
    group.addoption("--day", metavar="N", help="grade day N of the course; '1,2' for several days, 'all' for every day")
    group.addoption("--solutions", action="store_true", help="(course) grade the reference solutions")
    group.addoption("--learner", metavar="PATH", type=Path,
                    help="(course) grade this .py module or .ipynb notebook (with several days: a folder of day "
                         "files); default: your workspace copy of the day, else the pristine stub")
    group.addoption("--course-device", choices=("cpu", "cuda"),
                    help="(course) device to grade on (default: cuda if available)")
    group.addoption("--course-limits", metavar="LIMITS",
                    help="(course) grading limits, as the ini option course_limits (which it overrides), e.g. "
                         "'import_s=60 audit_s=60 submission_s=1800 memory_gb=4'")
    group.addoption("--course-hints", nargs="?", type=int, const=1, default=0, metavar="N",
                    help="(course) add the course's hints 1..N to each failed exercise (1: a nudge, 2: the approach, "
                         "3: the recipe; bare --course-hints: 1)")
    group.addoption("--grade-json", metavar="PATH", type=Path, help="(course) also write the results as JSON to PATH")
    parser.addini("course_root", "folder of the course to grade (default: the installed course)", default="")
    parser.addini("course_models", "zoo loader, 'module:function' or 'file.py:function'",
                  default="curriculum.models:load_model")
    parser.addini("course_limits", "grading limits, e.g. 'import_s=60 audit_s=60 submission_s=1800 memory_gb=4'",
                  default="")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("day") is None:
        refuse_options_without_day(config)
        return
    import_course_module("checks.isolation.zygote").prestart()  # the worker's imports beside the plugin's
    plugin = import_course_module("checks.frontends.plugin")
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "mechinterp-course-grading")


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.getoption("day") is not None and "checks.isolation.zygote" in sys.modules:
        sys.modules["checks.isolation.zygote"].discard_prestarted()  # a zygote started for a session never opened


def refuse_options_without_day(config: pytest.Config) -> None:
    used = [f"--{name.replace('_', '-')}" for name in _ONLY_WITH_DAY if config.getoption(name)]
    if used:
        raise pytest.UsageError(f"{', '.join(used)} only make sense with --day N")


def import_course_module(name: str):
    """Import `name` from the course's own packages (beside this file), whatever the working directory holds."""
    shadowed = False
    for package in COURSE_PACKAGES:
        loaded = sys.modules.get(package)
        if loaded is not None and not _is_ours(getattr(loaded, "__file__", None)):
            raise pytest.UsageError(f"a module named {package!r} ({loaded.__file__}) was imported before the "
                                    f"course's own package {_HOME / package}: rename yours to grade the course")
        if loaded is None and (_HOME / package).is_dir():
            spec = importlib.util.find_spec(package)
            shadowed = shadowed or spec is None or not _is_ours(spec.origin)
    if shadowed:
        sys.path.insert(0, str(_HOME))  # the course's packages before same-named modules of the cwd
        importlib.invalidate_caches()
    return importlib.import_module(name)


def _is_ours(origin: str | None) -> bool:
    """Whether a module file is one of the course's packages beside this file (not a stray top-level module)."""
    if origin is None:
        return False
    path = Path(origin).resolve()
    return path.parent != _HOME and path.is_relative_to(_HOME)
