"""The pytest plugin and the grading behind it, on the fixture course (tests/fixtures/course, a tiny seeded model)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from checks import grade
from checks.course import Course, CourseError
from checks.pipeline.learner import definitions_only, load_module
from checks.store.manifest import write_manifest
from curriculum.tools.paths import COURSE_ROOT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _ini(pytester: pytest.Pytester, course: Course) -> None:
    pytester.makeini(f"[pytest]\ncourse_root = {course.root}\ncourse_models = {course.model_loader}\n")


def _run(pytester: pytest.Pytester, course: Course, *args: str) -> tuple[pytest.RunResult, dict]:
    _ini(pytester, course)
    report = pytester.path / "grades.json"
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, "--grade-json", str(report))
    return result, json.loads(report.read_text()) if report.exists() else {}


def _statuses(report: dict) -> dict[str, str]:
    return {entry["exercise"]: entry["status"] for entry in report["exercises"]}


# ---- the learner's file exercised by most tests ----------------------------------------------------------------------
MIXED_LEARNER = '''
import torch

MAIN = __name__ == "__main__"
open("exploration_ran_unguarded", "w").write("x")   # exploration without a guard: must not run
model = open("assignment_with_a_call_ran", "w")      # an assignment that calls something: must not run
if MAIN:
    open("exploration_ran_guarded", "w").write("x")


def attention_pattern(model, tokens):
    _, cache = model.run_with_cache(tokens)
    q, k = cache["q", 0], cache["k", 0]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    mask = torch.triu(torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool), diagonal=1)
    return scores.masked_fill(mask, float("-inf")).softmax(-1)


def mean_logit(model, tokens):
    result = model(tokens).mean().item()
    model.blocks[0].attn.W_Q.data.mul_(3.0)   # damages the shared model
    return result


def count_repeats(tokens):
    tokens[:, 0] = 0                           # mutates its input
    return int((tokens[:, 1:] == tokens[:, :-1]).sum())


def describe_shape(tokens):
    """Not written yet."""
    raise NotImplementedError("write describe_shape")


def head_summary(model, tokens):             # correct: passes only if the model was restored
    pattern = attention_pattern(model, tokens)
    entropy = -(pattern * pattern.clamp_min(1e-12).log()).sum(-1).mean((0, 2))
    return {"max": pattern.amax((0, 2, 3)), "entropy": entropy}


def _helper(values):
    return values[len(values)]


def distinct_tokens(tokens):
    return _helper(sorted(set(tokens.flatten().tolist())))


def slow_sum(tokens):
    total = 0
    while True:
        total += 1
'''


@pytest.fixture
def mixed_learner(pytester: pytest.Pytester) -> Path:
    return pytester.makepyfile(learner_day1=MIXED_LEARNER)


def test_mixed_learner_each_exercise_fails_or_passes_on_its_own(pytester, built_course, mixed_learner):
    result, report = _run(pytester, built_course, "--day", "1", "--learner", str(mixed_learner))
    assert _statuses(report) == {
        "attention_pattern": "passed", "mean_logit": "failed", "count_repeats": "failed",
        "describe_shape": "not started", "head_summary": "passed", "distinct_tokens": "failed", "slow_sum": "failed",
    }
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    messages = {entry["exercise"]: entry["message"] for entry in report["exercises"]}
    assert "changed the weights of model 'tiny'" in messages["mean_logit"]
    assert "blocks.0.attn.W_Q" in messages["mean_logit"]
    assert "modified its input 'tokens' in place" in messages["count_repeats"]
    assert "did not return within 1 s" in messages["slow_sum"]
    # the learner's traceback, with their own lines and without the grader's frames
    assert "IndexError" in messages["distinct_tokens"]
    assert "return values[len(values)]" in messages["distinct_tokens"]
    assert "checks/pipeline/grading.py" not in messages["distinct_tokens"]
    assert report["days"]["1"]["score"] == {"total": 7, "passed": 2, "failed": 4, "not started": 1}
    result.stdout.fnmatch_lines(["*course grades*", "day 1: 2/7 passed, 1 not started, 4 failed"])
    result.stdout.fnmatch_lines(["*1    describe_shape*not started*"])
    for marker in ("exploration_ran_unguarded", "assignment_with_a_call_ran", "exploration_ran_guarded"):
        assert not (pytester.path / marker).exists(), marker


def test_solutions_pass_every_day_with_table_and_json(pytester, built_course):
    result, report = _run(pytester, built_course, "--day", "all", "--solutions")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=9)
    assert set(_statuses(report).values()) == {"passed"}
    assert report["days"]["1"]["source"].endswith("solutions/day1_toy.py")
    assert report["device"] in ("cpu", "cuda:0", "cuda")
    assert all(entry["duration_s"] >= 0 for entry in report["exercises"])
    result.stdout.fnmatch_lines(["day 1: 7/7 passed", "day 2: 2/2 passed"])


def test_junit_times_each_exercise_as_the_table_does(pytester, built_course):
    import xml.etree.ElementTree as ElementTree

    junit = pytester.path / "junit.xml"
    result, report = _run(pytester, built_course, "--day", "1", "--solutions", f"--junitxml={junit}")
    table = {entry["exercise"]: entry["duration_s"] for entry in report["exercises"]}
    times = {case.get("name"): float(case.get("time")) for case in ElementTree.parse(junit).iter("testcase")}
    assert times.keys() == table.keys()
    assert all(abs(times[name] - table[name]) <= 6e-4 for name in table), (times, table)  # JUnit rounds to 1 ms
    assert all(time > 0 for time in times.values()), times


def test_fresh_curriculum_is_not_started_and_exits_zero(pytester, built_course):
    result, report = _run(pytester, built_course, "--day", "1,2", "--course-device", "cpu")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=9)
    assert set(_statuses(report).values()) == {"not started"}
    result.stdout.fnmatch_lines(["day 1: 0/7 passed, 7 not started", "day 2: 0/2 passed, 2 not started"])


def test_one_item_per_exercise_named_after_the_function(pytester, built_course):
    _ini(pytester, built_course)
    result = pytester.runpytest_inprocess("--day", "2", "--solutions", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["day2::final_logits", "day2::token_total"])
    selected = pytester.runpytest_inprocess("--day", "1", "--solutions", "-k", "count_repeats", "-q")
    selected.assert_outcomes(passed=1, deselected=6)


def test_without_day_the_plugin_changes_nothing(pytester, built_course):
    _ini(pytester, built_course)
    pytester.makepyfile(test_project="def test_own():\n    assert True\n")
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(passed=1)
    assert "course grades" not in result.stdout.str()
    graded = pytester.runpytest_inprocess("--day", "2", "--solutions")
    graded.assert_outcomes(passed=2)  # with --day, the project's own tests are not collected


@pytest.mark.parametrize("args, message", [
    (["--solutions"], "only make sense with --day"),
    (["--day", "9"], "there is no day 9"),
    (["--day", "one"], "--day expects a day number"),
    (["--day", "1", "--solutions", "--learner", "x.py"], "exclusive"),
    (["--day", "1,2", "--learner", "learner_day1.py"], "grades one day"),
    pytest.param(["--day", "1", "--course-device", "cuda"], "no CUDA device",
                 marks=pytest.mark.skipif("__import__('torch').cuda.is_available()")),
])
def test_bad_options_are_usage_errors(pytester, built_course, mixed_learner, args, message):
    _ini(pytester, built_course)
    result = pytester.runpytest_inprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_a_learner_file_of_another_kind_is_a_usage_error(pytester, built_course):
    notes = pytester.makefile(".txt", notes="my notes on day 1\n")
    _ini(pytester, built_course)
    result = pytester.runpytest_inprocess("--day", "1", "--learner", str(notes))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "is neither a .py module nor a .ipynb notebook" in result.stderr.str()


def test_grading_under_pytest_xdist_is_a_usage_error_not_an_empty_report(pytester, built_course):
    pytest.importorskip("xdist")
    result, report = _run(pytester, built_course, "--day", "1", "--solutions", "-p", "xdist", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and report == {}
    assert "--day does not run under pytest-xdist" in result.stderr.str()


def test_learner_notebook_is_graded_without_its_exploration_cells(pytester, built_course):
    import jupytext

    source = built_course.days[1].solution_path.read_text()
    source = source.replace("return scores.softmax(dim=-1)", "return scores.softmax(dim=-1).transpose(-1, -2)")
    source += '\n# %%\nraise RuntimeError("an unguarded exploration cell ran")\n'
    notebook = pytester.path / "my_day1.ipynb"
    jupytext.write(jupytext.reads(source, fmt="py:percent"), notebook)
    result, report = _run(pytester, built_course, "--day", "1", "--learner", str(notebook))
    statuses = _statuses(report)
    assert statuses.pop("attention_pattern") == "failed"
    assert set(statuses.values()) == {"passed"}
    entry = next(e for e in report["exercises"] if e["exercise"] == "attention_pattern")
    assert "dims 2 and 3 swapped (transposed)" in entry["message"]
    assert entry["hint"].startswith("What turns query-key")
    assert entry["hints"] == []
    # hints in tiers: the diagnosis and how to ask for the hints; tiers 1..N with --course-hints N
    assert "from the course" not in result.stdout.str()
    assert "Stuck? `pytest --day 1 --course-hints`" in result.stdout.str()
    hinted, _ = _run(pytester, built_course, "--day", "1", "--learner", str(notebook), "--course-hints")
    assert "Hint 1 of 3 from the course: What turns query-key" in hinted.stdout.str()
    assert "Hint 2 of 3" not in hinted.stdout.str()
    two, report = _run(pytester, built_course, "--day", "1", "--learner", str(notebook), "--course-hints", "2")
    assert "Hint 2 of 3 from the course: Scale, mask the future" in two.stdout.str()
    assert "Hint 3 of 3" not in two.stdout.str()
    entry = next(e for e in report["exercises"] if e["exercise"] == "attention_pattern")
    assert entry["hints"] == ["What turns query-key dot products into probabilities?",
                              "Scale, mask the future, normalise over keys."]


def test_learner_folder_grades_several_days(pytester, built_course):
    folder = pytester.mkdir("submission")
    for day in built_course.days.values():
        shutil.copy(day.solution_path, folder / day.solution_path.name)
    result, report = _run(pytester, built_course, "--day", "all", "--learner", str(folder))
    assert result.ret == pytest.ExitCode.OK
    assert set(_statuses(report).values()) == {"passed"}
    assert report["days"]["2"]["source"] == str(folder / "day2_toy.py")


def test_broken_learner_file_fails_its_day_with_the_reason(pytester, built_course):
    broken = pytester.makepyfile(broken="def attention_pattern(model, tokens)\n    return 1\n")
    result, report = _run(pytester, built_course, "--day", "1", "--learner", str(broken))
    assert set(_statuses(report).values()) == {"failed"}
    assert "syntax error on line 1" in report["exercises"][0]["message"]


def test_a_day_whose_file_cannot_be_graded_says_why_once_and_counts_every_exercise(pytester, built_course):
    """A notebook that cannot be read, and a day with no file at all: each day's reason is printed in one block,
    while every exercise still counts as failed, in pytest's summary as in the table and the JSON report."""
    folder = pytester.mkdir("submission")
    (folder / "day1_toy.ipynb").write_text("{not json\n")  # and no file for day 2
    result, report = _run(pytester, built_course, "--day", "all", "--learner", str(folder))
    output = result.stdout.str()
    exercises = {number: [check.name for check in day.checks] for number, day in built_course.days.items()}
    total = sum(map(len, exercises.values()))
    assert set(_statuses(report).values()) == {"failed"} and len(report["exercises"]) == total
    result.assert_outcomes(failed=total)
    for number, names in exercises.items():
        assert f"day {number}: 0/{len(names)} passed, {len(names)} failed" in output
    failures = output[output.index("= FAILURES ="):output.index("= course grades =")]
    blocks = [line for line in failures.splitlines() if line.startswith("_") and " day " in line]
    assert blocks == [line for line in blocks if f"day 1: {exercises[1][0]} " in line or
                      f"day 2: {exercises[2][0]} " in line] and len(blocks) == 2, blocks
    assert failures.count("Notebook does not appear to be JSON") == failures.count("holds no file for day 2") == 1
    assert "not graded" not in failures and "--course-hints" not in failures  # no exercise ran: no hint helps
    assert failures.count("fails until its file can be graded") == 2


