"""Measurements of zoo models that their cards report and the tests assert: losses, head scores, direct effects.

Every function here is batched (one forward pass for all heads and positions) and runs under `torch.no_grad`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer


@torch.no_grad()
def next_token_losses(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], batch_size: int = 256
) -> Float[Tensor, "batch seq-1"]:
    """Cross-entropy (nats) of predicting tokens[:, i+1] from the logits at position i."""
    losses = []
    for chunk in tokens.split(batch_size):
        chunk = chunk.to(model.cfg.device)
        log_probs = model(chunk).log_softmax(dim=-1)[:, :-1]
        losses.append(-log_probs.gather(-1, chunk[:, 1:, None])[..., 0].cpu())
    return torch.cat(losses)


@torch.no_grad()
def attention_patterns(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "layer batch head query key"]:
    """The attention pattern of every head, from one forward pass."""
    _, cache = model.run_with_cache(
        tokens.to(model.cfg.device), names_filter=lambda name: name.endswith("hook_pattern")
    )
    return torch.stack([cache["pattern", layer].cpu() for layer in range(model.cfg.n_layers)])


def previous_token_scores(patterns: Float[Tensor, "layer batch head query key"]) -> Float[Tensor, "layer head"]:
    """Mean attention from each position (after the first) to the position just before it."""
    return patterns.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1))


def induction_scores(
    patterns: Float[Tensor, "layer batch head query key"], half_len: int
) -> Float[Tensor, "layer head"]:
    """On BOS + a block of `half_len` tokens + the same block: mean attention from each position of the repeat to
    the token just after the earlier occurrence of its own token (key = query - half_len + 1)."""
    seq = patterns.shape[-1]
    if seq != 1 + 2 * half_len:
        raise ValueError(f"patterns cover {seq} positions; expected 1 + 2 * half_len = {1 + 2 * half_len}")
    stripe = patterns.diagonal(offset=1 - half_len, dim1=-2, dim2=-1)  # query q = key + half_len - 1
    return stripe[..., -half_len:].mean(dim=(1, -1))


@torch.no_grad()
def head_direct_effects(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    end_positions: Int[Tensor, "batch"],
    correct: Int[Tensor, "batch"],
    wrong: Int[Tensor, "batch"],
) -> Float[Tensor, "layer head"]:
    """Mean direct effect of each head on the logit difference `correct - wrong` at `end_positions`.

    A head's output at the end position goes straight to the unembedding through the final LayerNorm, whose scale
    is frozen at its value on the clean run (the usual linearisation of direct logit attribution).
    """
    device = model.cfg.device
    tokens, end_positions = tokens.to(device), end_positions.to(device)
    _, cache = model.run_with_cache(
        tokens, names_filter=lambda name: name.endswith("hook_z") or name == "ln_final.hook_scale"
    )
    rows = torch.arange(tokens.shape[0], device=device)
    direction = model.W_U[:, correct.to(device)] - model.W_U[:, wrong.to(device)]  # [d_model, batch]
    effects = []
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer][rows, end_positions]  # [batch, head, d_head]
        out = torch.einsum("bhd,hdm->bhm", z, model.W_O[layer])
        if model.cfg.normalization_type in ("LN", "LNPre"):
            out = out - out.mean(dim=-1, keepdim=True)
        if "ln_final.hook_scale" in cache:
            out = out / cache["ln_final.hook_scale"][rows, end_positions][:, None, :]
        effects.append(torch.einsum("bhm,mb->bh", out, direction).mean(dim=0))
    return torch.stack(effects).cpu()


def top_heads(scores: Float[Tensor, "layer head"], k: int) -> list[tuple[str, float]]:
    """The `k` heads with the largest absolute score, as ("L{layer}H{head}", score), largest first."""
    order = scores.flatten().abs().argsort(descending=True)[:k]
    n_heads = scores.shape[1]
    return [(f"L{i // n_heads}H{i % n_heads}", float(scores.flatten()[i])) for i in order.tolist()]


def heads_above(scores: Float[Tensor, "layer head"], threshold: float) -> list[tuple[str, float]]:
    """The heads scoring at least `threshold`, as ("L{layer}H{head}", score), highest first."""
    n_heads = scores.shape[1]
    order = scores.flatten().argsort(descending=True).tolist()
    flat = scores.flatten()
    return [(f"L{i // n_heads}H{i % n_heads}", float(flat[i])) for i in order if flat[i] >= threshold]


def mean_cross_entropy(logits: Float[Tensor, "batch seq vocab"], tokens: Int[Tensor, "batch seq"]) -> Tensor:
    """The language-modelling loss: mean cross-entropy of every next token."""
    return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())
