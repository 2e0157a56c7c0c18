"""Reference outputs: what the solutions return on each check's inputs, stored with a fingerprint.

`python -m checks references --day N [--device cpu|cuda]` runs every solution of day N on its check's inputs and
writes `checks/references/dayN.pt` (the outputs, CPU tensors, loadable with `weights_only=True`) and `dayN.json`
(the fingerprint). Outputs are stored per exercise and input case (`outputs[exercise][case]`); on a case that expects
an exception (`checks.spec.Raises`) the stored output is `{"raised": "ValueError"}` (see `checks.judging.judge`), after
checking that the solution does raise it. Per exercise the
fingerprint records the solution hash and, per case, the inputs' fingerprint:
- `inputs_hash`: the inputs' structure (names, types, shapes, dtypes), the exact values of everything but
  floating-point tensors (including a `torch.Generator`'s state), and the weights hash of every zoo model the
  inputs builder used. Floating-point tensors enter by shape and dtype only, since their bits differ across devices
  (references are built on a GPU, graded on CPU)...
- `inputs_floats`: ...so each floating-point tensor is summarised instead (its mean absolute value, count of
  non-finite values, mean, and 8 evenly spaced elements), and compared within 1e-3 of its scale: device noise
  passes, changed data (e.g. other tokens behind cached activations) does not.
- `solution_hash`: the source of the solution function and of every top-level function, class or constant of the
  solution module it refers to, transitively (so editing prose does not invalidate references).
- `oracle_hash`, for a check that names mistakes (`checks.spec.Mistake`) or an `expected_from`: the same hash of the
  functions of `solutions/oracles/dayN.py` it names. Their outputs are computed here too: a mistake's output on every
  case goes to `dayN.mistakes.pt` (`mistakes[exercise][case][function]`), which the judge compares a wrong output
  with; the learner distribution ships these outputs, never the code that computes them.
The day records the device, library versions and each model's weights hash, for the record.

At grading time a reference is *stale* when the file is missing, lacks the exercise, or its inputs, solution or
oracle hash differs from today's. A stale reference is never the learner's fault: the grader reports it with the
command that rebuilds it (see `rebuild_command`).
"""

from __future__ import annotations

import ast
import dataclasses
import datetime
import hashlib
import importlib.metadata
import json
import platform
import re
from pathlib import Path
from typing import Any

import torch

from checks.course import DEFAULT_MODEL_LOADER, Course, Day
from checks.pipeline.env import Env
from checks.pipeline.inputs import InputsFingerprint, build_inputs, floats_match
from checks.judging.judge import Raised, Rejection, catching, judge
from checks.spec import Check, expected_exception
from curriculum.tools.paths import COURSE_ROOT

FORMAT_VERSION = 2  # 2: outputs and inputs fingerprints per input case


class StaleReference(Exception):
    """A reference output is missing or out of date; the message says why and how to rebuild it."""


def stale_reference_message(error: StaleReference, day: Day) -> str:
    """What a stale reference is reported as (by the in-process pipeline and by the supervisor alike)."""
    return (f"{error}. This is not your mistake: the course's stored answers need rebuilding with "
            f"`{rebuild_command(day)}`.")


def rebuild_command(day: Day, device: str | None = None) -> str:
    """The shell command that rebuilds `day`'s references."""
    parts = ["python -m checks references", f"--day {day.number}"]
    if device:
        parts.append(f"--device {device}")
    if day.course.root.resolve() != COURSE_ROOT:
        parts.append(f"--root {day.course.root}")
    if day.course.model_loader != DEFAULT_MODEL_LOADER:
        parts.append(f"--models {day.course.model_loader}")
    return " ".join(parts)


def oracle_names(check: Check) -> list[str]:
    """The functions of the day's `solutions/oracles/dayN.py` that `check` names: its mistakes' and its
    `expected_from`."""
    names = [mistake.computed_by for mistake in check.mistakes]
    return names + ([check.expected_from] if check.expected_from else [])


def oracle_hash(oracle_path: Path, check: Check) -> str:
    """Hash of the oracle functions `check` names (each with the top-level names it uses, as `solution_hash`)."""
    hashes = solution_hashes(oracle_path, sorted(set(oracle_names(check))))
    return hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()[:16]