def test_a_syntax_error_in_one_notebook_cell_fails_that_cells_exercises_only(pytester, built_course):
    """Reported at the cell, the line within it and the exercises it defines (not at a line of the notebook's
    JSON); the exercises of the intact cells are graded."""
    import jupytext

    source = built_course.days[1].solution_path.read_text()
    broken_line = "    scores = torch.einsum(\"bqhd,bkhd->bhqk\", q, k / q.shape[-1] ** 0.5"
    source = source.replace('    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5', broken_line)
    notebook = jupytext.reads(source, fmt="py:percent")
    number, cell = next((n, c) for n, c in enumerate(notebook.cells, start=1) if broken_line in c.source)
    line = cell.source.splitlines().index(broken_line) + 1
    path = pytester.path / "my_day1.ipynb"
    jupytext.write(notebook, path)
    result, report = _run(pytester, built_course, "--day", "1", "--learner", str(path))
    statuses = _statuses(report)
    assert statuses.pop("attention_pattern") == statuses.pop("mean_logit") == "failed"
    assert statuses.pop("head_summary") == "failed"  # it calls attention_pattern
    assert set(statuses.values()) == {"passed"}, statuses
    message = next(e["message"] for e in report["exercises"] if e["exercise"] == "mean_logit")
    assert message.startswith(f"{path}: cell {number} (it defines attention_pattern, mean_logit) has a syntax error "
                              f"on line {line} of the cell: "), message
    assert broken_line.strip() in message
    calling = next(e["message"] for e in report["exercises"] if e["exercise"] == "head_summary")
    assert f"`attention_pattern` is not defined because {path}: cell {number}" in calling, calling


