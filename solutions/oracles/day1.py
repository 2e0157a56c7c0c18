"""Day 1's mistakes, computed from a case's inputs with plain torch (never solution code) when the references are built
(`python -m checks references --day 1`) and stored with them: grading compares a wrong output against the stored
results, never runs this code. `checks/specs/day1.py` names these functions (`Mistake.computed_by`)."""

from __future__ import annotations

from typing import Any

import torch



def _pattern_scaled_by(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    seq = q.shape[0]
    scores = torch.einsum("qhd,khd->hqk", q, k) / scale
    future = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=q.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def _stripe_at(inputs: dict[str, Any], shift: int) -> torch.Tensor:
    """Induction scores read `shift` positions right of the induction stripe (key = query - half_len + 1 + shift)."""
    model, tokens, half_len = inputs["model"], inputs["tokens"], inputs["half_len"]
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=tokens.device)

    def record(pattern: torch.Tensor, hook: Any) -> None:
        stripe = pattern.diagonal(offset=1 + shift - half_len, dim1=-2, dim2=-1)
        scores[hook.layer()] = stripe[..., -half_len:].mean(dim=(0, 2))

    with torch.no_grad():
        model.run_with_hooks(tokens, return_type=None,
                             fwd_hooks=[(lambda name: name.endswith("hook_pattern"), record)])
    return scores


def _attribution_to(inputs: dict[str, Any], offset: int) -> torch.Tensor:
    """Direct logit attribution scored against tokens[i + offset] at position i (offset 1 is right)."""
    model, cache, tokens = inputs["model"], inputs["cache"], inputs["tokens"]
    n = tokens.shape[0] - 1
    parts = [cache["embed"][0, :n, None]]
    for layer in range(model.cfg.n_layers):
        parts.append(torch.einsum("phd,hdm->phm", cache["z", layer][0, :n], model.W_O[layer]))
    stack = torch.cat(parts, dim=1)
    if model.cfg.normalization_type in ("LN", "LNPre"):
        stack = stack - stack.mean(dim=-1, keepdim=True)
    if model.cfg.normalization_type is not None:
        stack = stack / cache["ln_final.hook_scale"][0, :n, None]
    return torch.einsum("pcm,mp->pc", stack, model.W_U[:, tokens[offset : offset + n]])


def pattern_scaled_by_d_head(inputs: dict[str, Any]) -> torch.Tensor:
    return _pattern_scaled_by(inputs["q"], inputs["k"], inputs["q"].shape[-1])


def pattern_unscaled(inputs: dict[str, Any]) -> torch.Tensor:
    return _pattern_scaled_by(inputs["q"], inputs["k"], 1.0)


def stripe_at_the_token(inputs: dict[str, Any]) -> torch.Tensor:
    return _stripe_at(inputs, -1)


def stripe_too_late(inputs: dict[str, Any]) -> torch.Tensor:
    return _stripe_at(inputs, 1)


def attribution_to_the_current_token(inputs: dict[str, Any]) -> torch.Tensor:
    return _attribution_to(inputs, 0)
