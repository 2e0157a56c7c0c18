"""Circuit plumbing the learner's days use: residual-stream patching for Day 4, and node masks for Day 5's pruning.

- `logits_with_residual_patch` (Day 4's `residual_patching_effect` calls it): the logits of a cached run with one
  residual stream vector (resid_pre of a layer, or the final resid_post) replaced, as a hooked forward pass gives
  them, by recomputing layers from the patched one and positions from the patched one (earlier positions' keys and
  values are cached; at the patched layer only the patched position gets new queries, keys and values), the last
  layer at the positions the metric reads only. It supports GPT-2-style models with standard or shortformer
  positions (array-2l1h).
- `head_nodes`, `head_position_nodes`: the node masks `nodes[node, layer, pos, head]` Day 5's greedy pruning visits,
  in a public mean-ablation study's order.

No exercise's answer lives here: the fast patching and pruning that bench/ times against the learner-style loops are
in bench/fast_circuits.py, which the learner's distribution does not ship. Weights are read from each block
(`model.blocks[L].attn.W_K`): `model.W_K[L]` stacks every layer's matrix on each access.
"""

from __future__ import annotations

from typing import Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.components import LayerNorm, LayerNormPre

_FUSED_ACTIVATIONS = {
    "gelu_new": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),  # the same function, one fused kernel
    "gelu_pytorch_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "gelu": torch.nn.functional.gelu,
    "relu": torch.relu,
}


def _mlp_residual(model: HookedTransformer, layer: int, resid_mid: Tensor) -> Tensor:
    block = model.blocks[layer]
    if model.cfg.attn_only:
        return resid_mid
    activation = _FUSED_ACTIVATIONS.get(model.cfg.act_fn)
    if activation is None or model.cfg.gated_mlp:
        return resid_mid + block.mlp(block.ln2(resid_mid))
    mlp = block.mlp
    hidden = activation(torch.nn.functional.linear(_normalize(block.ln2, resid_mid), mlp.W_in.T, mlp.b_in))
    return resid_mid + torch.nn.functional.linear(hidden, mlp.W_out.T, mlp.b_out)


# ---- residual-stream patching ----------------------------------------------------------------------------------------
def _require_residual_supported(model: HookedTransformer) -> None:
    cfg = model.cfg
    if (cfg.positional_embedding_type not in ("standard", "shortformer") or cfg.parallel_attn_mlp
            or cfg.n_key_value_heads or cfg.use_normalization_before_and_after or cfg.attention_dir != "causal"
            or (cfg.attn_scores_soft_cap or 0) > 0):
        raise NotImplementedError("residual patching supports GPT-2-style causal models (standard or shortformer "
                                  "positions, sequential blocks, pre-LayerNorm or none)")


def residual_patching_names(model: HookedTransformer) -> list[str]:
    """The hook names `logits_with_residual_patch` reads from a cache: the residual stream entering every layer and
    leaving the last one, and every layer's queries, keys and values."""
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    names.append(f"blocks.{n_layers - 1}.hook_resid_post")
    names += [f"blocks.{layer}.attn.hook_{qkv}" for layer in range(n_layers) for qkv in "qkv"]
    return names


@torch.no_grad()
def run_for_residual_patching(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> tuple[Float[Tensor, "batch pos d_vocab_out"], ActivationCache]:
    """Logits and the cache of `residual_patching_names` of one plain run of `tokens`."""
    names = set(residual_patching_names(model))
    return model.run_with_cache(tokens, names_filter=lambda name: name in names)


def _attention_inputs(model: HookedTransformer, layer: int, resid: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    """The inputs of queries and keys, and of values, of `layer` at `positions` ([n, t, d_model] each): ln1 of the
    residual stream; a shortformer model adds its positional embedding to the first (never to the residual stream)."""
    normed = model.blocks[layer].ln1(resid)
    if model.cfg.positional_embedding_type == "shortformer":
        return normed + model.W_pos[positions], normed
    return normed, normed


def _project(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """x [n, t, d_model] through per-head weight [head, d_model, d_head] and bias [head, d_head]: [n, t, head, d_head],
    as one fused matrix product plus bias (few kernels: on small tensors their count, not their size, costs)."""
    n_heads, d_model, d_head = weight.shape
    flat = torch.nn.functional.linear(x, weight.transpose(1, 2).reshape(n_heads * d_head, d_model), bias.flatten())
    return flat.unflatten(-1, (n_heads, d_head))


def _causal_z(model: HookedTransformer, layer: int, q: Tensor, keys: Tensor, values: Tensor,
              query_positions: Tensor) -> Tensor:
    """hook_z [n, q, head, d_head] of queries q [n, q, head, d_head] at `query_positions` over keys and values
    [n, kv, head, d_head] of positions 0..kv-1, a query at position t seeing keys 0..t, in one fused kernel."""
    visible = torch.arange(keys.shape[1], device=keys.device)[None, :] <= query_positions[:, None]
    z = torch.nn.functional.scaled_dot_product_attention(
        q.transpose(1, 2), keys.transpose(1, 2), values.transpose(1, 2), attn_mask=visible,
        scale=1 / model.blocks[layer].attn.attn_scale)
    return z.transpose(1, 2)


def _normalize(norm: torch.nn.Module, x: Tensor) -> Tensor:
    """What a block's LayerNorm module (TransformerLens's LayerNorm or LayerNormPre) computes, in one fused kernel."""
    if isinstance(norm, LayerNorm):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], norm.w, norm.b, norm.eps)
    if isinstance(norm, LayerNormPre):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], None, None, norm.eps)
    return norm(x)