def test_stale_and_missing_references_are_errors_with_the_rebuild_command(pytester, fresh_course):
    solution = fresh_course.days[1].solution_path
    solution.write_text(solution.read_text().replace("return int((tokens[:, 1:] == tokens[:, :-1]).sum())",
                                                     "return int((tokens[:, :-1] == tokens[:, 1:]).sum())"))
    fresh_course.days[2].reference_paths[0].unlink()
    write_manifest(fresh_course)  # a day whose references were never built (the manifest agrees)
    result, report = _run(pytester, fresh_course, "--day", "all", "--solutions")
    statuses = _statuses(report)
    assert statuses.pop("count_repeats") == "stale reference"
    assert statuses.pop("final_logits") == statuses.pop("token_total") == "stale reference"
    assert set(statuses.values()) == {"passed"}
    result.assert_outcomes(passed=6, errors=3)
    assert result.ret != pytest.ExitCode.OK
    command = f"python -m checks references --day 1 --root {fresh_course.root}"
    result.stdout.fnmatch_lines([f"*the solution of 'count_repeats' changed*{command}*",
                                 "*day 2 has no stored reference outputs*"])
    assert "not your mistake" in result.stdout.str()


def test_a_reference_changed_behind_the_manifest_is_a_course_error_naming_the_file(pytester, fresh_course):
    outputs = fresh_course.days[1].reference_paths[0]
    outputs.write_bytes(outputs.read_bytes() + b"tampered")
    result, report = _run(pytester, fresh_course, "--day", "1", "--solutions")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and report == {}
    assert "course file checks/references/day1.pt does not match the manifest" in result.stderr.str()


