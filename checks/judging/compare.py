"""The comparison engine: is a learner's output the reference output, and if not, what is wrong with it?

`compare(actual, expected, atol=..., rtol=...)` returns a `Verdict`. On a mismatch its message reads like a teaching
assistant's note: where in the output the problem is (`output[1]['scores']`), what kind of problem (type, shape,
dtype, values), how big (max abs/rel error and where, fraction of elements wrong, NaN/inf), and a hint when the
answer is a simple transformation of the reference (transposed, negated, one minus it, scaled, offset, shifted by
one position, reordered along a dimension, tuple or dict items swapped). `Verdict.margin` says by how much: the
largest error over its tolerance (0 for an exact match, at most 1 on a pass, inf for a mismatch of type, shape or an
exact value), so that tests can ask that a correct variant passes with room to spare and a wrong one fails clearly.

Rules:
- Floating-point tensors and numbers match when |actual - expected| <= atol + rtol * |expected| element-wise;
  NaN matches NaN and inf matches inf of the same sign. float32 vs float64 is tolerated.
- Integer and bool tensors and numbers must be equal. Integer vs floating point is a mismatch (a count is not a
  mean), but int32 vs int64 is tolerated. A 0-d tensor and a Python number are interchangeable.
- Strings and None must be equal. Lists and tuples are interchangeable sequences; dicts must have the same keys.
  Dataclasses compare field by field. With `unordered=True`, sequences (and 1-d tensors) compare as multisets.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Verdict", "agreement", "compare"]

_MAX_SHOWN = 60  # characters of a value shown in a message


@dataclass(frozen=True)
class Verdict:
    """The outcome of one comparison: `passed`, on failure a message that explains the mismatch, and the margin:
    max |actual - expected| / (atol + rtol * |expected|) over every compared number (inf for a mismatch that no
    tolerance covers: type, shape, dtype kind, an exact value, NaN against a number)."""

    passed: bool
    message: str = ""
    margin: float = 0.0

    def __bool__(self) -> bool:
        return self.passed


_PASS = Verdict(True, "")


def _fail(message: str, margin: float = math.inf) -> Verdict:
    return Verdict(False, message, margin)


def compare(
    actual: Any,
    expected: Any,
    *,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    unordered: bool = False,
    path: str = "output",
    axes: tuple[str, ...] = (),
) -> Verdict:
    """Compare a learner's `actual` output with the reference `expected` output (see the module docstring).

    `path` names the compared value in messages; nested values extend it (`output[0]`, `output['key']`). `axes`
    names the dimensions of a tensor output (e.g. ("layer", "position", "head")), so that an index in a message also
    reads as what it is ("[3, 13, 3] (head a3.h3 at position 13)").
    """
    if atol < 0 or rtol < 0:
        raise ValueError(f"tolerances must be non-negative, got atol={atol}, rtol={rtol}")
    comparer = _Comparer(atol, rtol, unordered)
    comparer.axes = tuple(axes)
    return comparer.compare(actual, expected, path)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _type_name(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _describe(value: Any) -> str:
    return f"{_type_name(value)} {_short(value)}"


def _fmt(x: float) -> str:
    if isinstance(x, bool) or x != x or x in (math.inf, -math.inf):
        return str(x)
    if isinstance(x, int):
        return str(x)
    text = f"{x:.6g}"
    return text if any(c in text for c in ".e") else text + ".0"


def _fmt_index(index: tuple[int, ...], axes: tuple[str, ...] = ()) -> str:
    """An index as `[i, j]`, followed by what it is when the dimensions are named: `(position 13, head 3)`, and a
    head named as the course writes nodes, `a{layer}.h{head}`, when both its layer and head are known."""
    text = "[" + ", ".join(str(i) for i in index) + "]"
    if len(axes) != len(index) or not axes:
        return text
    named = dict(zip(axes, index))
    if "layer" in named and "head" in named:
        rest = [f"{name} {i}" for name, i in named.items() if name not in ("layer", "head")]
        return f"{text} (head a{named['layer']}.h{named['head']}{' at ' + ', '.join(rest) if rest else ''})"
    return f"{text} ({', '.join(f'{name} {i}' for name, i in named.items())})"


def _dtype_kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    if dtype.is_complex:
        return "complex"
    if dtype.is_floating_point:
        return "floating-point"
    return "integer"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_python_scalar(value: Any) -> Any:
    """A 0-d tensor or numpy scalar as a Python scalar; anything else unchanged."""
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item) and getattr(value, "ndim", None) == 0:
        return item()
    return value


class _Comparer:
    def __init__(self, atol: float, rtol: float, unordered: bool) -> None:
        self.atol = atol
        self.rtol = rtol
        self.unordered = unordered
        self.axes: tuple[str, ...] = ()  # names of a top-level tensor's dims (see `compare`)

    # ---- dispatch -------------------------------------------------------------------------------------------------
    def compare(self, actual: Any, expected: Any, path: str) -> Verdict:
        if expected is None:
            if actual is None:
                return _PASS
            return _fail(f"{path}: expected None, got {_describe(actual)}.")
        if isinstance(expected, torch.Tensor):
            if expected.ndim == 0 and (not isinstance(actual, torch.Tensor) or actual.ndim == 0):
                return self._scalar(actual, expected.item(), path)
            return self._tensor(actual, expected, path)
        if isinstance(expected, (bool, int, float)):
            return self._scalar(actual, expected, path)
        if isinstance(expected, str):
            return self._string(actual, expected, path)
        if isinstance(expected, dict):
            return self._dict(actual, expected, path)
        if isinstance(expected, (list, tuple)):
            return self._sequence(actual, expected, path)
        if dataclasses.is_dataclass(expected) and not isinstance(expected, type):
            return self._dataclass(actual, expected, path)
        if actual == expected:
            return _PASS
        return _fail(f"{path}: expected {_short(expected)}, got {_short(actual)}.")

    # ---- scalars --------------------------------------------------------------------------------------------------
    def _scalar(self, actual: Any, expected: bool | int | float, path: str) -> Verdict:
        actual = _as_python_scalar(actual)
        if isinstance(expected, bool):
            if not isinstance(actual, bool):
                return _fail(f"{path}: expected a bool ({expected}), got {_describe(actual)}.")
            if actual != expected:
                return _fail(f"{path}: expected {expected}, got {actual}.")
            return _PASS
        if isinstance(actual, bool) or not _is_number(actual):
            return _fail(f"{path}: expected a number ({_fmt(expected)}), got {_describe(actual)}.")
        if isinstance(expected, int):
            if isinstance(actual, float):
                return _fail(f"{path}: expected an integer ({expected}), got the float {_fmt(actual)}: "
                               "return a count or an index as an int.")
            if actual != expected:
                return _fail(f"{path}: expected {expected}, got {actual} (off by {actual - expected}).")
            return _PASS
        if isinstance(actual, int):
            return _fail(f"{path}: expected a float ({_fmt(expected)}), got the int {actual}: did an integer "
                           "division or a rounding step drop the fractional part?")
        a, e = float(actual), float(expected)
        tolerance = self.atol + self.rtol * abs(e)
        if (a != a and e != e) or a == e:
            return _PASS
        margin = _ratio(abs(a - e), tolerance)
        if margin <= 1:
            return Verdict(True, "", margin)
        if a != a:
            return _fail(f"{path}: got NaN, expected {_fmt(e)}.")
        by_how_much = (f"{100 * abs(a - e) / abs(e):.3g}% {'above' if a > e else 'below'} the reference, "
                       if e != 0 and a == a else "")
        lines = [f"{path}: expected {_fmt(e)}, got {_fmt(a)} ({by_how_much}abs error {_fmt(abs(a - e))}, "
                 f"tolerance {_fmt(tolerance)})."]
        if e != 0 and abs(a + e) <= tolerance:
            lines.append("Hint: that is the reference with its sign flipped.")
        elif abs((1 - a) - e) <= tolerance:
            lines.append("Hint: that is one minus the reference: the complement (the other case, 1 - p)?")
        elif e != 0 and a / e > 0 and _telling_ratio(a / e):
            lines.append(_factor_hint(a / e))
        return _fail(" ".join(lines), margin)

    # ---- strings --------------------------------------------------------------------------------------------------
    def _string(self, actual: Any, expected: str, path: str) -> Verdict:
        if not isinstance(actual, str):
            return _fail(f"{path}: expected a str ({_short(expected)}), got {_describe(actual)}.")
        if actual == expected:
            return _PASS
        first = next((i for i, (x, y) in enumerate(zip(actual, expected)) if x != y), min(len(actual), len(expected)))
        hint = ""
        if actual.strip() == expected.strip():
            hint = " They differ only in leading/trailing whitespace (tokens often start with a space)."
        return _fail(f"{path}: expected the string {_short(expected)}, got {_short(actual)} "
                       f"(first difference at character {first}).{hint}")

    # ---- containers -----------------------------------------------------------------------------------------------
    def _dict(self, actual: Any, expected: dict, path: str) -> Verdict:
        if not isinstance(actual, dict):
            return _fail(f"{path}: expected a dict with keys {_short(list(expected))}, "
                           f"got {_type_name(actual)}.")
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {_short(missing)}")
            if extra:
                parts.append(f"unexpected keys {_short(extra)}")
            return _fail(f"{path}: " + " and ".join(parts) + ".")
        verdict = self._first_failure((self.compare(actual[k], v, f"{path}[{k!r}]") for k, v in expected.items()))
        if not verdict.passed:
            swapped = self._swapped(actual, expected, list(expected))
            if swapped:
                i, j = swapped
                return _fail(f"{verdict.message} Hint: the values of keys {i!r} and {j!r} are swapped.",
                             verdict.margin)
        return verdict

    def _dataclass(self, actual: Any, expected: Any, path: str) -> Verdict:
        if type(actual) is not type(expected):
            return _fail(f"{path}: expected a {type(expected).__qualname__}, got {_type_name(actual)}.")
        return self._first_failure(
            self.compare(getattr(actual, f.name), getattr(expected, f.name), f"{path}.{f.name}")
            for f in dataclasses.fields(expected)
        )

    def _sequence(self, actual: Any, expected: list | tuple, path: str) -> Verdict:
        if isinstance(actual, torch.Tensor):
            return _fail(f"{path}: expected a {type(expected).__name__} of {len(expected)} items, got a "
                           f"tensor of shape {tuple(actual.shape)}: return a Python {type(expected).__name__} "
                           "(e.g. `.tolist()`).")
        if not isinstance(actual, (list, tuple)):
            return _fail(f"{path}: expected a {type(expected).__name__} of {len(expected)} items, "
                           f"got {_type_name(actual)}.")
        if len(actual) != len(expected):
            return _fail(f"{path}: expected {len(expected)} items, got {len(actual)}.")
        if self.unordered:
            return self._multiset(list(actual), list(expected), path)
        verdict = self._first_failure(
            self.compare(a, e, f"{path}[{i}]") for i, (a, e) in enumerate(zip(actual, expected)))
        if not verdict.passed and len(expected) <= 8:
            swapped = self._swapped(actual, expected, list(range(len(expected))))
            if swapped:
                return _fail(f"{verdict.message} Hint: items {swapped[0]} and {swapped[1]} are swapped: check the "
                             "order in which you return them.", verdict.margin)
        return verdict

    def _swapped(self, actual: Any, expected: Any, keys: list) -> tuple[Any, Any] | None:
        """Two keys (or indices) whose values are exchanged, everything else matching; None if there are none."""
        wrong = [k for k in keys if not self._quietly_equal(actual[k], expected[k])]
        if len(wrong) != 2:
            return None
        i, j = wrong
        if self._quietly_equal(actual[i], expected[j]) and self._quietly_equal(actual[j], expected[i]):
            return i, j
        return None

    def _quietly_equal(self, actual: Any, expected: Any) -> bool:
        try:
            return self.compare(actual, expected, "").passed
        except Exception:
            return False

    def _multiset(self, actual: list, expected: list, path: str) -> Verdict:
        unmatched = list(range(len(actual)))
        missing = []
        for e in expected:
            match = next((j for j in unmatched if self.compare(actual[j], e, path).passed), None)
            if match is None:
                missing.append(e)
            else:
                unmatched.remove(match)
        if not missing:
            return _PASS
        extra = [actual[j] for j in unmatched]
        return _fail(f"{path}: the items differ (order does not matter here): missing {_short(missing)}, "
                       f"unexpected {_short(extra)}.")

    @staticmethod
    def _first_failure(verdicts: Any) -> Verdict:
        """The first failing verdict, or a pass whose margin is the largest of all."""
        margin = 0.0
        for verdict in verdicts:
            if not verdict.passed:
                return verdict
            margin = max(margin, verdict.margin)
        return Verdict(True, "", margin)

    # ---- tensors --------------------------------------------------------------------------------------------------
    def _tensor(self, actual: Any, expected: torch.Tensor, path: str) -> Verdict:
        if not isinstance(actual, torch.Tensor):
            kind = type(actual).__module__
            advice = "convert it with torch.from_numpy(...)" if kind == "numpy" else "return a torch.Tensor"
            return _fail(f"{path}: expected a tensor of shape {tuple(expected.shape)}, "
                           f"got {_type_name(actual)}: {advice}.")
        actual = actual.detach().cpu()
        expected = expected.detach().cpu()
        if actual.shape != expected.shape:
            return _fail(f"{path}: wrong shape: expected {tuple(expected.shape)}, got {tuple(actual.shape)}."
                           + self._shape_hint(actual, expected))
        kind_a, kind_e = _dtype_kind(actual.dtype), _dtype_kind(expected.dtype)
        if kind_a != kind_e:
            article = "an" if kind_e[0] in "aeiou" else "a"
            return _fail(f"{path}: wrong dtype: expected {article} {kind_e} tensor ({expected.dtype}), got "
                           f"{kind_a} ({actual.dtype})." + _dtype_hint(kind_a, kind_e))
        if self.unordered and expected.ndim == 1:
            actual, expected = actual.sort().values, expected.sort().values
        if kind_e in ("bool", "integer"):
            return self._exact_tensor(actual, expected, path)
        return self._float_tensor(actual, expected, path)

    def _shape_hint(self, actual: torch.Tensor, expected: torch.Tensor) -> str:
        if actual.numel() == expected.numel() and sorted(actual.shape) == sorted(expected.shape) and actual.ndim > 1:
            for dims in _permutations_to(expected.shape, actual.shape):
                if _dtype_kind(actual.dtype) == _dtype_kind(expected.dtype) and self._close_mask(
                        actual, expected.permute(*dims)).all():
                    return (f" Hint: your values are the reference's with its dimensions permuted as {tuple(dims)} "
                            "(e.g. transposed): check the order of dimensions (einsum/rearrange pattern).")
            return " Hint: same dimensions in a different order: check the order of dimensions."
        squeezed_a = [s for s in actual.shape if s != 1]
        squeezed_e = [s for s in expected.shape if s != 1]
        if squeezed_a == squeezed_e:
            return " Hint: they differ only in dimensions of size 1: a missing or extra squeeze/unsqueeze/keepdim?"
        if actual.ndim == expected.ndim:
            diffs = [i for i, (a, e) in enumerate(zip(actual.shape, expected.shape)) if a != e]
            if len(diffs) == 1 and abs(actual.shape[diffs[0]] - expected.shape[diffs[0]]) == 1:
                return (f" Hint: dim {diffs[0]} is off by one: an off-by-one slice (e.g. [:-1] vs [1:]), or a "
                        "BOS token counted or dropped?")
        if actual.ndim < expected.ndim:
            return " Hint: you have fewer dimensions: did you reduce (sum/mean) over a dimension you should keep?"
        if actual.ndim > expected.ndim:
            return " Hint: you have extra dimensions: is a reduction (sum/mean/indexing) missing?"
        return ""

    def _exact_tensor(self, actual: torch.Tensor, expected: torch.Tensor, path: str) -> Verdict:
        wrong = actual.to(expected.dtype) != expected
        n_wrong = int(wrong.sum())
        if n_wrong == 0:
            return _PASS
        first = tuple(int(i) for i in wrong.nonzero()[0])
        lines = [f"{path}: {n_wrong} of {wrong.numel()} elements ({100 * n_wrong / wrong.numel():.3g}%) differ. "
                 f"First at index {self._index(first, path)}: got {actual[first].item()}, expected "
                 f"{expected[first].item()}."]
        lines.extend(self._structural_hints(actual, expected, exact=True) or self._confined_hint(wrong, path))
        return _fail(" ".join(lines))

    def _index(self, index: tuple[int, ...], path: str) -> str:
        return _fmt_index(index, self.axes if path == "output" else ())

    def _close_mask(self, actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        a = actual.to(torch.float64)
        e = expected.to(torch.float64)
        both_nan = a.isnan() & e.isnan()
        return both_nan | (a == e) | ((a - e).abs() <= self.atol + self.rtol * e.abs())

    def _margin(self, actual: torch.Tensor, expected: torch.Tensor) -> float:
        """max |a - e| / (atol + rtol |e|); equal values (NaN and inf included) count 0, other non-finite ones inf."""
        a = actual.to(torch.float64)
        e = expected.to(torch.float64)
        if a.numel() == 0:
            return 0.0
        equal = (a == e) | (a.isnan() & e.isnan())
        error = (a - e).abs()
        tolerance = self.atol + self.rtol * e.abs()
        ratio = torch.where(tolerance > 0, error / tolerance.clamp_min(1e-300), torch.full_like(error, math.inf))
        ratio = torch.where(equal, torch.zeros_like(ratio), ratio.nan_to_num(nan=math.inf))
        return float(ratio.max())

    def _float_tensor(self, actual: torch.Tensor, expected: torch.Tensor, path: str) -> Verdict:
        close = self._close_mask(actual, expected)
        margin = self._margin(actual, expected)
        if bool(close.all()):
            return Verdict(True, "", margin)
        a = actual.to(torch.float64)
        e = expected.to(torch.float64)
        n_wrong = int((~close).sum())
        total = close.numel()
        lines = [f"{path}: {n_wrong} of {total} elements ({100 * n_wrong / total:.3g}%) differ beyond the tolerance "
                 f"(atol={self.atol:g}, rtol={self.rtol:g})."]
        nan_a, inf_a = a.isnan() & ~e.isnan(), a.isinf() & ~e.isinf()
        for name, mask in (("NaN", nan_a), ("inf", inf_a)):
            if mask.any():
                first = tuple(int(i) for i in mask.nonzero()[0])
                lines.append(f"Your output has {name} at {int(mask.sum())} position(s) where the reference has a "
                             f"finite value (first at index {_fmt_index(first)}).")
        finite = a.isfinite() & e.isfinite()
        err = torch.where(finite, (a - e).abs(), torch.zeros_like(a))
        if err.max() > 0:
            flat = int(err.argmax())
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), a.shape))
            # A relative error means something only where the expected value is not ~0: dividing by an entry that
            # is zero up to rounding (|e| <= atol) gives numbers like 3e15 that say nothing about the mistake.
            sizable = finite & (e.abs() > self.atol) & ~close
            expected_there = e[index].item() if e.ndim else e.item()
            where = "" if abs(expected_there) > self.atol else " (the expected value there is ~0, so only the " \
                "absolute difference means anything)"
            rel = (f"; max rel error {_fmt((err[sizable] / e[sizable].abs()).max().item())} (over the elements whose "
                   f"expected value exceeds atol={self.atol:g} in size)" if sizable.any() else "")
            lines.append(f"Max abs error {_fmt(err.max().item())} at index {self._index(index, path)}: got "
                         f"{_fmt(a[index].item() if a.ndim else a.item())}, expected {_fmt(expected_there)}"
                         f"{where}{rel}.")
        lines.extend(self._structural_hints(a, e, exact=False) or self._confined_hint(~close, path))
        return _fail(" ".join(lines), margin)

    def _matches(self, candidate: torch.Tensor, expected: torch.Tensor, exact: bool) -> bool:
        if exact:
            return bool((candidate == expected).all())
        return bool(self._close_mask(candidate, expected).all())

    def _confined_hint(self, wrong: torch.Tensor, path: str) -> list[str]:
        """Say so when every difference lies at one index of one dimension (everything else matches): e.g. only at
        position 0, the position that can attend only to itself and has no previous position."""
        axes = self.axes if path == "output" and len(self.axes) == wrong.ndim else ()
        for dim in range(wrong.ndim):
            if wrong.shape[dim] < 3:
                continue
            rows = wrong.movedim(dim, 0).reshape(wrong.shape[dim], -1).any(1)
            if int(rows.sum()) == 1:
                index = int(rows.nonzero()[0])
                name = f"{axes[dim]} {index}" if axes else f"index {index} of dim {dim}"
                cause = (" the first position handled differently (it can attend only to itself, and has no previous "
                         "position)?" if index == 0 and (not axes or axes[dim] == "position") else
                         " a special case applied to it, or missed?")
                return [f"Hint: every difference is at {name}; everything else matches:{cause}"]
        return []

    def _structural_hints(self, a: torch.Tensor, e: torch.Tensor, exact: bool) -> list[str]:
        """Name a simple transformation that turns the reference into the learner's answer, if one does."""
        if exact:
            a, e = a.to(torch.int64) if a.dtype != torch.bool else a, e.to(torch.int64) if e.dtype != torch.bool else e
        for i in range(a.ndim):
            for j in range(i + 1, a.ndim):
                if a.shape[i] == a.shape[j] and self._matches(a.transpose(i, j), e, exact):
                    return [f"Hint: your answer is the reference with dims {i} and {j} swapped (transposed): check "
                            "the order of dimensions (einsum/rearrange pattern, or which of q/k is the row)."]
        if e.dtype == torch.bool:
            if bool((a == ~e).all()):
                return ["Hint: your answer is the reference negated (every True is False and vice versa)."]
            return self._shift_hints(a, e, exact)
        finite = a.isfinite().all() and e.isfinite().all()
        if finite and bool(e.abs().max() > 0) and self._matches(-a, e, exact):
            return ["Hint: your answer is the reference with its sign flipped: check a subtraction's order or a sign."]
        if not exact and finite and self._matches(1 - a, e, exact):
            return ["Hint: your answer is one minus the reference: the complement (the other case, 1 - p, or a "
                    "comparison the wrong way round)?"]
        if not exact and finite and e.numel() > 1:
            denom = float((e * e).sum())
            if denom > 0:
                scale = float((a * e).sum()) / denom
                if abs(scale - 1) > 1e-3 and scale != 0 and bool(
                        ((a - scale * e).abs() <= self.atol * abs(scale) + self.rtol * (scale * e).abs()).all()):
                    return [_factor_hint(scale).replace("that is", "your answer is")]
            offset = float((a - e).mean())
            if abs(offset) > self.atol and self._matches(a - offset, e, exact):
                return [f"Hint: your answer is the reference plus a constant {offset:.6g}: a missing or extra "
                        "constant term (a bias, a baseline, a log-normaliser)?"]
        if exact and e.numel() > 1:
            diff = (a - e).flatten()
            if bool((diff == diff[0]).all()) and int(diff[0]) != 0:
                return [f"Hint: every element is off by {int(diff[0])}: an off-by-one index or count?"]
        return self._shift_hints(a, e, exact) or [hint for hint in [self._permutation_hint(a, e, exact)] if hint]

    def _permutation_hint(self, a: torch.Tensor, e: torch.Tensor, exact: bool) -> str:
        """Name a dim along which the learner's entries are the reference's in another order (positions, heads)."""
        for dim in range(a.ndim):
            n = a.shape[dim]
            if n < 2 or n > 64:
                continue
            order = []
            for i in range(n):
                target = e.select(dim, i)
                match = next((j for j in range(n) if j not in order and self._matches(a.select(dim, j), target, exact)),
                             None)
                if match is None:
                    break
                order.append(match)
            else:
                if order != list(range(n)):
                    moved = [i for i in range(n) if order[i] != i]
                    return (f"Hint: your answer has the reference's values in another order along dim {dim} "
                            f"(index {moved[0]} of the reference is your index {order[moved[0]]}): heads, positions "
                            "or components listed in a different order?")
        return ""

    def _shift_hints(self, a: torch.Tensor, e: torch.Tensor, exact: bool) -> list[str]:
        for dim in range(a.ndim):
            n = a.shape[dim]
            if n < 3:
                continue
            e_head, e_tail = e.narrow(dim, 0, n - 1), e.narrow(dim, 1, n - 1)
            if self._matches(e_head, e_tail, exact):
                continue  # the reference is constant along this dim: a shift would explain nothing
            if self._matches(a.narrow(dim, 1, n - 1), e_head, exact):
                return [f"Hint: your answer looks shifted by one position along dim {dim}: your value at position "
                        "p+1 is the reference's at p (an off-by-one offset, e.g. predicting token p from p+1?)."]
            if self._matches(a.narrow(dim, 0, n - 1), e_tail, exact):
                return [f"Hint: your answer looks shifted by one position along dim {dim}: your value at position "
                        "p is the reference's at p+1 (an off-by-one offset, e.g. logits[:, :-1] vs tokens[:, 1:]?)."]
        return []


