"""The array-indexing task of day 4: `BOS a0 a1 a2 NL idx elt NL b0 b1 b2`, where b is a with a[idx] = elt.

Token ids 0..MAX_NUM-1 are the numbers themselves, BOS_TOKEN = 50 and NL_TOKEN = 51 (a newline, used as a separator).
The model reads 52 token ids and predicts only the 50 numbers. It is trained to predict b0, b1, b2 at the three
positions before them (NL, b0, b1): those are the ANSWER_POSITIONS whose logits the loss and accuracy use.
Unlike the original practice notebook, idx and elt are drawn per example, not once per batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

LIST_LEN = 3
MAX_NUM = 50
BOS_TOKEN = MAX_NUM
NL_TOKEN = MAX_NUM + 1
D_VOCAB = MAX_NUM + 2
SEQ_LEN = 2 * LIST_LEN + 5  # BOS, list, NL, idx, elt, NL, answer list

VOCAB: list[str] = [str(n) for n in range(MAX_NUM)] + ["BOS", "NL"]
"""The word of each token id, as the tokenizer of array-2l1h decodes it."""

IDX_POSITION = LIST_LEN + 2
ELT_POSITION = LIST_LEN + 3
ANSWER_POSITIONS: tuple[int, ...] = tuple(range(SEQ_LEN - LIST_LEN - 1, SEQ_LEN - 1))
"""Positions whose logits predict the answers b0, b1, b2 (the second NL, b0 and b1)."""
LABEL_POSITIONS: tuple[int, ...] = tuple(range(SEQ_LEN - LIST_LEN, SEQ_LEN))
"""Positions of the answer tokens b0, b1, b2 themselves."""


def array_indexing_batch(batch: int, generator: torch.Generator) -> Int[Tensor, "batch 11"]:
    """Sample `batch` examples of the task; a, idx and elt are drawn independently for every example."""
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    array = torch.randint(0, MAX_NUM, (batch, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (batch,), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch,), generator=generator)
    answer = array.clone()
    answer[torch.arange(batch), idx] = elt
    bos = torch.full((batch, 1), BOS_TOKEN)
    nl = torch.full((batch, 1), NL_TOKEN)
    return torch.cat([bos, array, nl, idx[:, None], elt[:, None], nl, answer], dim=1)


def array_indexing_labels(tokens: Int[Tensor, "batch 11"]) -> Int[Tensor, "batch 3"]:
    """The answer tokens b0, b1, b2 of each example."""
    return tokens[:, LABEL_POSITIONS[0] :]


def array_indexing_loss(logits: Float[Tensor, "batch 11 d_vocab_out"], tokens: Int[Tensor, "batch 11"]) -> Tensor:
    """Mean cross-entropy at the three answer positions only: exactly the loss the model was trained on."""
    answer_logits = logits[:, ANSWER_POSITIONS[0] : ANSWER_POSITIONS[-1] + 1].to(torch.float64)
    labels = array_indexing_labels(tokens)
    return F.cross_entropy(answer_logits.flatten(0, 1), labels.flatten())


def array_indexing_accuracy(
    logits: Float[Tensor, "batch 11 d_vocab_out"], tokens: Int[Tensor, "batch 11"]
) -> Float[Tensor, "3"]:
    """Fraction of examples whose argmax prediction is right, at each of the three answer positions."""
    predictions = logits[:, ANSWER_POSITIONS[0] : ANSWER_POSITIONS[-1] + 1].argmax(dim=-1)
    return (predictions == array_indexing_labels(tokens)).float().mean(dim=0)