# ---- the programmatic entry points -----------------------------------------------------------------------------------
def test_grade_finds_the_exercise_by_name_and_explains(built_course):
    solutions = load_module(built_course.days[1].solution_path)
    assert grade(solutions.count_repeats, course=built_course, device="cpu").status == "passed"

    def count_repeats(tokens):
        return float((tokens[:, 1:] == tokens[:, :-1]).sum())

    outcome = grade(count_repeats, course=built_course, device="cpu")
    assert outcome.status == "failed" and "expected an integer" in outcome.message

    def anything(tokens):
        return (tokens[:, 1:] == tokens[:, :-1]).sum().item() + 1

    outcome = grade(anything, name="count_repeats", course=built_course, device="cpu")
    assert outcome.status == "failed" and "off by 1" in outcome.message
    with pytest.raises(CourseError, match="no exercise is named 'anything'"):
        grade(anything, course=built_course)


def test_hooks_left_attached_fail_that_exercise_only(built_course):
    solutions = load_module(built_course.days[1].solution_path)

    def mean_logit(model, tokens):
        model.blocks[0].attn.hook_pattern.add_hook(lambda pattern, hook: pattern * 0)
        return solutions.mean_logit(model, tokens)

    outcome = grade(mean_logit, course=built_course, device="cpu")
    assert outcome.status == "failed" and "left hooks attached" in outcome.message
    assert grade(solutions.head_summary, course=built_course, device="cpu").status == "passed"


