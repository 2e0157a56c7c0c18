"""Grading many submissions at once (`python -m checks grade`), on the fixture course."""

from __future__ import annotations

import csv
import json
import textwrap

import pytest

from checks.__main__ import main
from checks.frontends.batch import SUMMARY_FILE, submission_names

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_submission_names_are_distinct_and_readable(tmp_path):
    for folder in ("ana", "bob"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "day1_toy.ipynb").write_text("{}")
    (tmp_path / "cleo.py").write_text("")
    (tmp_path / "cleo.ipynb").write_text("{}")
    paths = [tmp_path / "ana" / "day1_toy.ipynb", tmp_path / "bob" / "day1_toy.ipynb", tmp_path / "cleo.py",
             tmp_path / "cleo.ipynb"]
    assert submission_names(paths) == ["ana__day1_toy", "bob__day1_toy", "cleo_py", "cleo_ipynb"]
    assert submission_names([tmp_path / "cleo.py"]) == ["cleo"]
    with pytest.raises(ValueError, match="twice"):
        submission_names([tmp_path / "cleo.py", tmp_path / "cleo.py"])


def _hostile(solution: str, name: str, code: str) -> str:
    """The solution with exercise `name` replaced (a later `def` wins)."""
    return solution + "\n\n" + textwrap.dedent(code) + "\n"


def test_ten_submissions_with_two_jobs_are_graded_truthfully(built_course, tmp_path, monkeypatch, capsys):
    import jupytext

    solution = (built_course.root / "solutions" / "day1_toy.py").read_text()
    references = built_course.days[1].reference_paths[0]
    original = references.read_bytes()
    folder = tmp_path / "submissions"
    for sub in ("ana", "bob"):
        (folder / sub).mkdir(parents=True)
    files = {
        "done.py": solution,
        "fresh.py": (built_course.root / "curriculum" / "day1_toy.py").read_text(),
        "hangs.py": _hostile(solution, "slow_sum", """
            def slow_sum(tokens):
                while True:
                    pass"""),
        "exits.py": _hostile(solution, "count_repeats", """
            import os
            def count_repeats(tokens):
                os._exit(0)"""),
        "corrupts.py": _hostile(solution, "describe_shape", f"""
            import ctypes, os
            def describe_shape(tokens):
                libc = ctypes.CDLL(None)
                fd = libc.open({str(references)!r}.encode(), os.O_WRONLY | os.O_TRUNC)
                if fd < 0:
                    raise OSError("the references could not be opened for writing")
                libc.write(fd, b"forged", 6)
                libc.close(fd)
                return "batch=3, pos=8\""""),
        "wrong.py": solution.replace("model(tokens).mean().item()", "model(tokens).mean().item() * 2"),
        "syntax.py": solution.replace("def count_repeats(", "def count_repeats(("),
        "ana/day1_toy.py": solution,
        "bob/day1_toy.py": solution.replace("(tokens[:, 1:] == tokens[:, :-1]).sum()", "(tokens == 0).sum()"),
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    jupytext.write(jupytext.reads(solution, fmt="py:percent"), folder / "ana" / "day1_toy.ipynb")
    paths = sorted(folder.rglob("*.py")) + [folder / "ana" / "day1_toy.ipynb"]
    assert len(paths) == 10
    monkeypatch.chdir(tmp_path)

    code = main(["grade", "--day", "1", "--root", str(built_course.root), "--models", built_course.model_loader,
                 "--out", "grades", "--device", "cpu", "--jobs", "2", *map(str, paths)])

    assert code == 1  # exercises failed
    out = tmp_path / "grades"  # a relative --out lands where it says
    rows = {row["submission"]: row for row in csv.DictReader(open(out / SUMMARY_FILE))}
    expected_passed = {"done": 7, "fresh": 0, "hangs": 6, "exits": 6, "corrupts": 6, "wrong": 6, "syntax": 2,
                       "ana__day1_toy_py": 7, "ana__day1_toy_ipynb": 7, "bob__day1_toy": 6}
    assert {name: int(row["passed"]) for name, row in rows.items()} == expected_passed
    for name, row in rows.items():  # summary.csv and each JSON report agree, and every exercise is counted
        report = json.loads((out / f"{name}.json").read_text())
        statuses = [entry["status"] for entry in report["exercises"]]
        assert int(row["total"]) == len(statuses) == 7
        assert int(row["passed"]) == statuses.count("passed")
        assert int(row["failed"]) == statuses.count("failed")
        assert int(row["not_started"]) == statuses.count("not started")
        assert report["days"]["1"]["score"]["total"] == 7
        log = (out / f"{name}.log").read_text()  # each exercise's outcome, as graded
        assert all(f"== day 1 {entry['exercise']}: {entry['status']} (" in log for entry in report["exercises"])
    assert int(rows["fresh"]["not_started"]) == 7
    messages = {name: {e["exercise"]: e["message"] for e in json.loads((out / f"{name}.json").read_text())[
        "exercises"] if e["status"] == "failed"} for name in rows}
    assert "did not return within 1 s" in messages["hangs"]["slow_sum"]
    assert "exited with code 0" in messages["exits"]["count_repeats"]
    assert "could not be opened for writing" in messages["corrupts"]["describe_shape"]
    assert "cell 5 (it defines count_repeats, describe_shape" in messages["syntax"]["count_repeats"]
    assert "did not return within 1 s" in (out / "hangs.log").read_text()
    assert references.read_bytes() == original
    printed = capsys.readouterr().out
    assert "7/7" in printed and "summary.csv" in printed


def test_missing_submissions_and_unknown_days_are_refused(built_course, tmp_path, capsys):
    root = ["--root", str(built_course.root), "--models", built_course.model_loader]
    assert main(["grade", "--day", "1", *root, str(tmp_path / "nobody.py")]) == 2
    assert "no such submission" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("my notes")
    assert main(["grade", "--day", "1", *root, str(tmp_path / "notes.txt")]) == 2
    assert "neither a .py module nor a .ipynb notebook" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["grade", "--day", "9", *root, str(tmp_path)])