def _ratio(error: float, tolerance: float) -> float:
    if error == 0:
        return 0.0
    return error / tolerance if tolerance > 0 else math.inf


def _telling_ratio(ratio: float) -> bool:
    """Whether a single number's ratio to the reference says something: an integer or one over an integer (a sum for
    a mean, a percentage, a count), or a square root of one (sqrt(d_head)). Any two numbers are some constant factor
    apart, so for a scalar only these are named; anything else is said as how far off it is."""
    for value in (ratio, 1 / ratio):
        for candidate, limit in ((value, 4096), (value * value, 4096)):
            nearest = round(candidate)
            if 2 <= nearest <= limit and abs(candidate - nearest) <= 1e-4 * nearest:
                return True
    return False


def _factor_hint(ratio: float) -> str:
    """Name the ratio between the learner's and the reference's value and its usual cause (e.g. 1/sqrt(d_head))."""
    for value, wording in ((ratio, "sqrt({k})"), (1 / ratio, "1/sqrt({k})")):
        k = round(value * value)
        if 2 <= k <= 4096 and abs(value * value - k) <= 1e-3 * k and abs(value - round(value)) > 1e-3:
            return (f"Hint: that is the reference times {ratio:.6g} = {wording.format(k=k)}: a missing or extra "
                    "scale such as sqrt(d_head)?")
    return (f"Hint: that is the reference times a constant factor {ratio:.6g}: a missing or extra normalisation "
            "(mean vs sum, a softmax, a scale factor)?")