def _causal_attention(model: HookedTransformer, layer: int, q: Tensor, keys: Tensor, values: Tensor,
                      query_positions: Tensor) -> Tensor:
    """Attention output (with b_O) of queries q [n, q, head, d_head] at `query_positions` over keys and values
    [n, kv, head, d_head] of positions 0..kv-1, a query at position t seeing keys 0..t (`_causal_z`), then W_O."""
    attn = model.blocks[layer].attn
    z = _causal_z(model, layer, q, keys, values, query_positions)
    return torch.nn.functional.linear(z.flatten(2), attn.W_O.flatten(0, 1).T, attn.b_O)


def _unembed(model: HookedTransformer, resid: Tensor) -> Tensor:
    """Logits of final residual-stream vectors; a model without normalisation has no ln_final."""
    if hasattr(model, "ln_final"):
        resid = model.ln_final(resid)
    return resid @ model.W_U + model.b_U


@torch.no_grad()
def logits_with_residual_patch(
    model: HookedTransformer,
    cache: ActivationCache,
    point: int,
    position: int,
    resid: Float[Tensor, "batch d_model"],
    read_positions: Sequence[int],
) -> Float[Tensor, "batch read d_vocab_out"]:
    """Logits at `read_positions` of the cached run (`run_for_residual_patching`) with its residual stream at
    (`point`, `position`) replaced by `resid`: point L < n_layers is blocks.{L}.hook_resid_pre, point n_layers the
    last blocks.{n_layers-1}.hook_resid_post. The same numbers as a hooked forward pass (float32 round-off aside).

    It computes only what the patch can change: layers from `point` on, positions from `position` up to the last
    read one (positions before it attend with their cached keys and values), and the last layer only at the read
    positions; logits at read positions before `position` are the cached run's. Supports GPT-2-style causal models:
    standard or shortformer positional embeddings, pre-LayerNorm (or LayerNormPre, or none), with or without MLPs.
    """
    _require_residual_supported(model)
    n_layers = model.cfg.n_layers
    read = torch.as_tensor(list(read_positions), dtype=torch.long, device=resid.device)
    final = cache[f"blocks.{n_layers - 1}.hook_resid_post"][:, read]  # a copy: [batch, read, d_model]
    changed = read >= position
    if point == n_layers:
        final[:, read == position] = resid[:, None]
        return _unembed(model, final)
    if not changed.any():
        return _unembed(model, final)
    changed_reads = read[changed]
    end = int(changed_reads.max()) + 1
    tail = cache[f"blocks.{point}.hook_resid_pre"][:, position:end].clone()  # [batch, t, d_model]
    tail[:, 0] = resid
    tail_positions = torch.arange(position, end, device=resid.device)
    for layer in range(point, n_layers):
        # The last layer's output matters at the read positions only.
        rows = changed_reads - position if layer == n_layers - 1 else slice(None)
        attn = model.blocks[layer].attn  # its own weights (model.W_K[layer] would stack every layer's first)
        if layer == point:  # only `position` differs from the cached run here: later ones keep their q, k, v
            qk_in, v_in = _attention_inputs(model, layer, tail[:, :1], tail_positions[:1])
            keys, values = cache["k", layer][:, :end].clone(), cache["v", layer][:, :end].clone()
            keys[:, position] = _project(qk_in, attn.W_K, attn.b_K)[:, 0]
            values[:, position] = _project(v_in, attn.W_V, attn.b_V)[:, 0]
            q = cache["q", layer][:, position:end].clone()
            q[:, 0] = _project(qk_in, attn.W_Q, attn.b_Q)[:, 0]
            q = q[:, rows]
        else:
            qk_in, v_in = _attention_inputs(model, layer, tail, tail_positions)
            keys = torch.cat([cache["k", layer][:, :position], _project(qk_in, attn.W_K, attn.b_K)], 1)
            values = torch.cat([cache["v", layer][:, :position], _project(v_in, attn.W_V, attn.b_V)], 1)
            q = _project(qk_in[:, rows], attn.W_Q, attn.b_Q)
        tail, tail_positions = tail[:, rows], tail_positions[rows]
        tail = tail + _causal_attention(model, layer, q, keys, values, tail_positions)
        tail = _mlp_residual(model, layer, tail)
    final[:, changed] = tail
    return _unembed(model, final)


def head_nodes(n_layers: int, n_heads: int, seq: int, positions: Sequence[int] | None = None,
               order: str = "last_layer_first") -> Bool[Tensor, "node layer pos head"]:
    """One node per head covering `positions` (default: all), in that study's order: layers from last to first,
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