def test_check_shows_the_verdict_once_and_the_hint_only_when_asked(built_course, capsys):
    from checks import check

    solutions = load_module(built_course.days[1].solution_path)

    def attention_pattern(model, tokens):
        return solutions.attention_pattern(model, tokens).transpose(-1, -2)

    assert check(attention_pattern, course=built_course, device="cpu") is None  # a notebook displays nothing more
    printed = capsys.readouterr().out
    assert printed.startswith("attention_pattern: FAILED (")
    assert "dims 2 and 3 swapped (transposed)" in printed
    nudge, approach, recipe = built_course.days[1].check("attention_pattern").hints
    assert nudge not in printed
    assert "check(attention_pattern, hint=1) adds the course's first hint (up to hint=3)" in printed
    check(attention_pattern, hint=True, course=built_course, device="cpu")
    printed = capsys.readouterr().out
    assert f"Hint 1 of 3 from the course: {nudge}" in printed and approach not in printed
    check(attention_pattern, hint=3, course=built_course, device="cpu")
    printed = capsys.readouterr().out
    assert all(f"Hint {i} of 3 from the course: {tier}" in printed
               for i, tier in enumerate((nudge, approach, recipe), 1))
    check(solutions.attention_pattern, course=built_course, device="cpu")
    assert capsys.readouterr().out.startswith("attention_pattern: PASSED")


def test_exercise_names_are_unique_across_a_course(tmp_path):
    specs = tmp_path / "checks" / "specs"
    specs.mkdir(parents=True)
    for number in (1, 2):
        (specs / f"day{number}.py").write_text(textwrap.dedent(f"""
            from checks.spec import Check
            DAY = {number}
            MODULE = "day{number}_x"
            CHECKS = [Check("same_name", {{"case": lambda env: {{}}}})]
        """))
    with pytest.raises(CourseError, match="'same_name' is used by day 1 and day 2"):
        Course(tmp_path).days


def test_the_course_itself_has_unique_names_and_valid_specs():
    days = Course.default().days  # raises CourseError on a malformed spec or a duplicate name
    names = [check.name for day in days.values() for check in day.checks]
    assert len(names) == len(set(names))


# ---- importing a learner's module ------------------------------------------------------------------------------------
def test_only_definitions_imports_and_plain_constants_are_executed():
    import ast

    source = textwrap.dedent('''
        """Docstring."""
        from __future__ import annotations
        import math
        try:
            import numpy
        except ImportError:
            numpy = None
        MAIN = __name__ == "__main__"
        SHAPE: str = "batch pos"
        DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model("induction-2l")
        print("hello")
        x += 1
        if MAIN:
            run()
        if TYPE_CHECKING:
            from x import Y
        for i in range(3):
            pass
        def f(): ...
        class C: ...
    ''')
    kept = [ast.unparse(node).splitlines()[0] for node in definitions_only(ast.parse(source)).body]
    assert kept == ["'Docstring.'", "from __future__ import annotations", "import math", "try:",
                    "MAIN = __name__ == '__main__'", "SHAPE: str = 'batch pos'",
                    "DEVICE = torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
                    "if TYPE_CHECKING:", "def f():", "class C:"]


def test_calling_an_unwritten_exercise_is_not_started_and_says_which(built_course):
    def attention_pattern(model, tokens):
        """Not written yet."""
        raise NotImplementedError("write attention_pattern")

    def head_summary(model, tokens):
        pattern = attention_pattern(model, tokens)
        return {"max": pattern.amax((0, 2, 3))}

    outcome = grade(head_summary, course=built_course, device="cpu")
    assert outcome.status == "not started"
    assert "calls attention_pattern, which still raises NotImplementedError" in outcome.message

    def mean_logit(model, tokens):
        return model.W_E.to_sparse().matrix_exp()  # torch raises NotImplementedError itself: a real failure

    outcome = grade(mean_logit, course=built_course, device="cpu")
    assert outcome.status == "failed" and "NotImplementedError" in outcome.message