def load_oracles(day: Day) -> Any:
    """The day's `solutions/oracles/dayN.py` as a module (None when no check of the day names an oracle)."""
    import importlib.util

    if not any(oracle_names(check) for check in day.checks):
        return None
    path = day.oracle_path
    if not path.is_file():
        raise RuntimeError(f"day {day.number}'s checks name mistakes or references computed by {path}, which is "
                           "missing")
    spec = importlib.util.spec_from_file_location(f"_course_oracles_day{day.number}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for check in day.checks:
        for name in oracle_names(check):
            if not callable(getattr(module, name, None)):
                raise RuntimeError(f"{path} defines no function {name!r} (named by the check of {check.name!r})")
    return module


def solution_hash(solution_path: Path, name: str) -> str:
    """Hash of the source of top-level function `name` in `solution_path` and of the top-level names it uses."""
    hashes = solution_hashes(solution_path, [name])
    if name not in hashes:
        raise StaleReference(f"{solution_path} defines no top-level {name!r}")
    return hashes[name]


def solution_hashes(solution_path: Path, names: list[str]) -> dict[str, str]:
    """`solution_hash` of each of `names` that the file defines, reading and parsing it once."""
    source = solution_path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    lines = _LINE.findall(source)  # as ast.get_source_segment splits them (not at form feeds), once for all names
    definitions: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    definitions[target.id] = node
    hashes = {}
    for name in names:
        if name not in definitions:
            continue
        seen: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            for node in ast.walk(definitions[current]):
                if isinstance(node, ast.Name) and node.id in definitions and node.id not in seen:
                    pending.append(node.id)
        digest = hashlib.sha256()
        for used in sorted(seen):
            digest.update(f"{used}\n{_source_segment(lines, definitions[used])}\n".encode())
        hashes[name] = digest.hexdigest()[:16]
    return hashes


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


def _source_segment(lines: list[str], node: ast.stmt) -> str:
    """`ast.get_source_segment(source, node)` from the source's lines (it splits the whole source on every call)."""
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[operator]
    if first == last:
        return lines[first].encode()[node.col_offset:node.end_col_offset].decode()
    return (lines[first].encode()[node.col_offset:].decode() + "".join(lines[first + 1:last])
            + lines[last].encode()[:node.end_col_offset].decode())


# ---- storing and loading ---------------------------------------------------------------------------------------------
def storable(value: Any, path: str = "output") -> Any:
    """`value` as something `torch.load(weights_only=True)` reads back: CPU tensors, numbers, strings, None and
    lists/tuples/dicts of them. Raises TypeError naming the offending part otherwise."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").clone()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {key: storable(item, f"{path}[{key!r}]") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        items = [storable(item, f"{path}[{i}]") for i, item in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    raise TypeError(f"{path} is a {type(value).__qualname__}; a reference output must be made of tensors, numbers, "
                    "strings, None, lists, tuples and dicts")


class ReferenceStore:
    """The stored references of one day, loaded on first use."""

    def __init__(self, day: Day) -> None:
        self.day = day
        self._outputs: dict[str, Any] | None = None
        self._fingerprint: dict[str, Any] | None = None
        self._mistakes: dict[str, Any] = {}
        self._solution_hashes: dict[str, str | None] = {}
        self._oracle_hashes: dict[str, str | None] = {}

    def _load(self) -> None:
        if self._fingerprint is not None:
            return
        outputs_path, fingerprint_path = self.day.reference_paths
        if not outputs_path.is_file() or not fingerprint_path.is_file():
            raise StaleReference(f"day {self.day.number} has no stored reference outputs ({outputs_path.name} and "
                                 f"{fingerprint_path.name} in {outputs_path.parent})")
        self._fingerprint = json.loads(fingerprint_path.read_text())
        self._outputs = torch.load(outputs_path, map_location="cpu", weights_only=True)
        if self.day.mistakes_path.is_file():
            self._mistakes = torch.load(self.day.mistakes_path, map_location="cpu", weights_only=True)

    def preload(self) -> None:
        """Load the outputs and hash the solutions and oracles now (a supervisor does, before any learner code runs;
        batch grading once, for every submission); raises StaleReference when there are no stored outputs."""
        self._load()
        if self.day.checks:
            try:
                self._solution_hash(self.day.checks[0].name)
            except StaleReference:
                pass  # said by the exercise it concerns
        for check in self.day.checks:
            if oracle_names(check):
                try:
                    self._oracle_hash(check)
                except Exception:
                    pass  # raised again, by the exercise it concerns, when it asks

    def expected(self, name: str, case: str, inputs: InputsFingerprint) -> Any:
        """The stored output for exercise `name` on input case `case`, after checking it is fresh; raises
        StaleReference otherwise."""
        self._load()
        assert self._fingerprint is not None and self._outputs is not None
        if self._fingerprint.get("format") != FORMAT_VERSION:
            raise StaleReference(f"the stored references of day {self.day.number} are in an older format")
        entry = self._fingerprint.get("exercises", {}).get(name)
        if entry is None or name not in self._outputs:
            raise StaleReference(f"the stored references of day {self.day.number} have no output for {name!r}")
        stored = entry["cases"].get(case)
        if stored is None or case not in self._outputs[name]:
            raise StaleReference(f"the stored references of {name!r} have no output for the input case {case!r}")
        if stored["inputs_hash"] != inputs.hash or not floats_match(inputs.floats, stored["inputs_floats"]):
            raise StaleReference(f"the inputs of {name!r} (case {case!r}) changed since its reference was built (the "
                                 "check spec, a data generator or a model's weights changed)")
        current = self._solution_hash(name)
        if current is not None and entry["solution_hash"] != current:
            raise StaleReference(f"the solution of {name!r} changed since its reference was built")
        check = self.day.check(name)
        if oracle_names(check):
            current = self._oracle_hash(check)
            if "oracle_hash" not in entry or (current is not None and entry["oracle_hash"] != current):
                raise StaleReference(f"the mistakes or reference that {self.day.oracle_path.name} computes for "
                                     f"{name!r} changed since its reference was built")
        return self._outputs[name][case]

    def mistakes(self, name: str, case: str) -> dict[str, Any]:
        """The stored output of each of exercise `name`'s mistakes on `case`, by the function that computed it (a
        mistake that could not be computed on the case is absent). Read after `expected`, which checks freshness."""
        self._load()
        stored = self._mistakes.get(name, {}).get(case, {})
        return dict(stored) if isinstance(stored, dict) else {}

    def _oracle_hash(self, check: Check) -> str | None:
        """Today's hash of the oracle functions `check` names, or None where they are not shipped."""
        if check.name not in self._oracle_hashes:
            path = self.day.oracle_path
            self._oracle_hashes[check.name] = oracle_hash(path, check) if path.is_file() else None
        return self._oracle_hashes[check.name]

    def _solution_hash(self, name: str) -> str | None:
        """Today's hash of the solution, or None where the solutions are not shipped (nothing to compare)."""
        if not self._solution_hashes:  # every exercise of the day at once: one parse of the file
            path = self.day.solution_path
            names = [check.name for check in self.day.checks]
            self._solution_hashes = solution_hashes(path, names) if path.is_file() else dict.fromkeys(names)
        if name not in self._solution_hashes:
            raise StaleReference(f"{self.day.solution_path} defines no top-level {name!r}")
        return self._solution_hashes[name]


