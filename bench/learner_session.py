"""A scripted learner session in a fresh clone: no learner work is lost, and the grades are the ones expected.

    python bench/learner_session.py [--full]

In a fresh `git clone` of this repository (its committed state), with a fresh workspace:
1. `python -m curriculum start 1`;
2. two exercises written in the notebook and saved as JupyterLab with jupytext saves (the notebook, then its paired
   module), then one more written in the module in an editor, using a module-level constant and a helper function;
3. `python -m notebooks build --check`, then `python -m notebooks build`;
4. the project's tests: `pytest -q` with --full, else the staleness test only (the one a learner's work used to break);
5. `pytest --day 1`.
Checks: the workspace files are byte-identical before and after steps 3-5; the builder had nothing to write; the
tests pass; `pytest --day 1` graded the learner's module and found exactly the three written exercises passed and
the ten others not started. Prints a JSON summary; exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_EXERCISES = ("describe_model", "tokenize")
MODULE_EXERCISE = "next_token_accuracy"
# written "in an editor": a module-level constant and a helper function, as a learner might
MODULE_ADDITION = '''

PREDICTION_SHIFT = 1  # logits at position i predict the token at position i + PREDICTION_SHIFT


def _predicted_tokens(model, tokens):
    return model(tokens)[:, :-PREDICTION_SHIFT].argmax(dim=-1)
'''
MODULE_BODY = "return (_predicted_tokens(model, tokens) == tokens[:, PREDICTION_SHIFT:]).float().mean().item()"


def solution_body(name: str) -> str:
    """The body (after the docstring) of solution `name` of day 1, as indented source."""
    source = (REPO_ROOT / "solutions" / "day1_induction_heads.py").read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)
    lines = source.splitlines()
    return "\n".join(lines[node.body[1].lineno - 1: node.end_lineno])


def stub_line(name: str) -> str:
    return f'    raise NotImplementedError("write {name}, then run check({name})")'


def digest(paths: list[Path]) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def run(command: list[str], cwd: Path, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def learner_session(scratch: Path, *, full: bool = False) -> dict:
    import jupytext
    import nbformat

    clone, workspace = scratch / "clone", scratch / "workspace"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=300)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MECHINTERP_WORKSPACE": str(workspace), "PYTHONPATH": str(clone),
           "PYTHONDONTWRITEBYTECODE": "1"}
    result: dict = {"clone": str(clone), "workspace": str(workspace)}

    started = run([sys.executable, "-m", "curriculum", "start", "1"], clone, env)
    result["start_rc"] = started.returncode
    notebook, module = workspace / "day1_induction_heads.ipynb", workspace / "day1_induction_heads.py"

    # in JupyterLab: write two exercises in the notebook; saving writes the notebook, then its paired module
    document = nbformat.read(notebook, as_version=4)
    for name in NOTEBOOK_EXERCISES:
        cell = next(cell for cell in document.cells if stub_line(name).strip() in cell.source)
        cell.source = cell.source.replace(stub_line(name), solution_body(name))
    nbformat.write(document, notebook)
    jupytext.write(jupytext.read(notebook), module, fmt="py:percent")
    # in an editor: one more exercise in the module, with a constant and a helper of the learner's own
    text = module.read_text()
    text = text.replace(stub_line(MODULE_EXERCISE), f"    {MODULE_BODY}")
    text = re.sub(r"(\nMAIN = __name__ == \"__main__\"\n)", lambda m: m.group(1) + MODULE_ADDITION, text, count=1)
    module.write_text(text)
    before = digest([notebook, module])

    check = run([sys.executable, "-m", "notebooks", "build", "--check"], clone, env)
    build = run([sys.executable, "-m", "notebooks", "build"], clone, env)
    tests = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
                + ([] if full else ["tests/tools/test_builder.py::test_the_repository_generated_files_are_up_to_date"]),
                clone, env, timeout=3600)
    report = scratch / "grades.json"
    graded = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--day", "1",
                  "--grade-json", str(report)], scratch, env)
    after = digest([notebook, module])
    grades = json.loads(report.read_text()) if report.is_file() else {"exercises": [], "days": {}}
    statuses = {entry["exercise"]: entry["status"] for entry in grades["exercises"]}
    expected = {name: "passed" if name in (*NOTEBOOK_EXERCISES, MODULE_EXERCISE) else "not started"
                for name in statuses}
    result.update({
        "work_kept": before == after and all(solution_body(n).strip().splitlines()[0].strip() in module.read_text()
                                             for n in NOTEBOOK_EXERCISES) and MODULE_BODY in module.read_text(),
        "build_check": {"rc": check.returncode, "output": check.stdout.strip()},
        "build": {"rc": build.returncode, "wrote": [line for line in build.stdout.splitlines()
                                                     if line.startswith("wrote")]},
        "project_tests": {"rc": tests.returncode, "summary": (tests.stdout.strip().splitlines() or [""])[-1]},
        "pytest_day_1": {"rc": graded.returncode, "graded": grades.get("days", {}).get("1", {}).get("source"),
                         "said": [line for line in graded.stdout.splitlines() if "grading" in line],
                         "statuses": statuses},
    })
    result["ok"] = bool(
        result["start_rc"] == 0 and result["work_kept"] and check.returncode == 0 and build.returncode == 0
        and not result["build"]["wrote"] and tests.returncode == 0 and graded.returncode == 0
        and result["pytest_day_1"]["graded"] == str(module) and len(statuses) == 13 and statuses == expected
        and any(str(module) in line for line in result["pytest_day_1"]["said"]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="run the project's whole test suite in the clone")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="learner-session-") as scratch:
        result = learner_session(Path(scratch), full=args.full)
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
