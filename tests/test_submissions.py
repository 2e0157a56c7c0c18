"""Grading many submissions at once (`python -m checks grade`), on the fixture course."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from checks.__main__ import main
from checks.submissions import SUMMARY_FILE, submission_names

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_submission_names_are_distinct_and_readable(tmp_path):
    for folder in ("ana", "bob"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "day1_toy.ipynb").write_text("{}")
    (tmp_path / "cleo.py").write_text("")
    paths = [tmp_path / "ana" / "day1_toy.ipynb", tmp_path / "bob" / "day1_toy.ipynb", tmp_path / "cleo.py"]
    assert submission_names(paths) == ["ana__day1_toy", "bob__day1_toy", "cleo"]
    assert submission_names([tmp_path / "cleo.py"]) == ["cleo"]
    with pytest.raises(ValueError, match="twice"):
        submission_names([tmp_path / "cleo.py", tmp_path / "cleo.py"])


def test_each_submission_is_graded_in_its_own_process_with_a_summary(built_course, tmp_path, capsys):
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    done = submissions / "done.py"
    shutil.copy(built_course.root / "solutions" / "day1_toy.py", done)
    fresh = submissions / "fresh.py"
    shutil.copy(built_course.root / "curriculum" / "day1_toy.py", fresh)
    crashes = submissions / "crashes.py"  # kills the process that grades it
    crashes.write_text("import os\n\ndef attention_pattern(model, tokens):\n    os._exit(3)\n")
    out = tmp_path / "grades"

    code = main(["grade", "--day", "1", "--root", str(built_course.root), "--models", built_course.model_loader,
                 "--out", str(out), "--device", "cpu", str(done), str(fresh), str(crashes)])

    assert code == 0
    rows = {row["submission"]: row for row in csv.DictReader(open(out / SUMMARY_FILE))}
    total = str(len(built_course.day(1).checks))
    assert rows["done"]["passed"] == total and rows["done"]["total"] == total
    assert rows["fresh"]["not_started"] == total and rows["fresh"]["passed"] == "0"
    assert rows["crashes"]["day"] == "" and "without a report" in rows["crashes"]["note"]
    report = json.loads((out / "done.json").read_text())
    assert {entry["status"] for entry in report["exercises"]} == {"passed"}
    assert (out / "crashes.log").is_file()
    printed = capsys.readouterr().out
    assert f"{total}/{total}" in printed and "summary.csv" in printed


def test_missing_submissions_and_unknown_days_are_refused(built_course, tmp_path, capsys):
    root = ["--root", str(built_course.root), "--models", built_course.model_loader]
    assert main(["grade", "--day", "1", *root, str(tmp_path / "nobody.py")]) == 2
    assert "no such submission" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["grade", "--day", "9", *root, str(tmp_path)])
