"""Fast activation patching and circuit pruning: the course's shared machinery (day 5, its benchmarks and notebooks).

Two jobs, each with the plain loop it must agree with:

- `patch_heads_by_position`: the effect of patching one head's output (`hook_z`) at one position, for every (layer,
  position, head), as `transformer_lens.patching.get_act_patch_attn_head_out_by_pos` computes it with one forward
  pass per patch. Here nothing is recomputed that a patch cannot change: a patch at layer L and position p leaves
  every layer below L and every position before p as they were in the cached run, and the metric reads only the
  last position, so the last layer is evaluated there only. All heads of one (layer, position) share one batch.
- `greedy_prune`: the seed's greedy loop (remove a node when the circuit without it stays within T percent of the
  full model's metric) in batches: the next k candidate removals are evaluated in one batched pass, candidate i on
  the circuit that results if candidates 0..i-1 all succeed; the longest prefix whose guesses held is accepted, plus
  the first candidate that failed (its evaluation was exact too). Each pass starts at the lowest layer a candidate
  touches, from the residual stream that the current circuit produces there. It returns exactly the circuit of
  `greedy_prune_sequential` (up to float round-off in scores that fall within ~1e-6 of the threshold).

Both support GPT-2-style HookedTransformers (LayerNorm or none, learned absolute positions, MLPs or not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

LastLogitsMetric = Callable[[Float[Tensor, "batch d_vocab"]], Float[Tensor, ""]]
"""A metric of the logits at the last position (one row per prompt) returning a scalar."""


def _require_supported(model: HookedTransformer) -> None:
    cfg = model.cfg
    if cfg.positional_embedding_type not in ("standard",) or cfg.parallel_attn_mlp or cfg.n_key_value_heads:
        raise NotImplementedError("the fast path supports GPT-2-style models (standard positions, sequential blocks)")


# ---- activation patching ---------------------------------------------------------------------------------------------
def _attention(model: HookedTransformer, layer: int, queries_in: Tensor, keys: Tensor, values: Tensor,
               query_positions: Tensor) -> Tensor:
    """Attention output (with b_O) for queries at `query_positions` over all keys. queries_in: [n, q, d_model]
    (after ln1); keys, values: [n, kv, head, d_head]; a query at position t sees keys 0..t."""
    attn = model.blocks[layer].attn
    q = torch.einsum("nqd,hde->nqhe", queries_in, model.W_Q[layer]) + model.b_Q[layer]
    scores = torch.einsum("nqhe,nkhe->nhqk", q, keys) / attn.attn_scale
    causal = torch.arange(keys.shape[1], device=keys.device)[None, :] > query_positions[:, None]
    scores = scores.masked_fill(causal, float("-inf"))
    z = torch.einsum("nhqk,nkhe->nqhe", scores.softmax(dim=-1), values)
    return torch.einsum("nqhe,hed->nqd", z, model.W_O[layer]) + model.b_O[layer]


def _mlp_residual(model: HookedTransformer, layer: int, resid_mid: Tensor) -> Tensor:
    block = model.blocks[layer]
    if model.cfg.attn_only:
        return resid_mid
    return resid_mid + block.mlp(block.ln2(resid_mid))


@torch.no_grad()
def patch_heads_by_position(
    model: HookedTransformer,
    corrupted_tokens: Int[Tensor, "batch pos"],
    clean_z: Sequence[Float[Tensor, "batch pos head d_head"]],
    metric: LastLogitsMetric,
) -> Float[Tensor, "layer pos head"]:
    """metric(last-position logits) of the corrupted run with `hook_z` of one (layer, position, head) set to its
    clean value, for every (layer, position, head); the same numbers as
    `get_act_patch_attn_head_out_by_pos(model, corrupted_tokens, clean_cache, metric_on_full_logits)` (float32
    round-off aside) when the metric reads the last position only. clean_z[layer]: the clean run's hook_z."""
    _require_supported(model)
    cfg = model.cfg
    n_layers, n_heads = cfg.n_layers, cfg.n_heads
    batch, seq = corrupted_tokens.shape
    names = ("hook_resid_mid", "hook_resid_post", "attn.hook_k", "attn.hook_v", "attn.hook_z")
    _, cache = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n.endswith(names))
    results = torch.empty(n_layers, seq, n_heads, device=corrupted_tokens.device)
    unpatched_final = cache[f"blocks.{n_layers - 1}.hook_resid_post"][:, -1]
    unpatched = metric(_unembed_last(model, unpatched_final)).item()
    last = torch.tensor([seq - 1], device=corrupted_tokens.device)
    for layer in range(n_layers):
        z_change = clean_z[layer] - cache["z", layer]  # [batch, pos, head, d_head]
        # Each head's own contribution to the attention output at each position: [head, batch, pos, d_model].
        out_change = torch.einsum("bphe,hed->hbpd", z_change, model.W_O[layer])
        for position in range(seq):
            if layer == n_layers - 1 and position != seq - 1:
                results[layer, position] = unpatched  # the last position, all the metric reads, is untouched
                continue
            resid = cache["resid_mid", layer][None, :, position] + out_change[:, :, position]  # [head, batch, d]
            resid = _mlp_residual(model, layer, resid)
            tail = torch.cat([resid[:, :, None], cache["resid_post", layer][None, :, position + 1:].expand(
                n_heads, -1, -1, -1)], dim=2).flatten(0, 1)  # [head*batch, seq - position, d_model]
            tail_positions = torch.arange(position, seq, device=tail.device)
            for later in range(layer + 1, n_layers):
                block = model.blocks[later]
                normed = block.ln1(tail)
                k = torch.einsum("ntd,hde->nthe", normed, model.W_K[later]) + model.b_K[later]
                v = torch.einsum("ntd,hde->nthe", normed, model.W_V[later]) + model.b_V[later]
                prefix_k = cache["k", later][:, :position].repeat(n_heads, 1, 1, 1)
                prefix_v = cache["v", later][:, :position].repeat(n_heads, 1, 1, 1)
                keys, values = torch.cat([prefix_k, k], dim=1), torch.cat([prefix_v, v], dim=1)
                if later < n_layers - 1:
                    tail = tail + _attention(model, later, normed, keys, values, tail_positions)
                    tail = _mlp_residual(model, later, tail)
                else:  # the last layer: only the last position matters
                    tail = tail[:, -1:] + _attention(model, later, normed[:, -1:], keys, values, last)
                    tail = _mlp_residual(model, later, tail)
            final = tail[:, -1].unflatten(0, (n_heads, batch))
            logits = _unembed_last(model, final)
            results[layer, position] = torch.stack([metric(logits[h]) for h in range(n_heads)])
    return results