def test_a_course_that_fails_its_manifest_grades_nobody(fresh_course, tmp_path, capsys):
    outputs = fresh_course.days[1].reference_paths[0]
    outputs.write_bytes(outputs.read_bytes() + b"x")
    (tmp_path / "ana.py").write_text("")
    code = main(["grade", "--day", "1", "--root", str(fresh_course.root), "--models", fresh_course.model_loader,
                 "--out", str(tmp_path / "grades"), str(tmp_path / "ana.py")])
    assert code == 2
    assert "course file checks/references/day1.pt does not match the manifest" in capsys.readouterr().err
    assert not (tmp_path / "grades" / SUMMARY_FILE).exists()


def test_an_empty_folder_fails_every_exercise_with_a_note_and_a_nonzero_exit(built_course, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "done.py").write_text((built_course.root / "solutions" / "day1_toy.py").read_text())
    root = ["--root", str(built_course.root), "--models", built_course.model_loader, "--device", "cpu"]
    out = tmp_path / "grades"
    assert main(["grade", "--day", "1", *root, "--out", str(out), str(tmp_path / "done.py")]) == 0
    assert main(["grade", "--day", "1", *root, "--out", str(out), str(tmp_path / "empty")]) == 1
    (row,) = csv.DictReader(open(out / SUMMARY_FILE))
    assert (row["failed"], row["total"]) == ("7", "7")
    assert row["note"] == f"{tmp_path / 'empty'} holds no file for day 1 (expected day1_toy.py or .ipynb)"


def test_a_submission_log_is_cut_at_the_limit(tmp_path):
    from checks.frontends.batch import LOG_LIMIT, _cap_log

    log = tmp_path / "flood.log"
    log.write_bytes(b"x" * (LOG_LIMIT + 5000))
    _cap_log(log)
    data = log.read_bytes()
    marker = f"\n[log cut to {LOG_LIMIT} bytes; it had {LOG_LIMIT + 5000}]\n".encode()
    assert len(data) == LOG_LIMIT and data == b"x" * (LOG_LIMIT - len(marker)) + marker
    _cap_log(log)  # a log within the limit is left as it is
    assert log.read_bytes() == data
