"""Step 1 of grading one input case: build its inputs on pristine models and fingerprint them.

The one place that does it, for every path that needs a case's inputs: the in-process pipeline (`check(fn)`,
`checks.pipeline.grading`), the worker (`checks.isolation.child`, which sends the fingerprint to its supervisor
before any learner code runs), the reference builder (`checks.store.references`) and the project's tests. The
fingerprint identifies the inputs a stored reference was computed on (see `checks.store.references`): an exact hash
of everything but floating-point values, and a summary of the floating-point tensors, compared within a tolerance
(their bits differ across devices).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import torch

from checks.pipeline.audits import _CacheWatching
from checks.pipeline.env import tensor_bytes, transformer_lens_type, weights_hash

if TYPE_CHECKING:
    from checks.pipeline.env import Env
    from checks.spec import Check


class CourseBug(Exception):
    """A check's inputs builder crashed: the course's fault, never the learner's. `details` is the traceback."""

    def __init__(self, check_name: str, case: str, details: str) -> None:
        super().__init__(course_bug_message(check_name, case, details))
        self.details = details


def course_bug_message(check_name: str, case: str, details: str) -> str:
    """What a crashed inputs builder is reported as (by the in-process pipeline and by the supervisor alike)."""
    return (f"building the inputs of {check_name!r} (case {case!r}) failed; this is a bug in the course, not in "
            f"your code:\n{details}")


@dataclass(frozen=True)
class BuiltCase:
    """One input case, built: the keyword arguments of the call, and their fingerprint."""

    inputs: dict[str, Any]
    fingerprint: "InputsFingerprint"


def build_inputs(env: "Env", check: "Check", case: str) -> BuiltCase:
    """Build case `case` of `check` on `env`'s pristine models and fingerprint it (with the weights hash of every
    model the builder used). Raises CourseBug with the traceback when the builder crashes; the models are restored
    either way."""
    env.prepare()
    try:
        inputs = check.cases[case](env)
        used = {name: env.model_hashes[name] for name in env.models_used}
        return BuiltCase(inputs, fingerprint_inputs(inputs, used))
    except Exception:
        env.audit()
        raise CourseBug(check.name, case, traceback.format_exc()) from None


_SAMPLES = 8
_FLOAT_RTOL = 1e-3


@dataclass(frozen=True)
class InputsFingerprint:
    """What identifies a check's inputs: an exact hash, and a summary of its floating-point tensors."""

    hash: str
    floats: list[list[float]]


def fingerprint_inputs(inputs: dict[str, Any], model_hashes: dict[str, str]) -> InputsFingerprint:
    return InputsFingerprint(inputs_hash(inputs, model_hashes), float_summary(inputs))


def float_summary(inputs: Any) -> list[list[float]]:
    """Per floating-point tensor in `inputs` (in a fixed order): [mean |x|, non-finite count, mean, samples...]."""
    summary = []
    for tensor in _float_tensors(inputs):
        values = tensor.detach().to("cpu", torch.float64).reshape(-1)
        finite = values[values.isfinite()]
        index = torch.linspace(0, max(values.numel() - 1, 0), min(_SAMPLES, values.numel())).round().long()
        numbers = [finite.abs().mean().item() if finite.numel() else 0.0, float(values.numel() - finite.numel()),
                   finite.mean().item() if finite.numel() else 0.0, *values[index].tolist()]
        summary.append([float(f"{x:.8g}") for x in numbers])  # 8 digits: ample for a 1e-3 comparison
    return summary


def floats_match(current: list[list[float]], stored: list[list[float]]) -> bool:
    """Whether two float summaries agree within `_FLOAT_RTOL` of each tensor's scale (non-finite values exactly)."""
    if len(current) != len(stored) or any(len(a) != len(b) for a, b in zip(current, stored)):
        return False
    for now, then in zip(current, stored):
        scale = abs(then[0])
        for a, b in zip(now, then):
            if math.isfinite(a) and math.isfinite(b):
                if abs(a - b) > _FLOAT_RTOL * max(scale, abs(b)) + 1e-12:
                    return False
            elif a != b and not (math.isnan(a) and math.isnan(b)):
                return False
    return True


