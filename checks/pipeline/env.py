"""The grading env: pristine zoo models shared across a session, and seeded generators (implements
`checks.spec.GradingEnv`).

A model is loaded once per env, moved to the env's device and put in eval mode; its weights, config and
requires_grad flags are saved. Around every learner call the grader calls `prepare()` (hooks removed, gradients
cleared) and then `audit()`, which reports what the call changed (weights, hooks left attached) and puts the model
back exactly as saved, so one exercise's damage never reaches the next.
"""

from __future__ import annotations

import copy
import hashlib
import sys
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from checks.pipeline.audits import config_changes

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def transformer_lens_type(name: str) -> type | tuple[()]:
    """transformer_lens's class `name` (e.g. "ActivationCache"), or `()`, which nothing is an instance of, when this
    process never imported transformer_lens: then no value can be one. The grading supervisor only judges plain data
    and never imports it (5 s): its workers do."""
    module = sys.modules.get("transformer_lens")
    return getattr(module, name) if module is not None else ()


def weights_hash(model: torch.nn.Module) -> str:
    """A device-independent hash of a model's parameters and buffers (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor_bytes(tensor))
    return digest.hexdigest()[:16]


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    """The raw bytes of a tensor's values (on CPU, contiguous), whatever its dtype."""
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def attached_hooks(model: torch.nn.Module) -> list[str]:
    """Names of the submodules that have forward/backward hooks registered on them."""
    return [name or "<model>" for name, module in model.named_modules()
            if any(getattr(module, attr, None) for attr in _HOOK_DICTS)]


@dataclass
class _Pristine:
    """What a zoo model looked like when loaded: the state the env restores after every exercise."""

    state: dict[str, torch.Tensor]
    requires_grad: dict[str, bool]
    config: dict
    hash: str


class Env:
    """Pristine zoo models on one device, loaded lazily through `load_model(name)` and cached for the session."""

    def __init__(self, device: torch.device | str, load_model: Callable[[str], HookedTransformer]) -> None:
        self.device = torch.device(device)
        self._load_model = load_model
        self._models: dict[str, HookedTransformer] = {}
        self._pristine: dict[str, _Pristine] = {}
        self.models_used: set[str] = set()

    # ---- GradingEnv ------------------------------------------------------------------------------------------------
    def model(self, name: str) -> HookedTransformer:
        """The zoo model `name`, pristine (see the module docstring); the same object on every call."""
        self.models_used.add(name)
        if name not in self._models:
            with warnings.catch_warnings():  # transformer_lens 3.9 deprecates HookedTransformer(cfg) on every build
                warnings.simplefilter("ignore", DeprecationWarning)
                model = self._load_model(name)
            if not isinstance(model, transformer_lens_type("HookedTransformer")):
                raise TypeError(f"the model loader returned a {type(model).__name__} for {name!r}, "
                                "not a HookedTransformer")
            model = model.to(self.device, print_details=False).eval()
            model.reset_hooks(including_permanent=True)
            if attached_hooks(model):
                raise RuntimeError(f"zoo model {name!r} has hooks attached right after loading: "
                                   f"{attached_hooks(model)[:3]}")
            self._models[name] = model
            self._pristine[name] = _Pristine(
                state={k: v.detach().clone() for k, v in model.state_dict().items()},
                requires_grad={k: p.requires_grad for k, p in model.named_parameters()},
                config=copy.deepcopy(model.cfg.__dict__),
                hash=weights_hash(model),
            )
        return self._models[name]

    def generator(self, seed: int) -> torch.Generator:
        """A fresh CPU generator seeded with `seed`."""
        return torch.Generator(device="cpu").manual_seed(seed)

    # ---- used by the grader ---------------------------------------------------------------------------------------
    @property
    def model_hashes(self) -> dict[str, str]:
        """Weights hash of every model loaded so far, by name."""
        return {name: pristine.hash for name, pristine in self._pristine.items()}

    def prepare(self) -> None:
        """Make every loaded model ready for the next call (no hooks, no gradients, eval mode); forget which
        models were used, so `models_used` then lists those the next inputs builder asks for."""
        self.models_used.clear()
        for model in self._models.values():
            _remove_hooks(model)
            model.zero_grad(set_to_none=True)
            model.eval()

    def audit(self) -> list[str]:
        """What the last call changed in the loaded models (one sentence each); restores every model regardless."""
        problems: list[str] = []
        for name, model in list(self._models.items()):
            pristine = self._pristine[name]
            hooked = attached_hooks(model)
            if hooked:
                problems.append(
                    f"your function left hooks attached to model {name!r} (on {', '.join(hooked[:3])}"
                    f"{', ...' if len(hooked) > 3 else ''}): remove them before returning, e.g. use "
                    "`model.run_with_hooks(...)` or `with model.hooks(...)`, or call `model.reset_hooks()`.")
            changed = _changed_tensors(model, pristine.state)
            if changed:
                problems.append(
                    f"your function changed the weights of model {name!r} ({', '.join(changed[:3])}"
                    f"{', ...' if len(changed) > 3 else ''}): work on a copy (e.g. `W.clone()`) or use hooks, never "
                    "edit the model in place. The model has been restored for the other exercises.")
            problems.extend(config_changes(name, model.cfg.__dict__, pristine.config))
            self._restore(name, reload_weights=bool(changed))
        return problems

    def _restore(self, name: str, reload_weights: bool) -> None:
        model, pristine = self._models[name], self._pristine[name]
        _remove_hooks(model)
        model.cfg.__dict__.clear()
        model.cfg.__dict__.update(copy.deepcopy(pristine.config))
        if reload_weights:
            current = model.state_dict()
            same_layout = current.keys() == pristine.state.keys() and all(
                current[k].dtype == v.dtype and current[k].device == v.device for k, v in pristine.state.items())
            if not same_layout:  # modules replaced, or the model moved to another dtype/device: load it afresh
                del self._models[name], self._pristine[name]
                self.model(name)
                return
            with torch.no_grad():
                model.load_state_dict(pristine.state, strict=True)
        for param_name, param in model.named_parameters():
            param.requires_grad_(pristine.requires_grad.get(param_name, True))
            param.grad = None
        model.eval()


