"""Where a course's days, solutions, learner modules and references live, and which checks each day has.

A `Course` is a root folder laid out like this repository:

    checks/specs/dayN.py        DAY and CHECKS (see `checks.spec`)
    checks/references/dayN.*    stored reference outputs and their fingerprint (see `checks.store.references`)
    solutions/MODULE.py         the single source (solutions)
    curriculum/MODULE.py        the generated learner module
    notebooks/{learner,instructor}/MODULE.ipynb

plus a model loader ("module:function" or "path/to/file.py:function") that the grading env calls with a zoo model's
name. `Course.default()` is this repository with `curriculum.models:load_model`; tests build a `Course` over a
fixture folder, so production code has no test-only paths.

A day is declared once: its single source `solutions/dayN_<topic>.py` says the module name (MODULE) and the
exercises (the functions of its cells tagged "exercise", found by the notebook builder); the spec says the checks.
Where the solutions are not shipped, the generated `curriculum/dayN_<topic>.py` stands in. Every exercise must have a
check and every check an exercise, or the course refuses to load: an exercise without a check would never be
graded. A spec may still define MODULE; it must then name the same file.
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
from curriculum.tools.paths import COURSE_ROOT

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

    @property
    def mistakes_path(self) -> Path:
        """The stored outputs of the day's declared mistakes (see `checks.store.references`)."""
        return self.course.root / "checks" / "references" / f"day{self.number}.mistakes.pt"

    @property
    def oracle_path(self) -> Path:
        """The code that computes the day's mistakes and non-solution references: beside the solutions, never
        shipped to learners."""
        return self.course.root / "solutions" / "oracles" / f"day{self.number}.py"

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
        return cls(COURSE_ROOT)

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
            checks = getattr(spec, "CHECKS", None)
            if not isinstance(checks, (list, tuple)):
                raise CourseError(f"{path}: must define CHECKS (list of checks.spec.Check)")
            module = self._module_name(number, getattr(spec, "MODULE", None), path)
            for check in checks:
                if not isinstance(check, Check):
                    raise CourseError(f"{path}: CHECKS holds {check!r}, not a checks.spec.Check")
                if check.name in owner:
                    raise CourseError(f"exercise name {check.name!r} is used by day {owner[check.name]} and day "
                                      f"{number}: names must be unique across the course")
                owner[check.name] = number
            self._require_one_check_per_exercise(number, module, checks, path)
            days[number] = Day(number, module, tuple(checks), self)
        return dict(sorted(days.items()))

    def _source(self, number: int) -> Path | None:
        """The day's single source: its solutions/dayN_*.py, else its curriculum/dayN_*.py, else None."""
        for folder in ("solutions", "curriculum"):
            found = sorted((self.root / folder).glob(f"day{number}_*.py"))
            if len(found) > 1:
                raise CourseError(f"day {number} has several files in {folder}/: "
                                  + ", ".join(p.name for p in found) + "; a day has exactly one")
            if found:
                return found[0]
        return None

    def _module_name(self, number: int, declared: object, spec_path: Path) -> str:
        """The day's module name, from its source file; a MODULE in the spec must agree with it."""
        if declared is not None and not isinstance(declared, str):
            raise CourseError(f"{spec_path}: MODULE must be a str, got {declared!r}")
        source = self._source(number)
        if source is None:
            if declared is None:
                raise CourseError(f"day {number} has no solutions/day{number}_*.py (nor curriculum/day{number}_*.py) "
                                  "to take its module name from")
            return declared
        if declared is not None and declared != source.stem:
            raise CourseError(f"{spec_path}: MODULE = {declared!r}, but the day's file is {source.name}: drop MODULE "
                              "(the name comes from the file) or make them agree")
        return source.stem

    def _require_one_check_per_exercise(self, number: int, module: str, checks: list | tuple,
                                        spec_path: Path) -> None:
        from notebooks.exercises import exercise_names

        source = self._source(number)
        if source is None:
            return  # nothing to compare with (a spec without its day's files)
        exercises = exercise_names(source.read_text(encoding="utf-8"))
        checked = [check.name for check in checks]
        unchecked = [name for name in exercises if name not in checked]
        orphans = [name for name in checked if name not in exercises]
        if unchecked or orphans:
            problems = []
            if unchecked:
                problems.append(f"exercises without a check (never graded): {', '.join(unchecked)}")
            if orphans:
                problems.append(f"checks without an exercise in {source.name}: {', '.join(orphans)}")
            raise CourseError(f"day {number} ({spec_path}): " + "; ".join(problems))

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
        if path.parent == COURSE_ROOT / "checks" / "specs":
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