def test_config_mode_and_grad_flags_are_restored_between_exercises(built_course):
    solutions = load_module(built_course.days[1].solution_path)

    def mean_logit(model, tokens):
        model.set_use_attn_result(True)
        model.train()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        return solutions.mean_logit(model, tokens)

    def head_summary(model, tokens):
        assert not model.cfg.use_attn_result and not model.training
        assert all(parameter.requires_grad for parameter in model.parameters())
        return solutions.head_summary(model, tokens)

    left_on = grade(mean_logit, course=built_course, device="cpu")  # a config flag left changed fails (issue 8)
    assert left_on.status == "failed" and "use_attn_result: False -> True" in left_on.message
    assert grade(head_summary, course=built_course, device="cpu").status == "passed"


def test_a_model_moved_to_another_dtype_is_replaced_by_a_pristine_one(built_course):
    solutions = load_module(built_course.days[1].solution_path)

    def mean_logit(model, tokens):
        model.to(torch.float64)
        return solutions.mean_logit(model, tokens)

    def head_summary(model, tokens):
        assert model.W_Q.dtype == torch.float32
        return solutions.head_summary(model, tokens)

    outcome = grade(mean_logit, course=built_course, device="cpu")
    assert outcome.status == "failed" and "changed the weights" in outcome.message
    assert grade(head_summary, course=built_course, device="cpu").status == "passed"


def test_a_worker_parent_that_died_between_exercises_is_replaced(built_course):
    import os
    import signal

    from checks.frontends.session import GradingSession

    day = built_course.days[1]
    session = GradingSession(built_course, [day], device="cpu", solutions=True)
    try:
        assert session.grade_exercise(day, "attention_pattern").status == "passed"
        os.kill(session.supervisor._zygote.pid, signal.SIGKILL)  # e.g. the kernel's OOM killer
        assert session.grade_exercise(day, "mean_logit").status == "passed"  # graded by a fresh worker, not blamed
    finally:
        session.close()


def test_the_grading_process_never_imports_transformer_lens():
    """Only the workers import transformer_lens (5 s): the supervisor, which judges plain data, starts them at once
    and its own start-up and end stay short (see `checks.pipeline.env.transformer_lens_type`)."""
    import subprocess
    import sys

    code = textwrap.dedent("""
        import sys
        from checks.course import Course
        from checks.frontends.session import GradingSession, parse_days
        course = Course.default()
        session = GradingSession(course, parse_days("all", course), device="cpu", solutions=True)
        try:
            for day in session.days:
                outcome = session.grade_exercise(day, day.checks[0].name)
                assert outcome.status == "passed", outcome.message
        finally:
            session.close()
        print("transformer_lens" in sys.modules)
    """)
    root = COURSE_ROOT
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=600)
    assert result.stdout.strip() == "False", result.stderr[-3000:]


def test_a_stub_defined_after_a_written_function_leaves_it_not_started(tmp_path):
    """The supervisor lets a worker say "not started" only for a stub it sees in the file; as when the file runs, a
    later `def` of the same name is the one that counts."""
    from checks.pipeline.learner import written_exercises

    stub = 'def f(x):\n    """Doc."""\n    raise NotImplementedError("write f")\n'
    written = "def f(x):\n    return x\n"
    path = tmp_path / "day.py"
    path.write_text(written + "\n" + stub)
    assert written_exercises(path, ["f"]) == set()
    path.write_text(stub + "\n" + written)
    assert written_exercises(path, ["f"]) == {"f"}


@pytest.mark.parametrize("where", ["notebook", "cell"])
def test_jupytext_metadata_never_makes_a_markdown_cell_run(tmp_path, where):
    """jupytext writes a markdown cell as a string instead of comments when the notebook's (or the cell's) metadata
    says `cell_markers`/`cell_marker` '\"\"\"'; markdown that closes the string would then run as code."""
    import nbformat

    notebook = nbformat.v4.new_notebook()
    markdown = nbformat.v4.new_markdown_cell('"""\ndef count_repeats(tokens):\n    return 0\n"""\nSome prose.')
    if where == "notebook":
        notebook.metadata["jupytext"] = {"cell_markers": '"""'}
    else:
        markdown.metadata["cell_marker"] = '"""'
    notebook.cells = [markdown, nbformat.v4.new_code_cell("def mean_logit(model, tokens):\n    return 0.0")]
    path = tmp_path / "my_day1.ipynb"
    nbformat.write(notebook, path)
    module = load_module(path)
    assert callable(module.mean_logit)
    assert "count_repeats" not in vars(module)
