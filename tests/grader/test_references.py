"""Reference outputs: fingerprints, staleness, the rebuild command, and the stored files of the course itself."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import torch

from checks.course import Course
from checks.pipeline.grading import Grader
from checks.pipeline.learner import load_module
from checks.pipeline.inputs import inputs_hash
from checks.store.references import ReferenceStore, rebuild_command, solution_hash

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_inputs_hash_ignores_float_bits_but_not_integers_or_models():
    tokens = torch.arange(6).reshape(2, 3)
    floats = torch.linspace(0, 1, 5)
    base = inputs_hash({"tokens": tokens, "x": floats}, {"m": "abc"})
    assert inputs_hash({"tokens": tokens.clone(), "x": floats + 1e-6}, {"m": "abc"}) == base  # e.g. GPU vs CPU bits
    assert inputs_hash({"tokens": tokens + 1, "x": floats}, {"m": "abc"}) != base
    assert inputs_hash({"tokens": tokens, "x": floats[:4]}, {"m": "abc"}) != base
    assert inputs_hash({"tokens": tokens, "x": floats.double()}, {"m": "abc"}) != base
    assert inputs_hash({"tokens": tokens, "x": floats}, {"m": "abd"}) != base
    assert inputs_hash({"tokens": tokens, "y": floats}, {"m": "abc"}) != base
    seeded = {"generator": torch.Generator().manual_seed(1)}
    assert inputs_hash(seeded, {}) == inputs_hash({"generator": torch.Generator().manual_seed(1)}, {})
    assert inputs_hash(seeded, {}) != inputs_hash({"generator": torch.Generator().manual_seed(2)}, {})


def test_solution_hash_follows_the_function_and_what_it_uses(tmp_path):
    path = tmp_path / "day9_x.py"

    def hashes(source: str) -> tuple[str, str]:
        path.write_text(textwrap.dedent(source))
        return solution_hash(path, "exercise"), solution_hash(path, "other")

    base = hashes('''
        # %% [markdown]
        # Prose.
        SCALE = 2
        def _helper(x):
            return x * SCALE
        def exercise(x):
            return _helper(x)
        def other(x):
            return x
    ''')
    prose = hashes('''
        # %% [markdown]
        # Different prose, same code.
        SCALE = 2
        def _helper(x):
            return x * SCALE
        def exercise(x):
            return _helper(x)
        def other(x):
            return x
    ''')
    constant = hashes('''
        SCALE = 3
        def _helper(x):
            return x * SCALE
        def exercise(x):
            return _helper(x)
        def other(x):
            return x
    ''')
    assert prose == base
    assert constant[0] != base[0] and constant[1] == base[1]


def test_rebuild_command_names_the_course_and_device(built_course):
    day = built_course.days[1]
    assert rebuild_command(day) == (f"python -m checks references --day 1 --root {built_course.root} "
                                    f"--models {built_course.model_loader}")
    assert rebuild_command(day, "cuda").startswith("python -m checks references --day 1 --device cuda --root ")


def test_fingerprint_records_device_versions_and_model_hashes(built_course):
    record = json.loads(built_course.days[1].reference_paths[1].read_text())
    assert record["device"] == "cpu"
    assert record["versions"]["torch"] == torch.__version__
    assert set(record["models"]) == {"tiny"}
    assert set(record["exercises"]) == {check.name for check in built_course.days[1].checks}


def test_references_built_on_another_device_stay_fresh(fresh_course):
    """Device and library versions are recorded, not compared: a GPU-built reference grades CPU runs."""
    _, fingerprint_path = fresh_course.days[2].reference_paths
    record = json.loads(fingerprint_path.read_text())
    record.update(device="cuda:0", device_name="NVIDIA H200", versions={"torch": "2.13.0+cu128"})
    fingerprint_path.write_text(json.dumps(record))
    solutions = load_module(fresh_course.days[2].solution_path)
    grader = Grader(fresh_course, "cpu")
    for check in fresh_course.days[2].checks:
        assert grader.grade_function(getattr(solutions, check.name), fresh_course.days[2], check).status == "passed"


def test_changed_inputs_make_a_reference_stale(fresh_course):
    spec = fresh_course.root / "checks" / "specs" / "day2.py"
    spec.write_text(spec.read_text().replace("torch.arange(10)", "torch.arange(11)"))
    for name, module in list(sys.modules.items()):  # specs are imported once per process: forget this one
        if getattr(module, "__file__", None) == str(spec):
            del sys.modules[name]
    course = Course(fresh_course.root, fresh_course.model_loader)
    day = course.days[2]
    solutions = load_module(day.solution_path)
    outcome = Grader(course, "cpu").grade_function(solutions.token_total, day, day.check("token_total"))
    assert outcome.status == "stale reference"
    assert "the inputs of 'token_total' (case 'arange 10') changed" in outcome.message


def test_changed_model_weights_make_references_stale(fresh_course):
    changed = Course(fresh_course.root, f"{fresh_course.root / 'models.py'}:load_model")
    models = fresh_course.root / "models.py"
    models.write_text(models.read_text().replace("* 0.5", "* 0.4"))
    day = changed.days[2]
    solutions = load_module(day.solution_path)
    outcome = Grader(changed, "cpu").grade_function(solutions.final_logits, day, day.check("final_logits"))
    assert outcome.status == "stale reference"


def test_a_misbehaving_solution_cannot_become_a_reference(fresh_course):
    solution = fresh_course.days[2].solution_path
    solution.write_text(solution.read_text().replace(
        "    return model(tokens)[:, -1]",
        "    model.blocks[0].attn.W_K.data.zero_()\n    return model(tokens)[:, -1]"))
    from checks.store.references import build_references

    with pytest.raises(RuntimeError, match="changed the weights"):
        build_references(fresh_course, 2)


def test_references_command_line(fresh_course, capsys):
    from checks.__main__ import main

    fresh_course.days[2].reference_paths[0].unlink()
    assert main(["references", "--day", "2", "--root", str(fresh_course.root), "--models",
                 fresh_course.model_loader]) == 0
    printed = capsys.readouterr().out
    assert "day 2: wrote" in printed and "device cpu" in printed
    assert fresh_course.days[2].reference_paths[0].is_file()
    outputs = torch.load(fresh_course.days[2].reference_paths[0], weights_only=True)
    assert set(outputs) == {"final_logits", "token_total"}
    assert outputs["final_logits"]["seed 3"].device.type == "cpu"


def test_float_inputs_tolerate_device_noise_but_not_other_data():
    from checks.pipeline.inputs import float_summary, floats_match

    generator = torch.Generator().manual_seed(0)
    activations = torch.randn(4, 16, 8, generator=generator)
    scores = torch.randn(8, 8, generator=generator).masked_fill(torch.ones(8, 8, dtype=torch.bool).triu(1), -torch.inf)
    stored = float_summary({"cache": {"a": activations}, "scores": scores})
    noisy = {"cache": {"a": activations * (1 + 1e-6)}, "scores": scores + 1e-7}
    assert floats_match(float_summary(noisy), stored)
    other_data = {"cache": {"a": activations.roll(1, 0)}, "scores": scores}
    assert not floats_match(float_summary(other_data), stored)
    assert not floats_match(float_summary({"cache": {"a": activations}, "scores": scores.nan_to_num(-1e4)}), stored)
    assert not floats_match(float_summary({"cache": {"a": activations}}), stored)


def test_every_input_case_is_graded_and_a_failure_names_its_case(built_course):
    """A value right on one case only (here: hard-coded from the first case) fails, naming the case it missed."""
    day = built_course.days[1]
    check = day.check("count_repeats")
    grader = Grader(built_course, "cpu")
    solutions = load_module(day.solution_path)
    first_case = next(iter(check.cases))
    expected_first = solutions.count_repeats(**check.cases[first_case](grader.env))

    def hard_coded(tokens):
        return expected_first

    assert grader.grade_function(solutions.count_repeats, day, check).status == "passed"
    outcome = grader.grade_function(hard_coded, day, check)
    assert outcome.status == "failed"
    assert outcome.case == "2 x 11 tokens below 5"
    assert outcome.message.startswith("On input case '2 x 11 tokens below 5':")
    record = json.loads(day.reference_paths[1].read_text())
    assert set(record["exercises"]["count_repeats"]["cases"]) == set(check.cases)


def test_rebuilding_an_unchanged_course_changes_no_file_and_a_changed_solution_is_rebuilt(fresh_course):
    """`python -m checks references` is reproducible: references that differ from today's outputs by float rounding
    only (built on another CPU or thread count) are kept byte for byte, with their record and the manifest; a
    changed solution's output is written."""
    import time

    from checks.__main__ import main
    from checks.store.manifest import manifest_path, write_manifest

    day = fresh_course.days[1]
    outputs_path, fingerprint_path = day.reference_paths
    outputs = torch.load(outputs_path, weights_only=True)
    case = next(iter(outputs["attention_pattern"]))
    pattern = outputs["attention_pattern"][case]
    outputs["attention_pattern"][case] = torch.nextafter(pattern, torch.full_like(pattern, 2.0))  # one ulp off
    torch.save(outputs, outputs_path)
    write_manifest(fresh_course)
    files = [outputs_path, fingerprint_path, manifest_path(fresh_course)]
    before = {path: path.read_bytes() for path in files}
    command = ["references", "--day", "1", "--root", str(fresh_course.root), "--models", fresh_course.model_loader]
    time.sleep(1.1)  # a rebuild in another second than the build
    assert main(command) == 0
    assert {path: path.read_bytes() for path in files} == before

    solution = day.solution_path
    solution.write_text(solution.read_text().replace("return model(tokens).mean().item()",
                                                     "return 2 * model(tokens).mean().item()"))
    assert main(command) == 0
    rebuilt = torch.load(outputs_path, weights_only=True)
    assert all(rebuilt["mean_logit"][name] == 2 * outputs["mean_logit"][name] for name in outputs["mean_logit"])
    assert torch.equal(rebuilt["attention_pattern"][case], outputs["attention_pattern"][case])  # kept as stored
    assert manifest_path(fresh_course).read_bytes() != before[manifest_path(fresh_course)]