def _unembed_last(model: HookedTransformer, resid: Tensor) -> Tensor:
    return model.ln_final(resid) @ model.W_U + model.b_U


# ---- mean ablation and greedy pruning --------------------------------------------------------------------------------
@dataclass
class MeanAblation:
    """Evaluates circuits by mean ablation: `hook_z` of every (layer, position, head) outside the circuit's keep mask
    is replaced by `means` (its mean over a reference dataset), everything inside keeps the run's own value.

    score(keep) = 100 * metric(ablated logits) / metric(clean logits): the circuit's faithfulness in percent.
    """

    model: HookedTransformer
    tokens: Int[Tensor, "batch pos"]
    means: Float[Tensor, "layer pos head d_head"]
    metric: Callable[[Float[Tensor, "batch pos d_vocab"]], Float[Tensor, ""]]

    def __post_init__(self) -> None:
        with torch.no_grad():
            self.full_metric = self.metric(self.model(self.tokens)).item()

    def _hooks(self, keep: Bool[Tensor, "circuits layer pos head"], first_layer: int) -> list:
        n_circuits, batch = keep.shape[0], self.tokens.shape[0]

        def ablate(z: Tensor, hook, layer: int) -> Tensor:
            mask = keep[:, layer].repeat_interleave(batch, dim=0)[..., None]  # [circuits*batch, pos, head, 1]
            return torch.where(mask, z, self.means[layer].to(z.dtype))

        return [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: ablate(z, hook, layer))
                for layer in range(first_layer, self.model.cfg.n_layers)]

    @torch.no_grad()
    def resid_at(self, keep: Bool[Tensor, "layer pos head"], layer: int) -> Float[Tensor, "batch pos d_model"]:
        """The residual stream entering `layer` under circuit `keep`."""
        if layer == 0:
            raise ValueError("layer 0 starts from the tokens: pass first_layer=0 to `scores` instead")
        return self.model.run_with_hooks(self.tokens, stop_at_layer=layer, fwd_hooks=self._hooks(keep[None], 0))

    @torch.no_grad()
    def scores(self, keep: Bool[Tensor, "circuits layer pos head"], first_layer: int = 0,
               resid: Tensor | None = None) -> Float[Tensor, "circuits"]:
        """Faithfulness (percent) of each circuit, all in one batched pass starting at `first_layer` from `resid`
        (the residual stream entering it, identical for every circuit), or from the tokens when first_layer is 0."""
        n_circuits, batch = keep.shape[0], self.tokens.shape[0]
        hooks = self._hooks(keep, first_layer)
        if first_layer == 0:
            logits = self.model.run_with_hooks(self.tokens.repeat(n_circuits, 1), fwd_hooks=hooks)
        else:
            logits = self.model.run_with_hooks(resid.repeat(n_circuits, 1, 1), start_at_layer=first_layer,
                                               fwd_hooks=hooks)
        per_circuit = logits.unflatten(0, (n_circuits, batch))
        return torch.stack([100 * self.metric(c) / self.full_metric for c in per_circuit]).cpu()