def _remove_hooks(model: torch.nn.Module) -> None:
    if isinstance(model, transformer_lens_type("HookedTransformer")):
        model.reset_hooks(including_permanent=True)
    for module in model.modules():
        for attr in _HOOK_DICTS:
            hooks = getattr(module, attr, None)
            if hooks:
                hooks.clear()


def _changed_tensors(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> list[str]:
    current = model.state_dict()
    if current.keys() != saved.keys():
        return sorted(set(current) ^ set(saved))
    return [k for k, v in current.items()
            if v.shape != saved[k].shape or v.dtype != saved[k].dtype or not torch.equal(v.detach(), saved[k])]


# ---- process-wide state --------------------------------------------------------------------------------------------
_THREADS = "Python threads"


def global_state() -> dict[str, object]:
    """Process-wide state an exercise must leave as it found it: torch's defaults, grad mode, threads, global RNG
    seed, global module hooks, and the Python threads running."""
    import threading

    from torch.nn.modules import module as nn_module

    hooks = sum(len(getattr(nn_module, name, {}) or {}) for name in (
        "_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks", "_global_backward_pre_hooks",
        "_global_module_registration_hooks", "_global_parameter_registration_hooks",
        "_global_buffer_registration_hooks"))
    return {
        "torch's default dtype": torch.get_default_dtype(),
        "torch's default device": str(torch.get_default_device()) if hasattr(torch, "get_default_device") else "",
        "grad mode (torch.is_grad_enabled())": torch.is_grad_enabled(),
        "inference mode": torch.is_inference_mode_enabled(),
        "torch's thread count": torch.get_num_threads(),
        "the seed of torch's global RNG (torch.manual_seed)": torch.initial_seed(),
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "anomaly detection": torch.is_anomaly_enabled(),
        "global nn.Module hooks": hooks,
        _THREADS: frozenset(thread.ident for thread in threading.enumerate() if not _owned_by_a_library(thread)),
    }


def _owned_by_a_library(thread: object) -> bool:
    """tqdm's monitor thread, which any progress bar starts and keeps (e.g. `transformer_lens.patching`'s): a
    correct solution may use such a library, and each exercise runs in a fresh worker anyway."""
    return type(thread).__module__ == "tqdm._monitor"


def global_state_changes(before: dict[str, object], after: dict[str, object]) -> str | None:
    """One sentence naming what changed between two `global_state()` snapshots, or None."""
    changed = [f"{name} ({before[name]} -> {after[name]})" for name in before
               if name != _THREADS and before[name] != after.get(name)]
    started = after[_THREADS] - before[_THREADS]  # type: ignore[operator]
    if started:
        changed.append(f"{len(started)} Python thread(s) started and still running")
    if not changed:
        return None
    return ("your function changed process-wide state and left it changed: " + "; ".join(changed) + ". Restore "
            "what you change (e.g. `with torch.no_grad():`, remove global hooks, join your threads, use a "
            "torch.Generator instead of reseeding torch).")