def _permutations_to(source: torch.Size, target: torch.Size) -> list[tuple[int, ...]]:
    """All dim permutations p with source[p[i]] == target[i] (few: tensors here have at most a handful of dims)."""
    import itertools

    if len(source) > 6:
        return []
    return [p for p in itertools.permutations(range(len(source)))
            if all(source[p[i]] == target[i] for i in range(len(p)))]


def _dtype_hint(kind_actual: str, kind_expected: str) -> str:
    if kind_expected == "floating-point" and kind_actual in ("integer", "bool"):
        return " Hint: an integer division (//) or a count where a mean or a probability is expected? Use .float()."
    if kind_expected == "integer" and kind_actual == "floating-point":
        return " Hint: indices and counts are integers: use .long() or an integer operation (argmax, sum of bools)."
    if kind_expected == "bool":
        return " Hint: return the comparison itself (a bool tensor), not a count or its float."
    return ""


def agreement(actual: Any, expected: Any, minimum: float) -> Verdict:
    """Judge integer predictions by how often they agree with the reference, not by equality: `actual` passes when,
    in every column of the last dimension (e.g. each answer position), at least `minimum` of its elements equal
    `expected`'s. For outputs where more than one answer is right, e.g. a learner's own predictor of a model's
    behaviour judged against that behaviour. The margin is 0 on a pass and inf on a failure."""
    if not isinstance(actual, torch.Tensor) or not isinstance(expected, torch.Tensor) or actual.shape != expected.shape:
        verdict = compare(actual, expected)  # its message says what is wrong with the type or shape
        return verdict if not verdict.passed else _fail("output: expected a tensor of the reference's shape.")
    if _dtype_kind(actual.dtype) != "integer":
        return _fail(f"output: expected an integer tensor ({expected.dtype}), got {actual.dtype}.")
    actual, expected = actual.detach().cpu().to(torch.int64), expected.detach().cpu()
    columns = expected.reshape(-1, expected.shape[-1]) if expected.ndim else expected.reshape(1, 1)
    agree = (actual.reshape(columns.shape) == columns).double().mean(0)
    if bool((agree >= minimum).all()):
        return Verdict(True, "", 0.0)
    worst = int(agree.argmin())
    missed = actual.reshape(columns.shape)[:, worst] != columns[:, worst]
    values, counts = columns[missed, worst].unique(return_counts=True)
    where = ", ".join(f"{int(v)} ({int(n)}x)" for n, v in sorted(zip(counts.tolist(), values.tolist()), reverse=True))
    lines = [f"output: agrees with the reference on {[round(x, 3) for x in agree.tolist()]} of the elements in each "
             f"column of the last dimension; at least {minimum:g} is needed in every one. In column {worst} it misses "
             f"{int(missed.sum())} of {len(missed)}, where the reference has {where}."]
    low, high = int(columns.min()), int(columns.max())
    if bool(((actual < low) | (actual > high)).float().mean() > 0.5):
        lines.append(f"Most of your values lie outside the reference's range [{low}, {high}]: another kind of value "
                     "(tokens for positions, or the other way round)?")
    return _fail(" ".join(lines))
