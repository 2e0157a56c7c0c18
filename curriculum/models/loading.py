"""Load zoo models from their shipped folders, and pretrained names from the hub for learners who have it."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformer_lens import HookedTransformer, HookedTransformerConfig
from transformers import AutoTokenizer

ZOO_DIR = Path(__file__).resolve().parent
ZOO: tuple[str, ...] = ("induction-2l", "array-2l1h", "toy-gpt")
"""Names of the course's own models, each shipped in `curriculum/models/<name>/`."""

ZOO_STAND_INS: dict[str, str] = {
    "attn-only-2l": "induction-2l",
    "attn-only-1l": "induction-2l",
    "attn-only-3l": "induction-2l",
    "attn-only-4l": "induction-2l",
    "gpt2-small": "toy-gpt",
    "gpt2": "toy-gpt",
    "gpt2-medium": "toy-gpt",
}
"""The zoo model that plays the part of a pretrained one in this course."""

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "MODEL_CARD.md"


def model_dir(name: str) -> Path:
    """The folder holding a zoo model's files."""
    if name not in ZOO:
        raise ValueError(f"{name!r} is not a zoo model; the zoo has {', '.join(ZOO)}")
    return ZOO_DIR / name


def _resolve_device(device: str | torch.device | None) -> torch.device:
    """CPU unless asked otherwise; a clear error when CUDA is asked for but absent."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device; use device='cpu'")
    return device


def read_config(directory: str | Path) -> HookedTransformerConfig:
    """The `HookedTransformerConfig` stored as keyword arguments in `<directory>/config.json`."""
    kwargs = json.loads((Path(directory) / CONFIG_FILE).read_text())
    return HookedTransformerConfig(**kwargs)


def build_model(
    config: HookedTransformerConfig, tokenizer_dir: str | Path, device: torch.device
) -> HookedTransformer:
    """A fresh model with its own tokenizer (transformer_lens mutates the tokenizer it is given, so one per model).

    Its random initialisation is drawn under `torch.random.fork_rng`, so building (or loading) a model never moves
    the caller's global RNG state.
    """
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config.device = str(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(config, tokenizer=tokenizer)
    return model.to(device, print_details=False)


def load_from_dir(directory: str | Path, device: str | torch.device | None = None) -> HookedTransformer:
    """Load a model saved in the zoo's folder format (config.json, model.safetensors, tokenizer files)."""
    directory = Path(directory)
    resolved = _resolve_device(device)
    model = build_model(read_config(directory), directory, resolved)
    state = load_file(str(directory / WEIGHTS_FILE), device=str(resolved))
    result = model.load_state_dict(state, strict=False)  # the files hold no attention-mask/IGNORE buffers
    missing = [key for key in result.missing_keys if not key.endswith(("mask", "IGNORE"))]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"{directory / WEIGHTS_FILE} does not match its config: missing {missing}, "
            f"unexpected {result.unexpected_keys}"
        )
    model.eval()
    return model


def load_model(name: str, device: str | torch.device | None = None) -> HookedTransformer:
    """The zoo model `name` (see ZOO), offline, on CPU unless `device` says otherwise.

    Any other name is handed to `HookedTransformer.from_pretrained` (it needs the model hub). With the hub
    switched off (HF_HUB_OFFLINE=1), such a name fails at once and says which zoo model to use instead.
    """
    if name in ZOO:
        return load_from_dir(model_dir(name), device)
    stand_in = ZOO_STAND_INS.get(name)
    advice = f"use load_model({stand_in!r}), the course's own model in its place" if stand_in else (
        f"the course's own models load offline: {', '.join(ZOO)}"
    )
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise RuntimeError(f"{name!r} is a pretrained model on the hub, and HF_HUB_OFFLINE is set; {advice}")
    try:
        return HookedTransformer.from_pretrained(name, device=str(_resolve_device(device)))
    except Exception as error:  # the hub is unreachable, or the name is unknown to transformer_lens
        raise RuntimeError(f"could not load pretrained {name!r} ({error}); {advice}") from error
