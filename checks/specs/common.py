"""What every day's spec shares: the zoo's model names, the type of an input builder, and seeded input batches.

The form of a day's spec (checks/specs/dayN.py): `DAY`, `MODULE` (the exercise module's name) and `MODEL` (the
day's model, one of the names below) at the top; input builders typed `InputBuilder`; `Check(...)` called
directly; batches that two days build alike come from here.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from checks.spec import GradingEnv
from curriculum.data.induction_corpus import FIRST_WORD_TOKEN, stories
from curriculum.data.repeated_tokens import repeated_tokens

INDUCTION_2L = "induction-2l"
ARRAY_2L1H = "array-2l1h"
TOY_GPT = "toy-gpt"

InputBuilder = Callable[[GradingEnv], dict[str, Any]]
"""Builds one case's keyword arguments on the grading device from the course's seeded generators."""


def repeated_batch(env: GradingEnv, model: str, batch: int, half_len: int, seed: int) -> torch.Tensor:
    """`batch` rows of random word tokens repeated twice, over `model`'s vocabulary (no `<bos>`)."""
    d_vocab = env.model(model).cfg.d_vocab
    return repeated_tokens(batch, half_len, d_vocab, env.generator(seed), first_token=FIRST_WORD_TOKEN).to(env.device)


def array_indexing_batch(batch: int, generator: torch.Generator) -> torch.Tensor:
    """`batch` examples of day 4's array-indexing task drawn with `generator`, as array-2l1h was trained on. The
    sampler is the training recipe's (`curriculum.models.recipes.array_indexing_data`), imported when called: the
    recipes import transformer_lens, which the grading supervisor never does (only its workers build inputs)."""
    from curriculum.models.recipes.array_indexing_data import array_indexing_batch as sample

    return sample(batch, generator)


def story_batch(env: GradingEnv, batch: int, length: int, seed: int) -> torch.Tensor:
    """The first `length` tokens of `batch` held-in stories of induction-2l's synthetic language."""
    return stories(batch, env.generator(seed))[:, :length].to(env.device)
