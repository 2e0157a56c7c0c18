"""Where a course's days, solutions, learner modules and references live, and which checks each day has.

A `Course` is a root folder laid out like this repository:

    checks/specs/dayN.py        DAY, MODULE and CHECKS (see `checks.spec`)
    checks/references/dayN.*    stored reference outputs and their fingerprint (see `checks.references`)
    solutions/MODULE.py         the single source (solutions)
    curriculum/MODULE.py        the generated learner module
    notebooks/{learner,instructor}/MODULE.ipynb

plus a model loader ("module:function" or "path/to/file.py:function") that the grading env calls with a zoo model's
name. `Course.default()` is this repository with `curriculum.models:load_model`; tests build a `Course` over a
fixture folder, so production code has no test-only paths.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import Callable

from checks.spec import Check

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_LOADER = "curriculum.models:load_model"
_SPEC_FILE = re.compile(r"^day(\d+)\.py$")


class CourseError(Exception):
    """The course itself is broken or misused (not the learner's fault): bad spec, unknown day or exercise."""


@dataclass(frozen=True)
class Day:
    """One day of the course: its number, module name, checks, and where its files live."""

    number: int
    module: str
    checks: tuple[Check, ...]
    course: "Course" = field(repr=False, compare=False)

    @property
    def solution_path(self) -> Path:
        return self.course.root / "solutions" / f"{self.module}.py"

    @property
    def curriculum_path(self) -> Path:
        return self.course.root / "curriculum" / f"{self.module}.py"

    @property
    def reference_paths(self) -> tuple[Path, Path]:
        """(outputs .pt, fingerprint .json)."""
        base = self.course.root / "checks" / "references" / f"day{self.number}"
        return base.with_suffix(".pt"), base.with_suffix(".json")

    def check(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise CourseError(f"day {self.number} has no exercise named {name!r}")


@dataclass(frozen=True)
class Course:
    """A course root (see the module docstring) and the model loader its checks use."""

    root: Path
    model_loader: str = DEFAULT_MODEL_LOADER

    @classmethod
    def default(cls) -> "Course":
        return cls(REPO_ROOT)

    @cached_property
    def days(self) -> dict[int, Day]:
        """Every day with a spec, by number. Raises CourseError on a malformed spec or a duplicate exercise name."""
        specs_dir = self.root / "checks" / "specs"
        days: dict[int, Day] = {}
        owner: dict[str, int] = {}
        for path in sorted(specs_dir.glob("day*.py")):
            match = _SPEC_FILE.match(path.name)
            if not match:
                continue
            try:
                spec = self._load_spec(path)
            except Exception as error:
                raise CourseError(f"importing the check spec {path} failed: {type(error).__name__}: {error}") from error
            number = getattr(spec, "DAY", None)
            if number != int(match.group(1)):
                raise CourseError(f"{path}: DAY = {number!r} does not match the file name")
            module = getattr(spec, "MODULE", None)
            checks = getattr(spec, "CHECKS", None)
            if not isinstance(module, str) or not isinstance(checks, (list, tuple)):
                raise CourseError(f"{path}: must define MODULE (str) and CHECKS (list of checks.spec.Check)")
            for check in checks:
                if not isinstance(check, Check):
                    raise CourseError(f"{path}: CHECKS holds {check!r}, not a checks.spec.Check")
                if check.name in owner:
                    raise CourseError(f"exercise name {check.name!r} is used by day {owner[check.name]} and day "
                                      f"{number}: names must be unique across the course")
                owner[check.name] = number
            days[number] = Day(number, module, tuple(checks), self)
        return dict(sorted(days.items()))

    def day(self, number: int) -> Day:
        try:
            return self.days[number]
        except KeyError:
            known = ", ".join(str(n) for n in self.days) or "none"
            raise CourseError(f"there is no day {number} (days with checks: {known})") from None

    def find(self, name: str) -> tuple[Day, Check]:
        """The day and check of the exercise called `name`."""
        for day in self.days.values():
            for check in day.checks:
                if check.name == name:
                    return day, check
        raise CourseError(f"no exercise is named {name!r}; exercises: "
                          + ", ".join(c.name for d in self.days.values() for c in d.checks))

    def load_model_function(self) -> Callable:
        """The model loader named by `model_loader`."""
        return load_object(self.model_loader)

    def _load_spec(self, path: Path) -> ModuleType:
        if path.parent == REPO_ROOT / "checks" / "specs":
            return importlib.import_module(f"checks.specs.{path.stem}")
        return import_path(path, f"_course_specs_{_short_id(path.parent)}_{path.stem}")


def import_path(path: Path, name: str) -> ModuleType:
    """Import a Python file under the module name `name` (reused if already imported from the same file)."""
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__file__", None) == str(path):
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CourseError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_object(reference: str) -> Callable:
    """Resolve "package.module:attr" or "path/to/file.py:attr"."""
    target, sep, attr = reference.rpartition(":")
    if not sep or not target or not attr:
        raise CourseError(f"expected 'module:function' or 'file.py:function', got {reference!r}")
    if target.endswith(".py"):
        path = Path(target).resolve()
        module = import_path(path, f"_course_loader_{_short_id(path)}")
    else:
        module = importlib.import_module(target)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise CourseError(f"{target} has no attribute {attr!r}") from None


def _short_id(path: Path) -> str:
    return hashlib.sha1(str(path).encode()).hexdigest()[:10]
