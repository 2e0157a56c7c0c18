"""The training mixture of `toy-gpt`: IOI sentences, number sequences and filler text, one item per row.

Rows have ROW_LEN tokens: BOS, the item, then padding with BOS (`toy_gpt_loss` ignores predictions of padding).
Mixture: IOI_SHARE IOI sentences with their answer (training split of `curriculum.data.ioi`, ABBA and BABA),
NUMBER_SHARE number sequences (training split of `curriculum.data.number_sequences`, 5-16 numbers), the rest filler
sentences about the same names, places and objects.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from curriculum.data.ioi import ioi_prompts
from curriculum.data.number_sequences import MAX_START, STEPS, held_out_progression, number_token
from curriculum.data.toy_vocab import BOS_TOKEN, MAX_NUMBER, NAMES, OBJECTS, PLACES, TOKEN_ID

ROW_LEN = 17
IOI_SHARE = 0.35
NUMBER_SHARE = 0.45

FILLER_SENTENCES: tuple[str, ...] = (
    "N went to the P .",
    "the O was in the P .",
    "N saw a O near the P .",
    "N likes the O .",
    "N had a O .",
    "the P is next to the P .",
    "N found the O at the P .",
    "N was with N in the P .",
)
"""Filler frames: N, P and O stand for a random name, place and object."""


def _pick(options: tuple[str, ...], generator: torch.Generator) -> str:
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def filler_row(generator: torch.Generator) -> list[int]:
    """BOS, then filler sentences until the row is full (the last one cut off)."""
    row = [BOS_TOKEN]
    while len(row) < ROW_LEN:
        fill = {"N": NAMES, "P": PLACES, "O": OBJECTS}
        words = [_pick(fill[w], generator) if w in fill else w for w in _pick(FILLER_SENTENCES, generator).split()]
        row += [TOKEN_ID[w] for w in words]
    return row[:ROW_LEN]


def number_row(generator: torch.Generator) -> list[int]:
    """BOS and a training-split arithmetic sequence of 5 to ROW_LEN - 1 numbers, padded."""
    while True:
        step = STEPS[int(torch.randint(len(STEPS), (1,), generator=generator))]
        start = int(torch.randint(MAX_START + 1, (1,), generator=generator))
        length = int(torch.randint(5, ROW_LEN, (1,), generator=generator))
        if start + (length - 1) * step <= MAX_NUMBER and not held_out_progression(start, step):
            break
    numbers = [int(number_token(start + i * step)) for i in range(length)]
    return [BOS_TOKEN] + numbers + [BOS_TOKEN] * (ROW_LEN - 1 - length)


def toy_gpt_batch(batch: int, generator: torch.Generator) -> Int[Tensor, "batch 17"]:
    """A training batch of the mixture (row kinds drawn per row)."""
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    kinds = torch.rand(batch, generator=generator)
    n_ioi = int((kinds < IOI_SHARE).sum())
    ioi_rows = ioi_prompts(n_ioi, generator, split="train").with_answers() if n_ioi else None
    rows, used = [], 0
    for kind in kinds.tolist():
        if kind < IOI_SHARE:
            rows.append(ioi_rows[used])
            used += 1
        elif kind < IOI_SHARE + NUMBER_SHARE:
            rows.append(torch.tensor(number_row(generator)))
        else:
            rows.append(torch.tensor(filler_row(generator)))
    return torch.stack(rows)


def toy_gpt_loss(logits: Float[Tensor, "batch seq vocab"], tokens: Int[Tensor, "batch seq"]) -> Tensor:
    """Mean cross-entropy of every next token except padding (BOS after the first position)."""
    targets = tokens[:, 1:].clone()
    targets[targets == BOS_TOKEN] = -100
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), ignore_index=-100)
