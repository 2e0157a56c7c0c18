"""The comparison engine: what passes, what fails, and what each failure message says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from checks.judging.compare import compare


@pytest.fixture
def reference() -> torch.Tensor:
    return torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(0))


def _fails_with(actual, expected, *fragments: str, **options) -> str:
    verdict = compare(actual, expected, **options)
    assert not verdict.passed
    for fragment in fragments:
        assert fragment in verdict.message, f"{fragment!r} not in {verdict.message!r}"
    return verdict.message


# ---- what passes -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("actual, expected", [
    (None, None),
    (True, True),
    (3, 3),
    (0.1 + 0.2, 0.3),
    (torch.tensor(2.0), 2.0),
    (2.0, torch.tensor(2.0)),
    (np.float64(1.5), 1.5),
    ("abc", "abc"),
    ([1, 2], (1, 2)),
    ({"a": [1.0, torch.ones(2)]}, {"a": (1.0, torch.ones(2))}),
    (torch.arange(3, dtype=torch.int32), torch.arange(3)),
    (torch.ones(3, dtype=torch.float64), torch.ones(3)),
    (torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0])),
    (torch.tensor([float("inf")]), torch.tensor([float("inf")])),
])
def test_equal_values_pass(actual, expected):
    assert compare(actual, expected).passed


def test_tolerance_is_atol_plus_rtol_times_expected():
    expected = torch.tensor([100.0])
    assert compare(expected + 0.1, expected, atol=0.0, rtol=1e-3).passed
    assert not compare(expected + 0.2, expected, atol=0.0, rtol=1e-3).passed
    assert compare(expected + 0.2, expected, atol=0.1, rtol=1e-3).passed


def test_dataclasses_compare_field_by_field():
    @dataclasses.dataclass
    class Pair:
        left: torch.Tensor
        right: int

    assert compare(Pair(torch.ones(2), 1), Pair(torch.ones(2), 1)).passed
    _fails_with(Pair(torch.ones(2), 2), Pair(torch.ones(2), 1), "output.right: expected 1, got 2")


def test_unordered_sequences_and_vectors():
    assert compare([3, 1, 2], [1, 2, 3], unordered=True).passed
    assert compare(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 3.0]), unordered=True).passed
    _fails_with([3, 1, 5], [1, 2, 3], "missing [2]", "unexpected [5]", "order does not matter", unordered=True)
    _fails_with([3, 1, 2], [1, 2, 3], "output[0]: expected 1, got 3")


# ---- types, shapes, dtypes -------------------------------------------------------------------------------------------
def test_wrong_types_say_what_was_expected():
    _fails_with(None, 1.0, "expected a number (1.0), got NoneType")
    _fails_with(1, None, "expected None, got int")
    _fails_with([1.0], torch.ones(1), "expected a tensor of shape (1,), got list")
    _fails_with(np.ones(1), torch.ones(1), "torch.from_numpy")
    _fails_with(torch.ones(2), [1.0, 1.0], "got a tensor of shape (2,)", ".tolist()")
    _fails_with(1, True, "expected a bool")


def test_int_and_float_are_not_interchangeable():
    _fails_with(3.0, 3, "expected an integer (3), got the float 3.0")
    _fails_with(3, 3.0, "expected a float (3.0), got the int 3")
    _fails_with(torch.ones(2, dtype=torch.long), torch.ones(2), "wrong dtype", "expected a floating-point tensor",
                ".float()")
    _fails_with(torch.ones(2), torch.ones(2, dtype=torch.long), "expected an integer tensor", ".long()")


def test_wrong_shape_with_hints(reference):
    _fails_with(reference[:, :4], reference, "wrong shape: expected (2, 5, 5), got (2, 4, 5)", "dim 1 is off by one")
    _fails_with(reference[None], reference, "dimensions of size 1")
    _fails_with(reference.sum(0), reference, "fewer dimensions", "reduce")
    _fails_with(reference.permute(1, 2, 0), reference, "permuted as (1, 2, 0)")


def test_container_mismatches_name_the_path(reference):
    expected = (1, {"scores": reference, "name": "head"})
    actual = (1, {"scores": reference * 2, "name": "head"})
    _fails_with(actual, expected, "output[1]['scores']:")
    _fails_with((1, {"scores": reference}), expected, "missing keys ['name']")
    _fails_with([1], expected, "expected 2 items, got 1")


# ---- values and their hints ------------------------------------------------------------------------------------------
def test_value_mismatch_reports_errors_index_and_fraction(reference):
    actual = reference.clone()
    actual[1, 2, 3] += 1.0
    _fails_with(actual, reference, "1 of 50 elements (2%) differ", "Max abs error 1.0 at index [1, 2, 3]",
                "max rel error")


def test_no_relative_error_where_the_expected_value_is_about_zero():
    expected = torch.tensor([[0.5, 1e-15], [0.25, 2.0]])
    actual = expected.clone()
    actual[0, 1] = 0.3  # wrong only where the reference is zero up to rounding
    message = compare(actual, expected, atol=1e-6, rtol=1e-4).message
    assert "the expected value there is ~0" in message and "Max abs error 0.3" in message
    assert "rel error" not in message  # no element with a sizable expected value is wrong: 3e14 would mislead
    actual[1, 1] = 3.0
    message = compare(actual, expected, atol=1e-6, rtol=1e-4).message
    assert "max rel error 0.5 (over the elements whose expected value exceeds atol=1e-06" in message


def test_nan_and_inf_are_reported(reference):
    actual = reference.clone()
    actual[0, 1, 1] = float("nan")
    actual[1, 0, 0] = float("inf")
    _fails_with(actual, reference, "NaN at 1 position(s)", "first at index [0, 1, 1]", "inf at 1 position(s)")
    _fails_with(float("nan"), 1.0, "got NaN")


@pytest.mark.parametrize("transform, fragment", [
    (lambda x: x.transpose(1, 2), "dims 1 and 2 swapped (transposed)"),
    (lambda x: -x, "sign flipped"),
    (lambda x: x * 0.3, "constant factor 0.3"),
    (lambda x: x * 8 ** 0.5, "= sqrt(8)"),
    (lambda x: x / 8 ** 0.5, "= 1/sqrt(8)"),
    (lambda x: x + 0.7, "plus a constant 0.7"),
    (lambda x: torch.roll(x, 1, dims=2), "shifted by one position along dim 2"),
    (lambda x: torch.roll(x, -1, dims=1), "shifted by one position along dim 1"),
])
def test_hints_name_the_transformation(reference, transform, fragment):
    _fails_with(transform(reference), reference, fragment)


def test_no_hint_for_unrelated_values(reference):
    other = torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(1))
    assert "Hint" not in _fails_with(other, reference)


def test_integer_tensor_hints():
    expected = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    _fails_with(expected + 1, expected, "every element is off by 1")
    _fails_with(expected.roll(1, dims=1), expected, "shifted by one position along dim 1")
    square = torch.arange(9).reshape(3, 3)
    _fails_with(square.T, square, "dims 0 and 1 swapped")
    mask = torch.tensor([True, False, True])
    _fails_with(~mask, mask, "reference negated")


def test_scalar_hints():
    _fails_with(-2.5, 2.5, "sign flipped")
    _fails_with(2.0, 4.0, "constant factor 0.5")
    _fails_with(4, 3, "off by 1")
    _fails_with(" the", "the", "leading/trailing whitespace")


def test_bad_tolerances_are_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        compare(1.0, 1.0, atol=-1)


# ---- margins ---------------------------------------------------------------------------------------------------------
def test_margin_is_the_largest_error_over_its_tolerance():
    expected = torch.tensor([1.0, 100.0])
    verdict = compare(torch.tensor([1.0005, 100.0]), expected, atol=1e-3, rtol=0.0)
    assert verdict.passed and verdict.margin == pytest.approx(0.5, rel=1e-3)
    verdict = compare(torch.tensor([1.0, 100.2]), expected, atol=0.0, rtol=1e-3)
    assert not verdict.passed and verdict.margin == pytest.approx(2.0, rel=1e-3)  # 0.2 over a tolerance of 0.1
    assert compare(expected.clone(), expected).margin == 0.0
    assert compare(2.5, 2.0, atol=0.01, rtol=0.0).margin == pytest.approx(50.0)
    assert compare({"a": [1.0, expected]}, {"a": [1.0, expected + 1e-5]}, atol=1e-4, rtol=0).margin == pytest.approx(
        0.1, rel=1e-2)
    for mismatch in (compare(torch.ones(2), torch.ones(3)), compare(3, 4), compare("a", "b"),
                     compare(torch.tensor([float("nan")]), torch.tensor([1.0]))):
        assert not mismatch.passed and mismatch.margin == float("inf")


# ---- the hints added for issue 8 ---------------------------------------------------------------------------------------
def test_swapped_tuple_items_and_dict_values_are_named():
    first, second = torch.randn(3, generator=torch.Generator().manual_seed(2)), torch.ones(2)
    _fails_with((second, first), (first, second), "items 0 and 1 are swapped")
    _fails_with({"d_model": 32, "n_ctx": 128, "n_layers": 4}, {"d_model": 128, "n_ctx": 32, "n_layers": 4},
                "keys 'd_model' and 'n_ctx' are swapped")


def test_one_minus_the_reference_is_named():
    probabilities = torch.rand(4, 5, generator=torch.Generator().manual_seed(3))
    _fails_with(1 - probabilities, probabilities, "one minus the reference")
    _fails_with(0.25, 0.75, "one minus the reference")


def test_a_permutation_of_positions_or_heads_is_named():
    scores = torch.randn(2, 4, generator=torch.Generator().manual_seed(4))
    _fails_with(scores[:, [1, 0, 3, 2]], scores, "another order along dim 1")
    heads = torch.randn(6, 3, generator=torch.Generator().manual_seed(5))
    _fails_with(heads[[0, 3, 1, 4, 2, 5]], heads, "another order along dim 0")


def test_the_scalar_ratio_hint_only_when_a_ratio_is_telling():
    _fails_with(0.5 * 0.731, 0.731, "constant factor 0.5")
    _fails_with(0.731 * 100, 0.731, "constant factor 100")  # a percentage
    _fails_with(0.731 / 8 ** 0.5, 0.731, "1/sqrt(8)")
    unrelated = _fails_with(0.6183, 0.7316, "expected 0.7316")  # e.g. the accuracy of other positions
    assert "Hint" not in unrelated and "15.5% below the reference" in unrelated


def test_a_scalar_near_the_reference_is_said_by_how_much_not_as_a_factor():
    # seen by a learner: 55/54 of the reference read "the reference times a constant factor 1.01852: a missing
    # normalisation?", a red herring (any two numbers are a constant factor apart)
    message = _fails_with(2.0 * 55 / 54, 2.0, "1.85% above the reference")
    assert "factor" not in message and "Hint" not in message
    assert "factor" not in _fails_with(0.731 * 40 / 39, 0.731, "2.56% above the reference")


def test_no_ratio_hint_for_a_huge_ratio():
    assert "Hint" not in _fails_with(11.7915, 0.000231648)


def test_an_index_says_what_it_is_when_the_check_names_the_axes():
    # seen by a learner: "Max abs error ... at index [13, 3]" left them to work out which head and position that was
    expected = torch.zeros(4, 16, 4)
    actual = expected.clone()
    actual[3, 13, 3] = 1.0
    assert "at index [3, 13, 3] (head a3.h3 at position 13)" in compare(
        actual, expected, axes=("layer", "position", "head")).message
    assert "First at index [2, 1] (batch 2, position 1)" in compare(
        torch.eye(3, dtype=torch.long)[[0, 1, 1]], torch.eye(3, dtype=torch.long), axes=("batch", "position")).message
    assert "at index [3, 13, 3]:" in compare(actual, expected).message  # no names: the index alone
    from checks.course import Course

    assert Course.default().day(5).check("head_patching_by_position").axes == ("layer", "position", "head")


def test_differences_confined_to_one_position_are_said():
    # seen on day 3: prev_value_path_output with key p - 1 clamped to 0 said only "4 of 96 elements differ"
    expected = torch.randn(2, 6, 8, generator=torch.Generator().manual_seed(6))
    actual = expected.clone()
    actual[:, 0] += 1.0
    message = compare(actual, expected, axes=("batch", "position", "d_model")).message
    assert "every difference is at position 0; everything else matches" in message
    assert "no previous position" in message
    actual = expected.clone()
    actual[1, 4, :3] -= 2.0
    assert "every difference is at index 4 of dim 1" in compare(actual, expected).message
