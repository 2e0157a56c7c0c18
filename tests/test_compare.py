"""The comparison engine: what passes, what fails, and what each failure message says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from checks.compare import compare


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
