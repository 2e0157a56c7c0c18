"""Day 5's mistakes, computed from a case's inputs with plain torch (never solution code) when the references are built
(`python -m checks references --day 5`) and stored with them: grading compares a wrong output against the stored
results, never runs this code. `checks/specs/day5.py` names these functions (`Mistake.computed_by`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer



def _end_logits(inputs: dict[str, Any], at_last: bool = False) -> torch.Tensor:
    logits = inputs["logits"]
    rows = torch.arange(logits.shape[0], device=logits.device)
    return logits[:, -1] if at_last else logits[rows, inputs["end_positions"]]


def logit_diff_at_last_position(inputs: dict[str, Any]) -> torch.Tensor:
    end = _end_logits(inputs, at_last=True)
    rows = torch.arange(end.shape[0], device=end.device)
    return end[rows, inputs["correct_tokens"]] - end[rows, inputs["wrong_tokens"]]


def logit_diff_flipped(inputs: dict[str, Any]) -> torch.Tensor:
    end = _end_logits(inputs)
    rows = torch.arange(end.shape[0], device=end.device)
    return end[rows, inputs["wrong_tokens"]] - end[rows, inputs["correct_tokens"]]


def range_at_coverage(inputs: dict[str, Any]) -> torch.Tensor:
    values, coverage = inputs["logit_diffs"], inputs["coverage"]
    return torch.quantile(values, torch.tensor([1 - coverage, coverage], dtype=values.dtype, device=values.device))


def end_is_last_column(inputs: dict[str, Any]) -> torch.Tensor:
    tokens = inputs["tokens"]
    is_io, is_s = tokens == inputs["io_tokens"][:, None], tokens == inputs["s_tokens"][:, None]
    s_at = [row.nonzero().flatten() for row in is_s]
    return torch.tensor([[int(is_io[b].nonzero()[0]), int(s_at[b][0]), int(s_at[b][1]), tokens.shape[1] - 1]
                         for b in range(tokens.shape[0])])


def _z_cache(model: HookedTransformer, tokens: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_z"))
    return [cache["z", layer] for layer in range(model.cfg.n_layers)]


def means_over_positions_too(inputs: dict[str, Any]) -> torch.Tensor:
    zs = _z_cache(inputs["model"], inputs["reference_tokens"])
    return torch.stack([z.mean(dim=(0, 1), keepdim=True)[0].expand(z.shape[1:]) for z in zs])


def _ablated(model: HookedTransformer, tokens: torch.Tensor, means: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    hooks = [(f"blocks.{layer}.attn.hook_z",
              lambda z, hook, layer=layer: torch.where(keep[layer][None, :, :, None], z, means[layer]))
             for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


def ablation_inverted(inputs: dict[str, Any]) -> torch.Tensor:
    return _ablated(inputs["model"], inputs["tokens"], inputs["means"], ~inputs["keep"])


def faithfulness_as_fraction(inputs: dict[str, Any]) -> float:
    model, tokens = inputs["model"], inputs["tokens"]
    rows = torch.arange(tokens.shape[0], device=tokens.device)

    def mean_ld(logits: torch.Tensor) -> torch.Tensor:
        end = logits[rows, inputs["end_positions"]]
        return (end[rows, inputs["correct_tokens"]] - end[rows, inputs["wrong_tokens"]]).mean()

    with torch.no_grad():
        full = mean_ld(model(tokens))
    return (mean_ld(_ablated(model, tokens, inputs["means"], inputs["keep"])) / full).item()


def next_is_last_plus_one(inputs: dict[str, Any]) -> torch.Tensor:
    last = inputs["tokens"][:, -1]
    return torch.stack([last + 1, last], dim=1)