def build_references(course: Course, number: int, device: str = "cpu", solution_module: Any = None) -> Path:
    """Run day `number`'s solutions on their checks' inputs and store outputs and fingerprint; returns the .pt path.

    Each solution runs under the same isolation as a learner: a solution that raises, changes weights or leaves
    hooks attached stops the build with an error (a reference must come from a well-behaved solution).
    """
    from tqdm import tqdm

    from checks.pipeline.learner import load_module

    day = course.day(number)
    calls = [(check, case) for check in day.checks for case in check.cases]
    progress = tqdm(total=len(calls) + 1, desc=f"day {number} references", unit="case")
    module = solution_module or load_module(day.solution_path)
    oracles = load_oracles(day)
    env = Env(device, course.load_model_function())
    progress.update(1)  # the models and the solution module are loaded
    stored = _stored(day)
    stored_mistakes = _stored_mistakes(day)
    outputs: dict[str, dict[str, Any]] = {}
    mistakes: dict[str, dict[str, dict[str, Any]]] = {}
    kept_mistakes = True  # every mistake's output is the stored one (the same, up to float rounding)
    exercises: dict[str, dict[str, Any]] = {}
    kept = 0  # cases whose stored reference is kept as it was (the same, up to float rounding)
    for check, case in calls:
        progress.update(1)
        function = getattr(module, check.name, None)
        if function is None:
            raise RuntimeError(f"{day.solution_path} has no function {check.name!r}")
        built = build_inputs(env, check, case)
        inputs, fingerprint = built.inputs, built.fingerprint
        env.prepare()
        output = catching(function, check.cases[case])(**inputs)
        problems = env.audit()
        exception = expected_exception(check.cases[case])
        if exception is not None and not (isinstance(output, Raised) and exception.__name__ in output.names):
            problems.append(f"it did not raise {exception.__name__} ({output!r:.200})")
        if check.validate is not None and not isinstance(output, Raised) and check.validate(output, inputs):
            problems.append(f"its output fails the check's own validator: {check.validate(output, inputs)}")
        if check.expected_from is not None and not isinstance(output, Raised):  # the reference is the check's own
            env.prepare()
            expected = getattr(oracles, check.expected_from)(inputs)
            problems.extend(env.audit())
            try:
                judge(output, expected, dataclasses.replace(check, validate=None), {})
            except Rejection as rejection:
                problems.append(f"its output fails against the check's own reference: {rejection.message}")
            output = expected
        if problems:
            raise RuntimeError(f"the solution of {check.name!r} misbehaved on case {case!r}: " + " ".join(problems))
        output = storable(output.stored() if isinstance(output, Raised) else output)
        if check.mistakes and exception is None:
            made = _mistake_outputs(oracles, check, inputs, env)
            old = stored_mistakes.get(check.name, {}).get(case, {})
            made = {name: _kept(check, old.get(name, _MISSING), value) for name, value in made.items()}
            kept_mistakes &= set(made) == set(old) and all(made[name] is old[name] for name in made)
            mistakes.setdefault(check.name, {})[case] = made
        entry = exercises.setdefault(check.name, {"solution_hash": solution_hash(day.solution_path, check.name),
                                                  "cases": {}})
        if oracle_names(check):
            entry["oracle_hash"] = oracle_hash(day.oracle_path, check)
        case_record = {"inputs_hash": fingerprint.hash, "inputs_floats": fingerprint.floats}
        previous = _unchanged(stored, check, case, entry["solution_hash"], case_record, output)
        if previous is not None:  # keep the stored bytes: a rebuild of an unchanged course changes no file
            output, case_record = previous
            kept += 1
        outputs.setdefault(check.name, {})[case] = output
        entry["cases"][case] = case_record
    progress.close()
    outputs_path, fingerprint_path = day.reference_paths
    kept_mistakes &= set(stored_mistakes) == set(mistakes)
    if mistakes and not kept_mistakes:
        torch.save(mistakes, day.mistakes_path)
    elif not mistakes:
        day.mistakes_path.unlink(missing_ok=True)
    if (stored is not None and kept == len(calls) and set(stored[1]["exercises"]) == set(exercises)
            and all(stored[1]["exercises"][name].get("oracle_hash") == entry.get("oracle_hash")
                    for name, entry in exercises.items())):
        return outputs_path  # every reference is the stored one: the files stay as they are, byte for byte
    record = {
        "format": FORMAT_VERSION,
        "day": number,
        "module": day.module,
        "device": str(env.device),
        "device_name": torch.cuda.get_device_name(env.device) if env.device.type == "cuda" else platform.processor()
        or platform.machine(),
        "versions": {"torch": torch.__version__, "transformer_lens": importlib.metadata.version("transformer_lens"),
                     "python": platform.python_version()},
        "models": env.model_hashes,
        "built": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exercises": exercises,
    }
    outputs_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(outputs, outputs_path)
    fingerprint_path.write_text(json.dumps(record, indent=2) + "\n")
    return outputs_path