def greedy_prune_sequential(ablation: MeanAblation, nodes: Bool[Tensor, "node layer pos head"],
                            threshold: float) -> Bool[Tensor, "node"]:
    """The seed's loop, one forward pass per candidate: in order, drop node i when the circuit without it scores
    above 100 - threshold percent. The circuit starts as the union of all nodes; entries no node covers stay
    ablated throughout. Returns which nodes are kept."""
    kept = torch.ones(nodes.shape[0], dtype=torch.bool)
    for i in range(nodes.shape[0]):
        trial = kept.clone()
        trial[i] = False
        if 100 - ablation.scores(_union(nodes, trial)[None])[0].item() < threshold:
            kept = trial
    return kept


def greedy_prune(ablation: MeanAblation, nodes: Bool[Tensor, "node layer pos head"], threshold: float,
                 speculation: int = 8, max_speculation: int = 64) -> Bool[Tensor, "node"]:
    """The same circuit as `greedy_prune_sequential`, evaluating up to `speculation` candidates per batched pass
    (doubled after a pass whose guesses all held, halved after one that failed at once, within [1,
    max_speculation]). See the module docstring."""
    n_nodes = nodes.shape[0]
    layers_of = [int(torch.nonzero(node.any(dim=(1, 2)))[0]) if node.any() else ablation.model.cfg.n_layers
                 for node in nodes]
    kept = torch.ones(n_nodes, dtype=torch.bool)
    i, k = 0, max(1, speculation)
    while i < n_nodes:
        batch = list(range(i, min(i + k, n_nodes)))
        trials = []
        trial = kept.clone()
        for j in batch:  # candidate j assumes every earlier candidate of this pass was removed
            trial = trial.clone()
            trial[j] = False
            trials.append(trial)
        keeps = torch.stack([_union(nodes, t) for t in trials])
        first = min(layers_of[j] for j in batch)
        first = min(first, ablation.model.cfg.n_layers - 1)
        resid = ablation.resid_at(_union(nodes, kept), first) if first > 0 else None
        scores = ablation.scores(keeps, first, resid)
        accepted = 0
        for score in scores.tolist():
            if 100 - score < threshold:
                accepted += 1
            else:
                break
        for j in batch[:accepted]:
            kept[j] = False
        i += accepted + (1 if accepted < len(batch) else 0)  # the first failure is decided too: it stays
        k = min(max_speculation, k * 2) if accepted == len(batch) else max(1, k // 2 if accepted == 0 else k)
    return kept


def _union(nodes: Bool[Tensor, "node layer pos head"], kept: Bool[Tensor, "node"]) -> Bool[Tensor, "layer pos head"]:
    return (nodes & kept.to(nodes.device)[:, None, None, None]).any(dim=0)


def head_nodes(n_layers: int, n_heads: int, seq: int, positions: Sequence[int] | None = None,
               order: str = "last_layer_first") -> Bool[Tensor, "node layer pos head"]:
    """One node per head covering `positions` (default: all), in the seed's order: layers from last to first,
    heads in increasing order within a layer (order="first_layer_first" reverses the layers)."""
    layers = range(n_layers - 1, -1, -1) if order == "last_layer_first" else range(n_layers)
    cover = torch.zeros(seq, dtype=torch.bool)
    cover[list(range(seq)) if positions is None else list(positions)] = True
    nodes = torch.zeros(n_layers * n_heads, n_layers, seq, n_heads, dtype=torch.bool)
    for i, (layer, head) in enumerate((l, h) for l in layers for h in range(n_heads)):
        nodes[i, layer, :, head] = cover
    return nodes


def head_position_nodes(n_layers: int, n_heads: int, seq: int, positions: Sequence[int],
                        order: str = "last_layer_first") -> Bool[Tensor, "node layer pos head"]:
    """One node per (head, position) for the given positions, ordered by layer (last first), then head, then
    position in the order given."""
    layers = range(n_layers - 1, -1, -1) if order == "last_layer_first" else range(n_layers)
    triples = [(l, h, p) for l in layers for h in range(n_heads) for p in positions]
    nodes = torch.zeros(len(triples), n_layers, seq, n_heads, dtype=torch.bool)
    for i, (layer, head, position) in enumerate(triples):
        nodes[i, layer, position, head] = True
    return nodes
