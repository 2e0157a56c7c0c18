"""Audits that need the live model: a config flag left changed, and an activation cache built where an exercise
forbids one, however it was built.

- `config_changes` compares a model's config with its pristine copy (the env calls it before restoring the model),
  so a flag such as `use_attn_result` left switched on is reported like a hook left attached.
- `watch_caching(model)` gives an inputs builder a view of a zoo model that notices caching: the caching methods
  (`run_with_cache`, `get_caching_hooks`, `add_caching_hooks`) by name, and a cache built by hand by what is kept:
  at the end of every forward pass it looks for tensors created during the pass, still alive, with the shape of an
  activation of that pass (a hook that stores `pattern`, `pattern.clone()` or `pattern * 1` keeps one per layer;
  a hook that records a score per head keeps nothing of that shape). `cache_complaint` turns what it saw into the
  validator's message.
"""

from __future__ import annotations

import copy
import functools
import gc
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # imported where a model is watched: the grading supervisor never imports transformer_lens
    from transformer_lens import HookedTransformer

_MIN_CACHED_NUMEL = 64  # smaller tensors of an activation's shape are too small to be a cache


def config_changes(name: str, current: dict[str, Any], pristine: dict[str, Any]) -> list[str]:
    """One sentence naming the config fields of model `name` that differ from the pristine config, or none."""
    changed = []
    for key in sorted(set(current) | set(pristine)):
        before, after = pristine.get(key, "<unset>"), current.get(key, "<unset>")
        try:
            same = bool(before == after)
        except Exception:  # e.g. tensors: compare by identity
            same = before is after
        if not same:
            changed.append(f"{key}: {before!r} -> {after!r}")
    if not changed:
        return []
    return [f"your function left the config of model {name!r} changed ({'; '.join(changed[:3])}"
            f"{'; ...' if len(changed) > 3 else ''}): set such flags back before returning (e.g. "
            "`model.set_use_attn_result(False)` in a `finally:` block). The model has been restored for the other "
            "exercises."]


class _CacheWatching:
    """A view of a zoo model that records every attempt to build an activation cache (see the module docstring).

    Made by `watch_caching`: a shallow copy whose class is switched to `_cache_watching_model()` (this mixin over
    HookedTransformer), so it shares the original's modules, weights and hook points (the grader's audit of hooks
    and weights still sees everything) and computes exactly what the original computes.
    """

    caching_calls: list[str]
    kept_activations: list[str]

    def run_with_cache(self, *args: Any, **kwargs: Any) -> Any:
        self.caching_calls.append("run_with_cache")
        return super().run_with_cache(*args, **kwargs)

    def get_caching_hooks(self, *args: Any, **kwargs: Any) -> Any:
        self.caching_calls.append("get_caching_hooks")
        return super().get_caching_hooks(*args, **kwargs)

    def add_caching_hooks(self, *args: Any, **kwargs: Any) -> Any:
        self.caching_calls.append("add_caching_hooks")
        return super().add_caching_hooks(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        shapes: dict[tuple[int, ...], list[str]] = {}

        def note_shape(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if isinstance(output, torch.Tensor) and output.numel() >= _MIN_CACHED_NUMEL:
                shapes.setdefault(tuple(output.shape), []).append(getattr(module, "name", "") or "an activation")

        # With the collector paused, every object created during the pass stays in generation 0: scanning that
        # generation alone (fast) finds every tensor the pass created and something still holds.
        collecting = gc.isenabled()
        gc.disable()
        try:
            before = {id(tensor) for tensor in _young_tensors()}
            handles = [point.register_forward_hook(note_shape) for point in self.hook_dict.values()]
            try:
                with torch.no_grad():  # else the autograd graph would keep every activation alive
                    result = super().forward(*args, **kwargs)
            finally:
                for handle in handles:
                    handle.remove()
            kept = [f"shape {shape}, like {' or '.join(shapes[shape][:2])}" for shape in dict.fromkeys(
            tuple(tensor.shape) for tensor in _young_tensors()
            if id(tensor) not in before and tensor is not result and tuple(tensor.shape) in shapes)]
        finally:
            if collecting:
                gc.enable()
        self.kept_activations.extend(name for name in dict.fromkeys(kept) if name not in self.kept_activations)
        return result


def _young_tensors() -> list[torch.Tensor]:
    return [obj for obj in gc.get_objects(generation=0) if isinstance(obj, torch.Tensor)]


@functools.cache
def _cache_watching_model() -> type:
    from transformer_lens import HookedTransformer

    return type("_CacheWatchingModel", (_CacheWatching, HookedTransformer), {"__doc__": _CacheWatching.__doc__})


def watch_caching(model: HookedTransformer) -> HookedTransformer:
    """A view of `model` that notices activation caches (see the module docstring)."""
    watched = copy.copy(model)
    watched.__class__ = _cache_watching_model()
    watched.caching_calls = []
    watched.kept_activations = []
    return watched


def cache_complaint(model: Any, exercise: str, advice: str) -> str | None:
    """The validator's message when the watched `model` saw a cache being built, else None."""
    calls = getattr(model, "caching_calls", [])
    if calls:
        return (f"{exercise} gives the right values, but it built an activation cache (it called model.{calls[0]}). "
                + advice)
    kept = getattr(model, "kept_activations", [])
    if kept:
        return (f"{exercise} gives the right values, but it kept whole activations ({'; '.join(kept[:3])}) alive "
                "until the end of the forward pass: that is a cache built by hand. " + advice)
    return None