def _stored(day: Day) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The day's stored (outputs, fingerprint record) in the current format, or None."""
    outputs_path, fingerprint_path = day.reference_paths
    try:
        record = json.loads(fingerprint_path.read_text())
        if record.get("format") != FORMAT_VERSION or not isinstance(record.get("exercises"), dict):
            return None
        return torch.load(outputs_path, map_location="cpu", weights_only=True), record
    except Exception:  # missing, unreadable or from another format: rebuilt from scratch
        return None


def _mistake_outputs(oracles: Any, check: Check, inputs: dict[str, Any], env: Env) -> dict[str, Any]:
    """What each of `check`'s mistakes returns on `inputs`, storable, by the oracle function's name. A mistake that
    cannot be computed on these inputs (it raises) is left out: the judge then names it on the other cases only."""
    made = {}
    for mistake in check.mistakes:
        env.prepare()
        try:
            value = storable(getattr(oracles, mistake.computed_by)(inputs))
        except Exception:  # noqa: BLE001 - e.g. a mistake that indexes past a short case's end
            continue
        finally:
            problems = env.audit()
        if problems:
            raise RuntimeError(f"the mistake {mistake.computed_by!r} of {check.name!r} misbehaved: {problems}")
        made[mistake.computed_by] = value
    return made


def _kept(check: Check, old: Any, new: Any) -> Any:
    """The stored output `old` where `new` reproduces it up to float rounding (see `_unchanged`), else `new`."""
    from checks.judging.compare import compare
    from checks.judging.judge import type_mismatch

    if old is _MISSING or not _same_structure(new, old) or type_mismatch(new, old):
        return new
    verdict = compare(new, old, atol=check.atol * _KEEP_FRACTION, rtol=check.rtol * _KEEP_FRACTION,
                      unordered=check.unordered)
    return old if verdict.passed else new


