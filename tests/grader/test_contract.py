"""The docstring's contract and what a day is: exact types, documented exceptions as input cases, config flags and
caches left behind, derived cache entries that are not edits, and one check per exercise, no more, no less."""

from __future__ import annotations

import shutil
import textwrap

import pytest
import torch

from checks.pipeline.audits import cache_complaint, config_changes, watch_caching
from checks.course import Course, CourseError
from checks.pipeline.env import Env
from checks.judging.judge import Raised, Rejection, catching, first_difference, judge, snapshot, type_mismatch
from checks.pipeline.outcome import Status
from checks.spec import Check, Raises, expected_exception
from support import FIXTURE_COURSE, FIXTURE_MODELS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _tiny():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fixture_models", FIXTURE_COURSE / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_model("tiny")


# ---- exact types -----------------------------------------------------------------------------------------------------
def test_type_mismatch_names_dtype_tensor_and_python_number():
    assert type_mismatch(torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64)) is None
    assert "dtype torch.int32" in type_mismatch(torch.zeros(2, dtype=torch.int32), torch.ones(2, dtype=torch.int64))
    assert "promises torch.float64" in type_mismatch(torch.tensor(1.0), torch.tensor(1.0, dtype=torch.float64))
    assert "promises a tensor" in type_mismatch(0.5, torch.tensor(0.5))
    assert ".item()" in type_mismatch(torch.tensor(0.5), 0.5)
    assert "Python int" in type_mismatch({"n": torch.tensor(3)}, {"n": 3})
    assert "output[1]" in type_mismatch((torch.ones(1), torch.ones(1)), (torch.ones(1), torch.ones(1).double()))


def test_judge_holds_exact_types_only_where_the_check_asks():
    loose = Check("loss", {"a": lambda env: {}, "b": lambda env: {}})
    strict = Check("loss", {"a": lambda env: {}, "b": lambda env: {}}, exact_types=True, hint="use float64")
    expected = torch.tensor(0.25, dtype=torch.float64)
    judge(torch.tensor(0.25), expected, loose, {})
    with pytest.raises(Rejection) as rejected:
        judge(torch.tensor(0.25), expected, strict, {})
    assert "the values are right, but" in rejected.value.message and rejected.value.hint == "use float64"


# ---- documented exceptions -------------------------------------------------------------------------------------------
def _raises_valueerror(x):
    if x < 0:
        raise ValueError("negative")
    return x


def test_a_raising_case_expects_its_exception_and_stores_it_by_name():
    case = Raises(ValueError, lambda env: {"x": -1})
    assert expected_exception(case) is ValueError and expected_exception(lambda env: {}) is None
    assert catching(_raises_valueerror, lambda env: {}) is _raises_valueerror  # ordinary cases call it as it is
    raised = catching(_raises_valueerror, case)(x=-1)
    assert isinstance(raised, Raised) and raised.names[0] == "ValueError" and raised.stored() == {"raised": "ValueError"}
    check = Check("f", {"ok": lambda env: {"x": 1}, "negative": case})
    judge(raised, raised.stored(), check, {})
    with pytest.raises(Rejection, match="says it raises ValueError, but it returned a int"):
        judge(-1, raised.stored(), check, {})
    with pytest.raises(Rejection, match="says it raises ValueError, but it raised IndexError"):
        judge(catching(lambda x: [][x], case)(x=-1), raised.stored(), check, {})


def test_a_stub_on_a_raising_case_is_still_not_started():
    def stub(x):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        catching(stub, Raises(ValueError, lambda env: {"x": -1}))(x=-1)


# ---- what the learner leaves behind ----------------------------------------------------------------------------------
def test_derived_cache_entries_are_not_an_edit_but_changed_entries_are():
    model = _tiny()
    _, cache = model.run_with_cache(torch.arange(6)[None])
    saved = snapshot({"cache": cache})
    cache.stack_head_results(layer=-1)  # adds blocks.0.attn.hook_result to the cache
    cache.accumulated_resid()
    assert len(cache.cache_dict) > len(saved["cache"])
    assert first_difference({"cache": cache}, saved, "") is None
    cache.cache_dict["blocks.0.attn.hook_z"].mul_(2)
    assert first_difference({"cache": cache}, saved, "") == "cache['blocks.0.attn.hook_z']"


