"""Day 3's mistakes, computed from a case's inputs with plain torch (never solution code) when the references are built
(`python -m checks references --day 3`) and stored with them: grading compares a wrong output against the stored
results, never runs this code. `checks/specs/day3.py` names these functions (`Mistake.computed_by`)."""

from __future__ import annotations

from typing import Any

import torch



def _table(candidates: torch.Tensor, d_vocab: int) -> torch.Tensor:
    table = torch.zeros(d_vocab, dtype=torch.bool, device=candidates.device)
    table[candidates] = True
    return table


def mask_of_targets(inputs: dict[str, Any]) -> torch.Tensor:
    tokens = inputs["inputs"]
    mask = torch.zeros_like(tokens, dtype=torch.bool)
    mask[:, :-1] = _table(inputs["candidates"], inputs["d_vocab"])[tokens[:, 1:]]
    return mask


def per_sequence_means(inputs: dict[str, Any]) -> float:
    losses, mask = inputs["losses"], inputs["mask"]
    return ((losses * mask).sum(1) / mask.sum(1).clamp(min=1)).mean().item()


def labels_scrubbed(inputs: dict[str, Any]) -> float:
    model, tokens, other = inputs["model"], inputs["tokens"], inputs["other"]
    shuffled = tokens[other]
    with torch.no_grad():
        log_probs = model(shuffled[:, :-1]).log_softmax(-1)
    losses = -log_probs.gather(-1, shuffled[:, 1:, None])[..., 0]
    return losses[_table(inputs["candidates"], model.cfg.d_vocab)[shuffled[:, :-1]]].mean().item()


def percent(inputs: dict[str, Any]) -> torch.Tensor:
    return 100 * (inputs["baseline"] - inputs["scrubbed"]) / (inputs["baseline"] - inputs["clean"])


def _head(inputs: dict[str, Any], q_from: str = "q_input", k_from: str = "k_input", v_from: str = "v_input",
          value_positions: bool = False) -> torch.Tensor:
    """A head's output with its inputs taken from the named arguments (the mistakes mix them up)."""
    model, layer, head = inputs["model"], inputs["layer"], inputs["head"]
    pos = model.W_pos[: inputs["q_input"].shape[1]]
    with torch.no_grad():
        q = (inputs[q_from] + pos) @ model.W_Q[layer, head] + model.b_Q[layer, head]
        k = (inputs[k_from] + pos) @ model.W_K[layer, head] + model.b_K[layer, head]
        v = (inputs[v_from] + (pos if value_positions else 0)) @ model.W_V[layer, head] + model.b_V[layer, head]
        scores = q @ k.transpose(-1, -2) / model.cfg.d_head ** 0.5
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
        return scores.softmax(-1) @ v @ model.W_O[layer, head]


def prev_path_position_0_own(inputs: dict[str, Any]) -> torch.Tensor:
    """The previous-value path with position 0 reading its own value from `tokens` (the key before it clamped to 0)."""
    model, head, tokens, other = inputs["model"], inputs["head"], inputs["tokens"], inputs["other_tokens"]
    seq = tokens.shape[1]
    with torch.no_grad():
        qk = model.W_E[other] + model.W_pos[:seq]
        scores = (qk @ model.W_Q[0, head] + model.b_Q[0, head]) @ (qk @ model.W_K[0, head] + model.b_K[0, head]
                                                                   ).transpose(-1, -2) / model.cfg.d_head ** 0.5
        pattern = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool, device=tokens.device).triu(1),
                                     float("-inf")).softmax(-1)
        other_v = model.W_E[other] @ model.W_V[0, head] + model.b_V[0, head]
        orig_v = model.W_E[tokens] @ model.W_V[0, head] + model.b_V[0, head]
        previous = (torch.arange(seq, device=tokens.device) - 1).clamp(min=0)  # key p - 1, and key 0 for query 0
        reads_previous = torch.arange(seq, device=tokens.device)[None, :] == previous[:, None]  # [query, key]
        values = torch.where(reads_previous[None, :, :, None], orig_v[:, None], other_v[:, None])
        return torch.einsum("bqk,bqkd,dm->bqm", pattern, values, model.W_O[0, head])


def head_q_and_k_swapped(inputs: dict[str, Any]) -> torch.Tensor:
    return _head(inputs, q_from="k_input", k_from="q_input")


def head_value_from_the_query(inputs: dict[str, Any]) -> torch.Tensor:
    return _head(inputs, v_from="q_input")


def head_positions_in_the_value(inputs: dict[str, Any]) -> torch.Tensor:
    return _head(inputs, value_positions=True)
