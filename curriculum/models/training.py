"""Train a zoo model from its recipe and write its folder: config, weights, tokenizer and model card."""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer, HookedTransformerConfig

from curriculum.models.card import write_card, write_training_facts
from curriculum.models.loading import CONFIG_FILE, WEIGHTS_FILE, _resolve_device, load_from_dir, model_dir
from curriculum.models.recipes import Recipe
from curriculum.models.tokenizer import save_word_tokenizer


@dataclass
class TrainingRun:
    """What a training run did and measured: everything its model card reports."""

    recipe: Recipe
    steps: int
    seed: int
    device: str
    wall_time_s: float
    final_train_loss: float
    measurements: dict[str, Any]
    out: Path


def _init_model(recipe: Recipe, device: torch.device, seed: int) -> HookedTransformer:
    """A freshly initialised model; the init is seeded without disturbing the caller's global RNG state."""
    config = HookedTransformerConfig(**recipe.config, device=str(device))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.manual_seed(seed)
        model = HookedTransformer(config)
    return model.to(device, print_details=False)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak learning rate."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def save_model(model: HookedTransformer, recipe: Recipe, out: Path) -> None:
    """Write the zoo folder format: config.json, model.safetensors and the tokenizer files."""
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(recipe.config, indent=2) + "\n")
    state = {
        key: value.detach().cpu().contiguous()
        for key, value in model.state_dict().items()
        if not key.endswith(("mask", "IGNORE"))
    }
    save_file(state, str(out / WEIGHTS_FILE))
    (out / WEIGHTS_FILE).chmod(0o644)
    save_word_tokenizer(out, recipe.vocab, recipe.bos_word)


def train(
    recipe: Recipe,
    device: str | torch.device | None = None,
    steps: int | None = None,
    out: str | Path | None = None,
    seed: int | None = None,
    progress: bool = True,
    write_model_card: bool = True,
    cpu_threads: int | None = 1,
) -> TrainingRun:
    """Train `recipe` for `steps` (default: the recipe's), save the model to `out` (default: its zoo folder),
    measure the saved model, and write its card. Seeded: the same arguments give the same weights on one device.

    `cpu_threads` caps torch's CPU threads during the run (restored after): these models are small, and on a
    shared CPU one thread is several times faster than two that wait on each other. None leaves it unchanged.
    """
    threads = torch.get_num_threads()
    if cpu_threads is not None:
        torch.set_num_threads(cpu_threads)
    try:
        return _train(recipe, device, steps, out, seed, progress, write_model_card)
    finally:
        torch.set_num_threads(threads)


def _train(
    recipe: Recipe,
    device: str | torch.device | None,
    steps: int | None,
    out: str | Path | None,
    seed: int | None,
    progress: bool,
    write_model_card: bool,
) -> TrainingRun:
    resolved = _resolve_device(device)
    steps = recipe.steps if steps is None else steps
    seed = recipe.seed if seed is None else seed
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    out = Path(out) if out is not None else model_dir(recipe.name)
    model = _init_model(recipe, resolved, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(step, min(recipe.warmup_steps, steps), steps)
    )
    data = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    model.train()
    recent: list[float] = []
    bar = tqdm(range(steps), desc=f"train {recipe.name}", disable=not progress)
    for step in bar:
        tokens = recipe.sample_batch(recipe.batch_size, data).to(resolved)
        loss = recipe.loss(model(tokens), tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        recent = (recent + [loss.item()])[-50:]
        if step % 25 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
    wall_time = time.perf_counter() - start
    save_model(model, recipe, out)
    final_loss = sum(recent) / len(recent)
    facts = {
        "steps": steps,
        "seed": seed,
        "device": str(resolved),
        "cpu_threads": torch.get_num_threads(),
        "wall_time_s": round(wall_time, 1),
        "final_train_loss": final_loss,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "versions": versions(),
    }
    write_training_facts(out, facts)
    measurements = recipe.measure(load_from_dir(out, resolved))
    if write_model_card:
        write_card(recipe, facts, measurements, out)
    return TrainingRun(recipe, steps, seed, str(resolved), wall_time, final_loss, measurements, out)


def versions() -> dict[str, str]:
    """Library versions a card records."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformer_lens": importlib.metadata.version("transformer_lens"),
        "transformers": importlib.metadata.version("transformers"),
    }
