"""The training data, loss and accuracy of `array-2l1h` (the recipe's own code, not a course module).

Day 4's first exercises ask the learner to write these very functions (the sampler, the answer loss, the accuracy),
so they live here, beside the recipe that trains and measures the model, and not in `curriculum.data`, where the
learner is sent for the task's constants. The graders of days 1, 2 and 4 draw their inputs with `array_indexing_batch`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from curriculum.data.array_indexing import ANSWER_POSITIONS, BOS_TOKEN, LABEL_POSITIONS, LIST_LEN, MAX_NUM, NL_TOKEN


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