def _stored_mistakes(day: Day) -> dict[str, Any]:
    """The day's stored mistake outputs, or {} (none yet, or unreadable: computed afresh)."""
    try:
        stored = torch.load(day.mistakes_path, map_location="cpu", weights_only=True)
    except Exception:
        return {}
    return stored if isinstance(stored, dict) else {}


# a new output within a tenth of the check's tolerance of the stored one is the same reference (float32 rounding on
# another CPU or thread count moves day 1's outputs by up to 3% of it)
_KEEP_FRACTION = 0.1


def _unchanged(stored: tuple[dict[str, Any], dict[str, Any]] | None, check: Any, case: str, solution: str,
               record: dict[str, Any], output: Any) -> tuple[Any, dict[str, Any]] | None:
    """The stored (output, case record) of `case` when the rebuild reproduces it: the same solution and inputs, and
    an output that differs from the stored one by float rounding only (another CPU or thread count can change the
    last digits); else None."""
    from checks.judging.compare import compare
    from checks.judging.judge import type_mismatch

    if stored is None:
        return None
    outputs, fingerprint = stored
    entry = fingerprint["exercises"].get(check.name)
    if not isinstance(entry, dict) or entry.get("solution_hash") != solution:
        return None
    old_record = entry.get("cases", {}).get(case)
    if not isinstance(old_record, dict) or old_record.get("inputs_hash") != record["inputs_hash"]:
        return None
    if not floats_match(record["inputs_floats"], old_record.get("inputs_floats", [])):
        return None
    old = outputs.get(check.name, {}).get(case, _MISSING)
    if old is _MISSING or not _same_structure(output, old) or type_mismatch(output, old):
        return None
    verdict = compare(output, old, atol=check.atol * _KEEP_FRACTION, rtol=check.rtol * _KEEP_FRACTION,
                      unordered=check.unordered)
    return (old, old_record) if verdict.passed else None


_MISSING = object()


def _same_structure(a: Any, b: Any) -> bool:
    """The same container types and keys all the way down, and the same type at each leaf."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_structure(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_structure(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape
    return True
