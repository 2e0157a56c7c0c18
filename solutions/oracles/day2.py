"""Day 2's mistakes, computed from a case's inputs with plain torch (never solution code) when the references are built
(`python -m checks references --day 2`) and stored with them: grading compares a wrong output against the stored
results, never runs this code. `checks/specs/day2.py` names these functions (`Mistake.computed_by`)."""

from __future__ import annotations

from typing import Any

import torch



def _positional(inputs: dict[str, Any], scale: str, biases: bool) -> torch.Tensor:
    model, layer, head, n = inputs["model"], inputs["layer"], inputs["head"], inputs["n_positions"]
    positions = model.W_pos[:n]
    queries, keys = positions @ model.W_Q[layer, head], positions @ model.W_K[layer, head]
    if biases:
        queries, keys = queries + model.b_Q[layer, head], keys + model.b_K[layer, head]
    d_head = model.cfg.d_head
    scores = queries @ keys.T / (d_head if scale == "d_head" else d_head**0.5)
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def previous_over_all_queries(inputs: dict[str, Any]) -> torch.Tensor:
    patterns = inputs["patterns"]
    return patterns.diagonal(offset=-1, dim1=-2, dim2=-1).sum(dim=-1) / patterns.shape[-1]


def copying_by_columns(inputs: dict[str, Any]) -> torch.Tensor:
    circuits, k = inputs["circuits"], inputs["k"]
    top = circuits.topk(k, dim=-2).indices  # [*batch, k, column]
    columns = torch.arange(circuits.shape[-1], device=circuits.device)
    return (top == columns).any(dim=-2).float().mean(dim=-1)


def eigenvalue_abs_of_sum(inputs: dict[str, Any]) -> torch.Tensor:
    from transformer_lens import FactoredMatrix

    model = inputs["model"]
    eigenvalues = FactoredMatrix(model.W_E @ model.W_V, model.W_O @ model.W_U).eigenvalues
    return eigenvalues.sum(dim=-1).abs() / eigenvalues.abs().sum(dim=-1)


def composition_reversed(inputs: dict[str, Any]) -> torch.Tensor:
    left, right = inputs["left"], inputs["right"]
    products = torch.einsum("jab,ibc->ijac", right, left)
    return products.norm(dim=(-2, -1)) / (left.norm(dim=(-2, -1))[:, None] * right.norm(dim=(-2, -1))[None, :])


def _k_circuit(inputs: dict[str, Any], moved_on_query_side: bool, scale: str) -> torch.Tensor:
    model = inputs["model"]
    prev_layer, prev_head, layer, head = (inputs[name] for name in ("prev_layer", "prev_head", "layer", "head"))
    ov = model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head]
    query_input = model.W_E @ ov if moved_on_query_side else model.W_E
    key_input = model.W_E if moved_on_query_side else model.W_E @ ov
    scores = (query_input @ model.W_Q[layer, head]) @ (key_input @ model.W_K[layer, head]).T
    return scores / (model.cfg.d_head if scale == "d_head" else model.cfg.d_head**0.5)


def _agreement_from(inputs: dict[str, Any], first: int) -> float:
    predicted, actual = inputs["predicted"], inputs["actual"]
    return (predicted[:, first:].argmax(dim=-1) == actual[:, first:].argmax(dim=-1)).float().mean().item()


def positional_by_d_head(inputs: dict[str, Any]) -> torch.Tensor:
    return _positional(inputs, "d_head", True)


def positional_without_biases(inputs: dict[str, Any]) -> torch.Tensor:
    return _positional(inputs, "sqrt", False)


def k_on_query_side(inputs: dict[str, Any]) -> torch.Tensor:
    return _k_circuit(inputs, True, "sqrt")


def k_by_d_head(inputs: dict[str, Any]) -> torch.Tensor:
    return _k_circuit(inputs, False, "d_head")


def agreement_one_late(inputs: dict[str, Any]) -> float:
    return _agreement_from(inputs, inputs["first_query"] + 1)


def agreement_one_early(inputs: dict[str, Any]) -> float:
    return _agreement_from(inputs, inputs["first_query"] - 1)
