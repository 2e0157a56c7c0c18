"""The table of hypotheses that the scrubbing benchmark (`bench/scrubbing.py`) and the tests of the fast scrubber
(`tests/library/test_scrubbing.py`) run through `curriculum.library.scrubbing.ScrubbingRun`, its sources, and the
obvious hooked computation of the same table (`straightforward_losses`: one full forward pass with hooks per
hypothesis and resampling), the benchmark's baseline and the tests' oracle.

It holds answers to day 3's exercises (a feature-matched resampler, split-input hooks), so it lives with the
solutions and is never shipped to learners.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from curriculum.library.scrubbing import (ORIG, Hypothesis, PrevValuePath, component_names, identity_source,
                                  sequence_source_from)


def sequence_source(n_sequences: int, seq_len: int, seed: int, device: torch.device | str = "cpu"
                    ) -> Int[Tensor, "batch seq"]:
    """The same position in another sequence, by a seeded permutation of the sequences (`torch.randperm` from a
    generator seeded with `seed`)."""
    perm = torch.randperm(n_sequences, generator=torch.Generator().manual_seed(seed)).to(device)
    return sequence_source_from(perm, seq_len)


def matched_source(feature: Int[Tensor, "batch seq"], valid: Bool[Tensor, "batch seq"], seed: int
                   ) -> Int[Tensor, "batch seq"]:
    """Flat indices of a uniformly random valid (sequence, position) with the same feature value (possibly itself),
    for every valid position; invalid positions map to themselves. Seeded by `seed`."""
    flat_feature = feature.flatten()
    flat_valid = valid.flatten()
    n = flat_feature.numel()
    index = torch.arange(n, device=feature.device)
    pool = index[flat_valid]
    order = torch.argsort(flat_feature[pool], stable=True)
    pool_sorted = pool[order]
    values_sorted = flat_feature[pool_sorted]
    unique, counts = torch.unique_consecutive(values_sorted, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    group = torch.searchsorted(unique, flat_feature[pool])
    u = torch.rand(pool.numel(), generator=torch.Generator().manual_seed(seed)).to(feature.device)
    pick = starts[group] + (u * counts[group]).long().clamp(max=counts[group] - 1)
    result = index.clone()
    result[pool] = pool_sorted[pick]
    return result.view_as(feature)


def previous_token_feature(tokens: Int[Tensor, "batch seq"]) -> tuple[Int[Tensor, "batch seq"], Bool[Tensor, "batch seq"]]:
    """The token before each position (feature) and where it exists (positions >= 1)."""
    previous = torch.zeros_like(tokens)
    previous[:, 1:] = tokens[:, :-1]
    valid = torch.ones_like(tokens, dtype=torch.bool)
    valid[:, 0] = False
    return previous, valid


# ---- the hypotheses of day 3 -----------------------------------------------------------------------------------------
OTHER = "other"
SAME_PREVIOUS = "same previous token"
SAME_TOKEN = "same token"
ANY_POSITION = "any position"

BASELINES = ["no scrubbing", "all inputs scrubbed", "L1H0 scrubbed"]
LADDER = ["embeddings -> value", "embeddings -> query", "previous-token head -> key", "all three",
          "all three, key through L0H0's previous value only"]
REFUTED = ["key needs only the token embedding", "query needs only L0H0", "other layer-1 heads don't matter"]
REFINED_PAIRS = [("key from any position", "key from a position with the same previous token"),
                 ("query from any position", "query from a position with the same token")]
REFINED_PAIRS_FLAT = [name for pair in REFINED_PAIRS for name in pair]


def day3_hypotheses(model: HookedTransformer) -> list[Hypothesis]:
    """The table of day 3: the baselines, REMIX's ladder, refuted hypotheses and refined/naive pairs, all about
    the induction head L1H0 of induction-2l (every input of it scrubbed is the baseline)."""
    names = component_names(model)

    def keep_only(input_name: str, kept: Sequence[str]) -> dict[str, str]:
        return {c: (ORIG if c in kept else OTHER) for c in names}

    def everything(source: str) -> dict[str, str]:
        return {c: source for c in names}

    v_embed, q_embed, k_prev = (keep_only("v", ["embed"]), keep_only("q", ["embed"]), keep_only("k", ["L0H0"]))
    bonus_k = {**keep_only("k", []), "L0H0": PrevValuePath(pattern=OTHER, previous=ORIG)}
    other_heads = {f"L1H{h}.{x}": everything(OTHER) for h in range(1, model.cfg.n_heads) for x in "qkv"}
    return [
        Hypothesis("no scrubbing"),
        Hypothesis("all inputs scrubbed", default=OTHER),
        Hypothesis("L1H0 scrubbed", {f"L1H0.{x}": everything(OTHER) for x in "qkv"}),
        Hypothesis("embeddings -> value", {"L1H0.v": v_embed}),
        Hypothesis("embeddings -> query", {"L1H0.q": q_embed}),
        Hypothesis("previous-token head -> key", {"L1H0.k": k_prev}),
        Hypothesis("all three", {"L1H0.v": v_embed, "L1H0.q": q_embed, "L1H0.k": k_prev}),
        Hypothesis("all three, key through L0H0's previous value only",
                   {"L1H0.v": v_embed, "L1H0.q": q_embed, "L1H0.k": bonus_k}),
        Hypothesis("key needs only the token embedding", {"L1H0.k": keep_only("k", ["embed"])}),
        Hypothesis("query needs only L0H0", {"L1H0.q": keep_only("q", ["L0H0"])}),
        Hypothesis("other layer-1 heads don't matter", other_heads),
        Hypothesis("key from any position", {"L1H0.k": everything(ANY_POSITION)}),
        Hypothesis("key from a position with the same previous token", {"L1H0.k": everything(SAME_PREVIOUS)}),
        Hypothesis("query from any position", {"L1H0.q": everything(ANY_POSITION)}),
        Hypothesis("query from a position with the same token", {"L1H0.q": everything(SAME_TOKEN)}),
    ]


def day3_sources(tokens: Int[Tensor, "batch seq"], resampling: int, seed: int = 0) -> dict[str, Tensor]:
    """The sources of resampling number `resampling`: the original, another sequence (a seeded permutation), and
    positions matched on the previous token, on the token, or on nothing (any position after the first). Each
    source has its own seed, different for every resampling, so sources and resamplings are independent."""
    n_batch, seq_len = tokens.shape
    base = seed + 1000 * resampling
    previous, after_first = previous_token_feature(tokens)
    everywhere = torch.ones_like(tokens, dtype=torch.bool)
    return {
        ORIG: identity_source(n_batch, seq_len, tokens.device),
        OTHER: sequence_source(n_batch, seq_len, base + 1, tokens.device),
        SAME_PREVIOUS: matched_source(previous, after_first, base + 2),
        SAME_TOKEN: matched_source(tokens, everywhere, base + 3),
        ANY_POSITION: matched_source(torch.zeros_like(tokens), after_first, base + 4),
    }


def straightforward_losses(model: HookedTransformer, tokens: Int[Tensor, "batch seq"], candidates: Sequence[int],
                           hypotheses: Sequence[Hypothesis], resamplings: Sequence[Mapping[str, Tensor]],
                           chunk: int = 256) -> Float[Tensor, "resampling hypothesis"]:
    """The same table as `ScrubbingRun.table`, computed the obvious way: for every (resampling, hypothesis), one
    forward pass over the dataset to get the layer-0 components, then one full forward pass with hooks that replace
    every layer-1 head's q/k/v inputs and the unembedding's input by their assembled versions."""
    n_batch, seq_len = tokens.shape
    names = component_names(model)
    is_candidate = torch.zeros(model.cfg.d_vocab, dtype=torch.bool, device=tokens.device)
    is_candidate[torch.as_tensor(list(candidates), device=tokens.device)] = True
    mask = is_candidate[tokens[:, :-1]]
    table = torch.zeros(len(resamplings), len(hypotheses))
    model.set_use_split_qkv_input(True)
    try:
        for r, sources in enumerate(resamplings):
            for i, hypothesis in enumerate(hypotheses):
                with torch.no_grad():
                    parts = []  # the layer-0 components at every position: one forward pass per hypothesis
                    for start in range(0, n_batch, chunk):
                        _, cache = model.run_with_cache(tokens[start : start + chunk], stop_at_layer=1)
                        heads = torch.einsum("bphd,hdm->hbpm", cache["blocks.0.attn.hook_z"], model.W_O[0])
                        parts.append(torch.cat([cache["hook_embed"][None], heads]))
                    flat = torch.cat(parts, dim=1).flatten(1, 2)  # [embed + heads, batch * seq, d_model]

                    def assembled(input_name: str, rows: slice) -> Tensor:
                        total = model.b_O[0].expand(rows.stop - rows.start, seq_len, -1).clone()
                        for c, name in enumerate(names[:-1]):
                            source = hypothesis.source(input_name, name)
                            if isinstance(source, PrevValuePath):
                                total += _prev_value_path_plain(model, int(name[3:]), tokens, sources, source)[rows]
                            else:
                                total += flat[c][sources[source][rows]]
                        return total

                    losses = []
                    for start in range(0, n_batch, chunk):
                        rows = slice(start, min(start + chunk, n_batch))
                        hooks = []
                        for which in "qkv":
                            new = torch.stack([assembled(f"L1H{h}.{which}", rows) for h in range(model.cfg.n_heads)],
                                              dim=2)
                            hooks.append((f"blocks.1.hook_{which}_input", lambda act, hook, new=new: new))
                        logits_input = assembled("logits", rows)
                        hooks.append(("blocks.1.hook_resid_pre", _ResidSwap(logits_input)))
                        logits = model.run_with_hooks(tokens[rows], fwd_hooks=hooks)
                        log_probs = logits[:, :-1].log_softmax(-1)
                        loss = -log_probs.gather(-1, tokens[rows, 1:, None])[..., 0]
                        losses.append(loss[mask[rows]])
                    table[r, i] = torch.cat(losses).mean().item()
    finally:
        model.set_use_split_qkv_input(False)
    return table


class _ResidSwap:
    """Hook on blocks.1.hook_resid_pre: the block's residual connection carries `replacement` (what the unembedding
    reads besides the layer-1 heads); the heads read their own (hooked) q/k/v inputs."""

    def __init__(self, replacement: Tensor) -> None:
        self.replacement = replacement

    def __call__(self, activation: Tensor, hook: HookPoint) -> Tensor:
        return self.replacement


def _prev_value_path_plain(model: HookedTransformer, head: int, tokens: Tensor, sources: Mapping[str, Tensor],
                           path: PrevValuePath) -> Tensor:
    """A layer-0 head's output at every flat position under `path`, by running the head on mixed inputs."""
    flat_tokens = tokens.flatten()
    pattern_tokens = flat_tokens[sources[path.pattern]]  # [batch, seq]: the tokens the pattern is computed from
    previous_tokens = flat_tokens[sources[path.previous]]
    seq_len = tokens.shape[1]
    W_V, b_V = model.W_V[0, head], model.b_V[0, head]
    qk_input = model.W_E[pattern_tokens] + model.W_pos[:seq_len]
    q = qk_input @ model.W_Q[0, head] + model.b_Q[0, head]
    k = qk_input @ model.W_K[0, head] + model.b_K[0, head]
    scores = q @ k.transpose(-1, -2) / math.sqrt(model.cfg.d_head)
    future = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool, device=tokens.device), diagonal=1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(-1)
    # the value each query position p reads at key j: from `pattern`'s sequence, except at j = p - 1
    pattern_v = model.W_E[pattern_tokens] @ W_V + b_V
    z = pattern @ pattern_v
    # the previous position of each destination in the `previous` source (not the previous source position)
    prev_index = sources[path.previous].flatten() - 1
    prev_v = model.W_E[flat_tokens[prev_index.clamp(min=0)]].view(*tokens.shape, -1) @ W_V + b_V
    pattern_prev_index = sources[path.pattern].flatten() - 1
    pattern_prev_v = model.W_E[flat_tokens[pattern_prev_index.clamp(min=0)]].view(*tokens.shape, -1) @ W_V + b_V
    weight = torch.zeros(tokens.shape, device=tokens.device)
    weight[:, 1:] = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)
    z = z + weight[..., None] * (prev_v - pattern_prev_v)
    return z @ model.W_O[0, head]
