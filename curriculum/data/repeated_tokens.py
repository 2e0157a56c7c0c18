"""Sequences of random tokens repeated twice: the standard probe for induction heads (days 1-3)."""

from __future__ import annotations

import torch
from jaxtyping import Int
from torch import Tensor


def repeated_tokens(
    batch: int,
    half_len: int,
    d_vocab: int,
    generator: torch.Generator,
    bos_token: int = 0,
    first_token: int = 1,
) -> Int[Tensor, "batch 1+2*half_len"]:
    """BOS followed by `half_len` uniformly random tokens, then the same tokens again.

    Tokens are drawn uniformly from ids `first_token .. d_vocab-1`, so that special tokens placed first are never
    sampled. The defaults fit induction-2l and toy-gpt, whose only special token is `<bos>` = 0: every other token
    (words and names) can be drawn. For another vocabulary pass its own ids, e.g.
    `bos_token=model.tokenizer.bos_token_id`.
    """
    if batch < 1 or half_len < 1:
        raise ValueError(f"batch and half_len must be positive, got {batch} and {half_len}")
    if not 0 <= first_token < d_vocab:
        raise ValueError(f"first_token {first_token} must lie in [0, d_vocab={d_vocab})")
    half = torch.randint(first_token, d_vocab, (batch, half_len), generator=generator)
    bos = torch.full((batch, 1), bos_token)
    return torch.cat([bos, half, half], dim=1)