def test_a_config_flag_left_changed_is_reported_and_restored():
    assert config_changes("m", {"use_attn_result": False}, {"use_attn_result": False}) == []
    assert "use_attn_result: False -> True" in config_changes("m", {"use_attn_result": True},
                                                                {"use_attn_result": False})[0]
    env = Env("cpu", lambda name: _tiny())
    model = env.model("tiny")
    env.prepare()
    model.set_use_attn_result(True)
    problems = env.audit()
    assert any("left the config of model 'tiny' changed (use_attn_result: False -> True)" in p for p in problems)
    assert model.cfg.use_attn_result is False and env.audit() == []


def test_a_cache_is_noticed_however_it_is_built():
    tokens = torch.arange(8).reshape(2, 4)
    model = _tiny()

    def scores_only(pattern, hook):
        totals.append(pattern.mean(dim=(0, 2, 3)))

    def keep_patterns(pattern, hook):
        kept.append(pattern.clone())

    totals, kept = [], []
    watched = watch_caching(model)
    watched.run_with_hooks(tokens, return_type=None, fwd_hooks=[("blocks.0.attn.hook_pattern", scores_only)])
    assert cache_complaint(watched, "f", "") is None
    watched = watch_caching(model)
    watched.run_with_hooks(tokens, return_type=None, fwd_hooks=[("blocks.0.attn.hook_pattern", keep_patterns)])
    assert "kept whole activations (shape (2, 2, 4, 4), like blocks.0.attn.hook_attn_scores or blocks.0.attn.hook_pattern)" in (
        cache_complaint(watched, "f", ""))
    watched = watch_caching(model)
    watched.run_with_cache(tokens)
    assert "it called model.run_with_cache" in cache_complaint(watched, "f", "")


# ---- one place says what a day is ------------------------------------------------------------------------------------
def _course_copy(tmp_path) -> Course:
    root = tmp_path / "course"
    shutil.copytree(FIXTURE_COURSE, root, ignore=shutil.ignore_patterns("__pycache__"))
    return Course(root, FIXTURE_MODELS)


def test_the_module_name_comes_from_the_solution_file(tmp_path):
    course = _course_copy(tmp_path)
    spec = course.root / "checks" / "specs" / "day2.py"
    spec.write_text(spec.read_text().replace('MODULE = "day2_toy"\n', ""))
    assert course.days[2].module == "day2_toy"
    assert course.days[1].module == "day1_toy"  # MODULE given and agreeing is accepted


def test_a_module_that_disagrees_with_the_file_is_an_error(tmp_path):
    course = _course_copy(tmp_path)
    spec = course.root / "checks" / "specs" / "day2.py"
    spec.write_text(spec.read_text().replace('MODULE = "day2_toy"', 'MODULE = "day2_other"'))
    with pytest.raises(CourseError, match="MODULE = 'day2_other', but the day's file is day2_toy.py"):
        course.days


def test_an_exercise_without_a_check_is_an_error(tmp_path):
    course = _course_copy(tmp_path)
    solution = course.root / "solutions" / "day2_toy.py"
    solution.write_text(solution.read_text() + textwrap.dedent('''
        # %% tags=["exercise"]
        def forgotten(x: int) -> int:
            """Never graded unless it has a check."""
            return x
    '''))
    with pytest.raises(CourseError, match="exercises without a check \\(never graded\\): forgotten"):
        course.days


def test_a_check_without_an_exercise_is_an_error(tmp_path):
    course = _course_copy(tmp_path)
    solution = course.root / "solutions" / "day2_toy.py"
    solution.write_text(solution.read_text().replace("def token_total(", "def renamed_total("))
    with pytest.raises(CourseError, match="checks without an exercise in day2_toy.py: token_total"):
        course.days


def test_the_course_itself_declares_every_exercise_once():
    course = Course.default()
    for number in (1, 4):
        day = course.days[number]
        assert day.solution_path.is_file() and day.module == day.solution_path.stem
        assert all(len(check.cases) >= 2 for check in day.checks), "every exercise is graded on several cases"


def test_a_progress_bars_monitor_thread_is_not_a_leftover_thread():
    """A correct solution may call a library that shows a tqdm bar (transformer_lens.patching does): tqdm's monitor
    thread is not the learner's; any other thread left running is."""
    import threading

    from tqdm import tqdm

    from checks.pipeline.env import global_state, global_state_changes

    before = global_state()
    with tqdm(total=1, mininterval=0, disable=False) as bar:
        bar.update(1)
    assert global_state_changes(before, global_state()) is None
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, daemon=True)
    worker.start()
    try:
        assert "1 Python thread(s) started" in global_state_changes(before, global_state())
    finally:
        stop.set()
        worker.join()
