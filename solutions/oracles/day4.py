"""Day 4's mistakes and the reference of `predicted_read_positions` (the model's behaviour, not the solution's
output), computed from a case's inputs with plain torch (never solution code) when the references are built
(`python -m checks references --day 4`) and stored with them: grading compares a wrong output against the stored
results, never runs this code. `checks/specs/day4.py` names these functions (`Mistake.computed_by`,
`Check.expected_from`)."""

from __future__ import annotations

import functools
from typing import Any

import torch

from checks.specs.common import ARRAY_2L1H as MODEL
from curriculum.data.array_indexing import ANSWER_POSITIONS, LABEL_POSITIONS



def _answer_logits(logits: torch.Tensor, positions: tuple[int, ...]) -> torch.Tensor:
    return logits[:, list(positions)].to(torch.float64)


def loss_read_late(inputs: dict[str, Any]) -> torch.Tensor:
    log_probs = _answer_logits(inputs["logits"], LABEL_POSITIONS).log_softmax(-1)
    return -log_probs.gather(-1, inputs["tokens"][:, list(LABEL_POSITIONS), None]).mean()


def accuracy_read_late(inputs: dict[str, Any]) -> torch.Tensor:
    tokens = inputs["tokens"][:, list(LABEL_POSITIONS)]
    return (inputs["logits"][:, list(LABEL_POSITIONS)].argmax(-1) == tokens).float().mean(0)


def top_key_positions(inputs: dict[str, Any]) -> torch.Tensor:
    model, tokens = inputs["model"], inputs["tokens"]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{inputs['layer']}.attn.hook_pattern")
    return cache["pattern", inputs["layer"]][:, 0, list(ANSWER_POSITIONS)].argmax(-1)


@functools.lru_cache(maxsize=2)
def _zoo_model(device: str) -> Any:
    from curriculum.models import load_model

    with torch.random.fork_rng(devices=[]):  # building a model draws its initial weights from the global RNG
        return load_model(MODEL, device=device)


def layer1_top_positions(inputs: dict[str, Any]) -> torch.Tensor:
    """The reference of `predicted_read_positions`: the key position layer 1 attends to most from each answer
    position (computed when the references are built, so the supervisor judges plain data)."""
    tokens = inputs["tokens"]
    model = _zoo_model(str(tokens.device))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter="blocks.1.attn.hook_pattern")
    return cache["pattern", 1][:, 0, list(ANSWER_POSITIONS)].argmax(-1)
