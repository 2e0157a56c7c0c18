"""Training recipes of the zoo models: architecture, vocabulary, data, optimiser settings and measurements.

A recipe is data plus three functions; `curriculum.models.training.train` runs any of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer


@dataclass(frozen=True)
class Bar:
    """A behaviour a shipped model must show: `metric` at least `minimum` and/or at most `maximum`."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None

    def holds(self, value: float) -> bool:
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def __str__(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum} <= {self.metric} <= {self.maximum}"
        return f"{self.metric} >= {self.minimum}" if self.minimum is not None else f"{self.metric} <= {self.maximum}"


@dataclass(frozen=True)
class Recipe:
    """How to build, train and measure one zoo model.

    config: `HookedTransformerConfig` keyword arguments (device and seed are set by the trainer).
    vocab: the word of each token id; `bos_word` is BOS, end-of-text and padding.
    sample_batch(batch, generator): a training batch of token ids.
    loss(logits, tokens): the training loss.
    measure(model): the card's measurements, name -> number (or a short text, e.g. a list of heads).
    bars: what the shipped weights must show (checked in tests/library/test_models.py).
    description: markdown for the model card: what the model is and what it was trained on.
    """

    name: str
    config: dict[str, Any]
    vocab: list[str]
    bos_word: str
    sample_batch: Callable[[int, torch.Generator], Int[Tensor, "batch seq"]]
    loss: Callable[[Float[Tensor, "batch seq vocab"], Int[Tensor, "batch seq"]], Tensor]
    measure: Callable[[HookedTransformer], dict[str, Any]]
    bars: tuple[Bar, ...]
    description: str
    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 0


RECIPE_MODULES: dict[str, str] = {
    "induction-2l": "curriculum.models.recipes.induction_2l",
    "array-2l1h": "curriculum.models.recipes.array_2l1h",
    "toy-gpt": "curriculum.models.recipes.toy_gpt",
}


def get_recipe(name: str) -> Recipe:
    """The recipe of zoo model `name`."""
    if name not in RECIPE_MODULES:
        raise ValueError(f"no recipe named {name!r}; the zoo has {', '.join(RECIPE_MODULES)}")
    return importlib.import_module(RECIPE_MODULES[name]).RECIPE
