"""Submissions per minute of `python -m checks grade` on a class-sized batch of Day 1 submissions, full isolation.

    python bench/batch_grading.py                                  # 24 submissions, --jobs 2, 3 runs, this tree
    python bench/batch_grading.py --trees .,/tmp/old-tree --runs 3 # side by side with another checkout

The batch mixes honest submissions (the reference solution) with partial ones (the first k exercises solved, the
rest left as the curriculum's stubs), 2 of 3 honest. Each run is a fresh `python -m checks grade --day 1 ... --jobs
N` process, timed from start to exit; trees are interleaved run by run so that each sees the same machine load.
Prints per tree the median submissions per minute, its spread, and (with two trees) the ratio first / second, and
checks every grade: an honest submission must pass every exercise, a partial one exactly its k.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_submissions(tree: Path, folder: Path, count: int) -> dict[str, int | None]:
    """Write `count` Day 1 submissions into `folder`; returns name -> exercises it solves (None: all)."""
    solution = next((tree / "solutions").glob("day1_*.py"))
    stub = tree / "curriculum" / solution.name
    solved = solution.read_text()
    exercises = subprocess.run([sys.executable, "-c", "from checks.course import Course; "
                                "print(*(c.name for c in Course.default().day(1).checks))"],
                               cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True,
                               text=True, check=True).stdout.split()
    names = [node.name for node in ast.parse(stub.read_text()).body
             if isinstance(node, ast.FunctionDef) and node.name in exercises]  # the exercises, in the file's order
    expected: dict[str, int | None] = {}
    for index in range(count):
        name = f"learner{index:03d}"
        if index % 3 == 2:  # partial: solved up to exercise k, the others the stub's
            k = 1 + index % max(1, len(names) - 1)
            text = _replace_functions(solved, stub.read_text(), names[k:])
            expected[name] = k
        else:
            text, expected[name] = solved, None
        (folder / f"{name}.py").write_text(text)
    return expected


def _replace_functions(text: str, stub_text: str, names: list[str]) -> str:
    """`text` with the top-level functions `names` as written in `stub_text`."""
    stub_tree = ast.parse(stub_text)
    stubs = {node.name: ast.get_source_segment(stub_text, node) for node in stub_tree.body
             if isinstance(node, ast.FunctionDef)}
    lines = text.splitlines(keepends=True)
    tree = ast.parse(text)
    for node in sorted((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names),
                       key=lambda n: n.lineno, reverse=True):
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        lines[start:node.end_lineno] = [stubs[node.name] + "\n"]
    return "".join(lines)


def grade_once(tree: Path, submissions: Path, out: Path, jobs: int) -> float:
    """Seconds for one batch; raises when the batch fails to run."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(tree)}
    command = [sys.executable, "-m", "checks", "grade", "--day", "1", "--device", "cpu", "--jobs", str(jobs),
               "--out", str(out), *sorted(str(path) for path in submissions.glob("*.py"))]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise RuntimeError(f"grading in {tree} failed ({result.returncode}):\n{result.stdout[-3000:]}"
                           f"{result.stderr[-3000:]}")
    return elapsed


def check_grades(out: Path, expected: dict[str, int | None]) -> None:
    """Every honest submission passed everything; every partial one exactly what it solved."""
    with open(out / "summary.csv") as handle:
        rows = {row["submission"]: row for row in csv.DictReader(handle)}
    for name, solved in expected.items():
        row = rows[name]
        want = int(row["total"]) if solved is None else solved
        if int(row["passed"]) != want:
            raise AssertionError(f"{name}: passed {row['passed']}/{row['total']}, expected {want} ({row['note']})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=".", help="comma-separated checkouts of the course to compare")
    parser.add_argument("--submissions", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    work = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        folders = {}
        expectations = {}
        for index, tree in enumerate(trees):
            folders[tree] = work / f"submissions{index}"
            folders[tree].mkdir()
            expectations[tree] = make_submissions(tree, folders[tree], args.submissions)
        rates: dict[Path, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.runs):
            for index, tree in enumerate(trees):  # interleaved: every tree sees the same load
                out = work / f"grades{index}"
                seconds = grade_once(tree, folders[tree], out, args.jobs)
                check_grades(out, expectations[tree])
                rates[tree].append(60 * args.submissions / seconds)
                print(f"{tree}: {seconds:.1f} s, {rates[tree][-1]:.1f} submissions/min", flush=True)
        medians = {tree: statistics.median(values) for tree, values in rates.items()}
        print(f"\n{args.submissions} Day 1 submissions, --jobs {args.jobs}, {args.runs} runs, {os.cpu_count()} cores")
        for tree in trees:
            print(f"{str(tree):<40} median {medians[tree]:6.1f} submissions/min  "
                  f"(min {min(rates[tree]):.1f}, max {max(rates[tree]):.1f})")
        if len(trees) == 2:
            print(f"ratio {trees[0].name} / {trees[1].name}: {medians[trees[0]] / medians[trees[1]]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