def _float_tensors(value: Any) -> Iterator[torch.Tensor]:
    ActivationCache = transformer_lens_type("ActivationCache")  # noqa: N806

    if isinstance(value, torch.Tensor):
        if value.dtype.is_floating_point:
            yield value
    elif isinstance(value, ActivationCache):
        yield from _float_tensors(dict(value.cache_dict))
    elif isinstance(value, dict):
        for key in sorted(value, key=repr):
            yield from _float_tensors(value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _float_tensors(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _float_tensors(getattr(value, f.name))


def inputs_hash(inputs: dict[str, Any], model_hashes: dict[str, str]) -> str:
    """Hash of a check's inputs, device-independent (see the module docstring). `model_hashes`: the weights hash of
    each zoo model the inputs builder used."""
    digest = hashlib.sha256()
    _feed(digest, inputs)
    digest.update(json.dumps(sorted(model_hashes.items())).encode())
    return digest.hexdigest()[:16]


def _feed(digest: "hashlib._Hash", value: Any) -> None:
    ActivationCache = transformer_lens_type("ActivationCache")  # noqa: N806
    HookedTransformer = transformer_lens_type("HookedTransformer")  # noqa: N806

    if isinstance(value, torch.Tensor):
        digest.update(f"tensor|{value.dtype}|{tuple(value.shape)}|".encode())
        if not (value.dtype.is_floating_point or value.dtype.is_complex):
            digest.update(tensor_bytes(value))
    elif isinstance(value, torch.Generator):
        digest.update(b"generator|" + tensor_bytes(value.get_state()))
    elif isinstance(value, HookedTransformer):
        digest.update(f"model|{weights_hash(value)}|".encode())
    elif isinstance(value, ActivationCache):
        digest.update(b"cache|")
        _feed(digest, dict(value.cache_dict))
    elif isinstance(value, dict):
        digest.update(f"dict|{len(value)}|".encode())
        for key in sorted(value, key=repr):
            digest.update(f"{key!r}:".encode())
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):
        digest.update(f"{type(value).__name__}|{len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        digest.update(f"dataclass|{type(value).__qualname__}|".encode())
        _feed(digest, {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    elif value is None or isinstance(value, (bool, int, float, str, torch.dtype, torch.device)):
        digest.update(f"{type(value).__name__}|{value!r}|".encode())
    else:  # e.g. a tokenizer: its identity is its type (its repr may hold memory addresses)
        digest.update(f"object|{type(value).__module__}.{type(value).__qualname__}|".encode())


class InputsCache:
    """Each case's inputs built once per env, for in-process grading (`checks.grade`, which learners call again and
    again in a notebook, and the project's tests call for every wrong implementation of an exercise).

    Every call gets fresh copies: new tensors (same values, dtype, strides, requires_grad), containers, generators
    (same state) and ActivationCaches; the env's models are passed as the same objects, as a build passes them. A hit
    is used only while every model the build used is the env's same object, with the same weights hash and config as
    when it was built; otherwise the case is built afresh. Cases whose inputs hold anything else (an object this
    cannot copy faithfully, a tensor with autograd history) are built afresh every time.
    Not for the grading worker, whose learner code must never share a process with saved inputs.
    """

    def __init__(self) -> None:
        self._built: dict[tuple[Any, str, str], tuple[BuiltCase, dict[str, Any], dict[str, dict]]] = {}

    def build(self, env: "Env", check: "Check", case: str) -> BuiltCase:
        """`build_inputs(env, check, case)`, from the cache when its entry is still valid (see the class)."""
        key = (check.cases[case], check.name, case)
        entry = self._built.get(key)
        if entry is not None:
            built, models, configs = entry
            env.prepare()
            if all(env.model(name) is model and weights_hash(model) == env.model_hashes.get(name)
                   and model.cfg.__dict__ == configs[name] for name, model in models.items()):
                return BuiltCase(_fresh_copy(built.inputs, list(models.values()), {}), built.fingerprint)
            del self._built[key]
        built = build_inputs(env, check, case)
        models = {name: env.model(name) for name in sorted(env.models_used)}
        try:
            saved = BuiltCase(_fresh_copy(built.inputs, list(models.values()), {}), built.fingerprint)
        except _Uncopyable:
            return built
        self._built[key] = (saved, models, {name: copy.deepcopy(m.cfg.__dict__) for name, m in models.items()})
        return built


class _Uncopyable(Exception):
    pass


def _fresh_copy(value: Any, models: list[Any], storages: dict[int, torch.UntypedStorage]) -> Any:
    """A copy of built inputs that shares no tensor, container, generator or model view with `value` (see
    InputsCache); `models` are the env's models, passed as they are. A tensor is copied with its whole storage, offset
    and strides, so views stay views (of copies of the same memory, shared where the originals share it: `storages`
    maps each original storage to its copy)."""
    ActivationCache = transformer_lens_type("ActivationCache")  # noqa: N806
    HookedTransformer = transformer_lens_type("HookedTransformer")  # noqa: N806

    if isinstance(value, torch.Tensor):
        if value.grad_fn is not None or value.grad is not None or type(value) is not torch.Tensor:
            raise _Uncopyable
        original = value.untyped_storage()
        if original.data_ptr() not in storages:
            storages[original.data_ptr()] = original.clone()
        fresh = torch.empty(0, dtype=value.dtype, device=value.device)
        fresh.set_(storages[original.data_ptr()], value.storage_offset(), value.size(), value.stride())
        return fresh.requires_grad_(value.requires_grad)
    if isinstance(value, torch.Generator):
        fresh = torch.Generator(device=value.device)
        fresh.set_state(value.get_state())
        return fresh
    if isinstance(value, HookedTransformer):
        if any(value is model for model in models):
            return value  # an env model: the same object, as a build passes it (audited by the env)
        if isinstance(value, _CacheWatching) and any(value._modules is model._modules for model in models):
            fresh = copy.copy(value)  # a view of an env model (`watch_caching`): a new view, with lists of its own
            fresh.caching_calls, fresh.kept_activations = list(value.caching_calls), list(value.kept_activations)
            return fresh
        raise _Uncopyable
    if isinstance(value, ActivationCache):
        fresh = copy.copy(value)
        fresh.cache_dict = _fresh_copy(value.cache_dict, models, storages)
        fresh.model = _fresh_copy(value.model, models, storages)
        return fresh
    if type(value) is dict:
        return {key: _fresh_copy(item, models, storages) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_fresh_copy(item, models, storages) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fresh = copy.copy(value)
        for field in dataclasses.fields(value):
            object.__setattr__(fresh, field.name, _fresh_copy(getattr(value, field.name), models, storages))
        return fresh
    if value is None or type(value) in (bool, int, float, str, torch.dtype, torch.device):
        return value
    raise _Uncopyable
