"""The array-indexing task of day 4: `BOS a0 a1 a2 NL idx elt NL b0 b1 b2`, where b is a with a[idx] = elt.

Token ids 0..MAX_NUM-1 are the numbers themselves, BOS_TOKEN = 50 and NL_TOKEN = 51 (a newline, used as a separator).
The model reads 52 token ids and predicts only the 50 numbers. It is trained to predict b0, b1, b2 at the three
positions before them (NL, b0, b1): those are the ANSWER_POSITIONS whose logits the loss and accuracy use.
Unlike Connor Kissane's original array-indexing practice problem, idx and elt are drawn per example, not once per
batch. This module holds the task's constants only: the sampler, the loss and the accuracy are exercises of day 4.
"""

from __future__ import annotations

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

