"""Arithmetic number sequences for `toy-gpt` (day 5): "3 5 7 9 11" continues with 13.

A sequence has a start in [0, MAX_START], a constant step in STEPS and LENGTHS terms, all at most MAX_NUMBER.
A (start, step) pair is held out when `held_out_progression` says so: no training sequence starts with it, and
evaluation uses only such pairs. Every number is seen in training, and since an arithmetic sequence is a window of a
longer one, a held-out prompt's later terms do occur inside training sequences with other starts: what is held out
is the prompt as a whole, not its numbers or steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from curriculum.data.toy_vocab import BOS_TOKEN, MAX_NUMBER, NUMBER_OFFSET, VOCAB

STEPS = tuple(range(1, 10))
LENGTHS = (4, 8)
"""Fewest and most numbers shown in a prompt (inclusive)."""
MAX_START = 150


def held_out_progression(start: int, step: int) -> bool:
    """Whether the (start, step) pair is reserved for evaluation (about an eleventh of the pairs).

    The modulus 11 is a prime above every step, so for each step the held-out starts form one residue class whose
    sequences still run through every residue: no step is held out on a whole class of numbers. (A rule modulo 7
    held out every step-7 sequence of multiples of 7, numbers that training then never showed with that step.)
    """
    return (3 * start + 5 * step) % 11 == 0


@dataclass(frozen=True)
class NumberSequences:
    """Prompts of `length` numbers after BOS; `answers` holds the number that comes next (as a token id)."""

    tokens: Int[Tensor, "batch seq"]
    answers: Int[Tensor, "batch"]

    def texts(self) -> list[str]:
        """The prompts as text, without BOS."""
        return [" ".join(VOCAB[t] for t in row[1:].tolist()) for row in self.tokens]


def number_token(n: int | Tensor) -> int | Tensor:
    """Token id of the number n."""
    return n + NUMBER_OFFSET


def number_sequences(
    n: int, length: int, generator: torch.Generator, split: str = "held_out"
) -> NumberSequences:
    """`n` sequences of `length` numbers (all of the same length, so they stack) from `split`."""
    if not LENGTHS[0] <= length <= LENGTHS[1]:
        raise ValueError(f"length must lie in {LENGTHS}, got {length}")
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    rows, answers = [], []
    while len(rows) < n:
        step = STEPS[int(torch.randint(len(STEPS), (1,), generator=generator))]
        start = int(torch.randint(MAX_START + 1, (1,), generator=generator))
        if start + length * step > MAX_NUMBER or held_out_progression(start, step) != (split == "held_out"):
            continue
        numbers = [start + i * step for i in range(length + 1)]
        rows.append([BOS_TOKEN] + [int(number_token(x)) for x in numbers[:-1]])
        answers.append(int(number_token(numbers[-1])))
    return NumberSequences(torch.tensor(rows), torch.tensor(answers))


def next_number_accuracy(logits: Float[Tensor, "batch seq vocab"], sequences: NumberSequences) -> float:
    """Fraction of sequences whose argmax prediction at the last position is the next number."""
    predictions = logits[:, -1].argmax(dim=-1).cpu()
    return (predictions == sequences.answers).float().mean().item()