def test_a_mistakes_output_is_stored_with_the_references_named_by_the_judge_and_fingerprinted(fresh_course):
    """What a declared mistake returns is computed by the course's oracle (beside the solutions) when the
    references are built and stored with them; the judge names the mistake when a wrong output matches that stored
    output, and a changed oracle makes the reference stale until it is rebuilt."""
    from checks.__main__ import main

    day = fresh_course.days[2]
    check = day.check("final_logits")
    message = check.mistakes[0].message
    assert set(ReferenceStore(day).mistakes("final_logits", "seed 3")) == {"logits_at_first_position"}

    def first_position(model, tokens):
        return model(tokens)[:, 0]

    def doubled(model, tokens):
        return 2 * model(tokens)[:, -1]

    outcome = Grader(fresh_course, "cpu").grade_function(first_position, day, check)
    assert outcome.status == "failed" and message in outcome.message, outcome.message
    outcome = Grader(fresh_course, "cpu").grade_function(doubled, day, check)
    assert outcome.status == "failed" and message not in outcome.message, outcome.message

    day.oracle_path.write_text(day.oracle_path.read_text().replace("[:, 0]", "[:, 1]"))
    solution = load_module(day.solution_path).final_logits
    outcome = Grader(fresh_course, "cpu").grade_function(solution, day, check)
    assert outcome.status == "stale reference", outcome.message
    assert "the mistakes or reference that day2.py computes for 'final_logits' changed" in outcome.message
    command = ["references", "--day", "2", "--root", str(fresh_course.root), "--models", fresh_course.model_loader]
    assert main(command) == 0
    assert Grader(fresh_course, "cpu").grade_function(solution, day, check).status == "passed"

    def second_position(model, tokens):
        return model(tokens)[:, 1]

    outcome = Grader(fresh_course, "cpu").grade_function(second_position, day, check)
    assert outcome.status == "failed" and message in outcome.message, outcome.message
