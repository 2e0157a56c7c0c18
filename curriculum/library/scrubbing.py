"""Causal scrubbing of the layer-1 heads of a two-layer attention-only shortformer model, fast.

A *hypothesis* says, for every input of a layer-1 head (its query, key and value inputs) and for the input of the
unembedding, which *source* each component of that input comes from. The components of a layer-1 input are the
token embedding, the output of each layer-0 head and layer 0's output bias (`component_names`); with shortformer
positions, the positional embedding is never one of them: it is added to the queries and keys of every layer, at the
position where the query or key sits. A source is a way of picking, for every (sequence, position) of the dataset, the
(sequence, position) whose activation is used instead: the original itself, the same position of another sequence
(a seeded permutation of the sequences), or a position that agrees on a feature (e.g. the same previous token).

`ScrubbingRun` makes this fast:
- the layer-0 components of every distinct input are computed once: every source is a re-indexing of the same
  dataset, so one clean forward pass over the dataset gives all of them;
- the key and value inputs of a head are linear in the components, so each group of components is projected by
  W_K or W_V once (cached), and a hypothesis's keys are sums of gathered projections;
- queries and logits are needed only at the positions the loss reads (the induction candidates);
- all of this runs in batched tensor operations over the whole dataset, one hypothesis at a time.

This module is plumbing for many hypotheses at once (the benchmark, `bench/scrubbing.py`, and the course's own
tests): it holds no exercise's answer. The hypotheses and sources of the benchmark's table, and the obvious hooked
computation it is checked against, are in `solutions/scrubbing_table.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

ORIG = "orig"
"""The source that is the original input itself."""


@dataclass(frozen=True)
class PrevValuePath:
    """A layer-0 head's output computed on mixed inputs: its attention pattern from source `pattern`, its value at
    the position just before the one it writes to from source `previous`, its values at every other position from
    `pattern` too. With `previous="orig"` and `pattern="other"` it keeps only the path "previous token -> the head's
    value -> its output", the bonus path of REMIX (used for L0H0 feeding L1H0's key)."""

    pattern: str
    previous: str


@dataclass(frozen=True)
class Hypothesis:
    """Which source each component of each scrubbed input sees.

    inputs: maps an input name, "L1H{h}.q", "L1H{h}.k", "L1H{h}.v" or "logits" (the unembedding's input, whose
        components are those of a layer-1 input: the layer-1 heads and b_O of layer 1 are always the ones computed
        from their own q/k/v inputs), to a mapping from component name to source. Components left out come from
        `default` (itself "orig" unless said otherwise), and so do inputs left out.
    """

    name: str
    inputs: Mapping[str, Mapping[str, "str | PrevValuePath"]] = field(default_factory=dict)
    default: str = ORIG

    def source(self, input_name: str, component: str) -> "str | PrevValuePath":
        return self.inputs.get(input_name, {}).get(component, self.default)


def component_names(model: HookedTransformer) -> list[str]:
    """Names of the components of a layer-1 input: "embed", "L0H0" .. "L0H{n-1}", "b_O0" (no positions: shortformer)."""
    return ["embed", *[f"L0H{h}" for h in range(model.cfg.n_heads)], "b_O0"]


def input_names(model: HookedTransformer) -> list[str]:
    """Names of every scrubbable input: the q, k, v inputs of each layer-1 head, then the logits' input."""
    return [f"L1H{h}.{x}" for h in range(model.cfg.n_heads) for x in "qkv"] + ["logits"]


# ---- sources --------------------------------------------------------------------------------------------------------
def sequence_source_from(permutation: Int[Tensor, "batch"], seq_len: int) -> Int[Tensor, "batch seq"]:
    """Flat indices (sequence * seq_len + position) of the same position in sequence permutation[b]."""
    positions = torch.arange(seq_len, device=permutation.device)
    return permutation[:, None] * seq_len + positions[None, :]


# ---- the fast scrubber ----------------------------------------------------------------------------------------------
def layer0_heads(model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
                 ) -> tuple[Float[Tensor, "head batch seq d_model"], Float[Tensor, "batch head query key"]]:
    """Each layer-0 head's output (z @ W_O, without b_O) and attention pattern, computed directly from the weights:
    queries and keys read the token embedding plus the positional embedding (shortformer), values the embedding."""
    seq_len = tokens.shape[1]

    def read(weight: Tensor, bias: Tensor, positions: bool) -> Tensor:
        """[batch, head, pos, d_head]: a table lookup per token (plus one per position), not a matmul per position."""
        by_token = torch.einsum("vm,hmd->hvd", model.W_E, weight)[:, tokens]  # [head, batch, pos, d_head]
        if positions:
            by_token = by_token + torch.einsum("pm,hmd->hpd", model.W_pos[:seq_len], weight)[:, None]
        return (by_token + bias[:, None, None]).transpose(0, 1)

    q = read(model.W_Q[0], model.b_Q[0], positions=True)
    k = read(model.W_K[0], model.b_K[0], positions=True)
    v = read(model.W_V[0], model.b_V[0], positions=False)
    scores = q @ k.transpose(-1, -2) / math.sqrt(model.cfg.d_head)
    future = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool, device=tokens.device), diagonal=1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(-1)
    out = torch.einsum("bhqd,hdm->hbqm", pattern @ v, model.W_O[0])
    return out, pattern


class ScrubbingRun:
    """The layer-0 components of a dataset, computed once, and the loss on candidates of any hypothesis.

    tokens: [batch, seq] on the model's device; candidates: the token ids after which the loss is read.
    Everything a hypothesis needs is a sum of *projected* components gathered by its sources: the key and value
    inputs of a layer-1 head projected by its W_K, W_V at every position, the query input by its W_Q at the
    candidate positions only, the unembedding's input at the candidate positions only. Inputs that a hypothesis
    leaves as they are come from a cache shared by all hypotheses and resamplings.
    """

    def __init__(self, model: HookedTransformer, tokens: Int[Tensor, "batch seq"], candidates: Sequence[int],
                 chunk: int = 256) -> None:
        if model.cfg.n_layers != 2 or not model.cfg.attn_only or model.cfg.positional_embedding_type != "shortformer":
            raise ValueError("ScrubbingRun handles 2-layer attention-only shortformer models")
        self.model = model
        self.tokens = tokens
        self.n_batch, self.seq_len = tokens.shape
        self.components = component_names(model)
        n_heads, device = model.cfg.n_heads, tokens.device
        with torch.no_grad():
            is_candidate = torch.zeros(model.cfg.d_vocab, dtype=torch.bool, device=device)
            is_candidate[torch.as_tensor(list(candidates), device=device)] = True
            mask = is_candidate[tokens]
            mask[:, -1] = False  # the last position has no target
            self.mask = mask
            # The candidate positions of each sequence, padded to the longest: [batch, max_per_seq]
            counts = mask.sum(1)
            self.max_per_seq = max(int(counts.max()), 1)
            positions = torch.arange(self.seq_len, device=device).expand_as(tokens)
            sort_key = torch.where(mask, positions, positions + self.seq_len)
            query_pos = sort_key.argsort(dim=1)[:, : self.max_per_seq]
            self.query_valid = torch.arange(self.max_per_seq, device=device)[None] < counts[:, None]
            self.query_pos = torch.where(self.query_valid, query_pos, torch.zeros_like(query_pos))
            self.query_flat = torch.arange(self.n_batch, device=device)[:, None] * self.seq_len + self.query_pos
            self.targets = tokens.flatten()[(self.query_flat + 1).clamp(max=tokens.numel() - 1)][self.query_valid]
            # Layer-0 head outputs at every position of the dataset, computed once: [head, batch * seq, d_model]
            head_outputs, prev_attention = [], []
            for start in range(0, self.n_batch, chunk):
                out, pattern = layer0_heads(model, tokens[start : start + chunk])
                head_outputs.append(out)
                prev = torch.zeros(pattern.shape[:3], device=device)
                prev[:, :, 1:] = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)
                prev_attention.append(prev)
            self.head_out = torch.cat(head_outputs, dim=1).reshape(n_heads, -1, model.cfg.d_model)
            self.prev_attention = torch.cat(prev_attention, dim=0).permute(1, 0, 2).reshape(n_heads, -1)
            self.flat_tokens = tokens.flatten()
            self.resid = model.W_E[self.flat_tokens] + self.head_out.sum(0) + model.b_O[0]  # the input of layer 1
            self.identity = identity_source(self.n_batch, self.seq_len, device)
            pos = model.W_pos[: self.seq_len]
            self.pos_q = torch.stack([pos @ model.W_Q[1, h] + model.b_Q[1, h] for h in range(n_heads)])
            self.pos_k = torch.stack([pos @ model.W_K[1, h] + model.b_K[1, h] for h in range(n_heads)])
        self._projections: dict[tuple, Tensor] = {}
        self._orig_cache: dict = {}
        self._resampling_cache: dict = {}

    # -- components, projected --------------------------------------------------------------------------------------
    def _weight(self, head: int, which: str) -> Tensor | None:
        """The matrix an input is read through: W_Q/W_K/W_V of a layer-1 head, or none for the logits' input."""
        model = self.model
        return {"q": model.W_Q, "k": model.W_K, "v": model.W_V}[which][1, head] if which != "logits" else None

    def _projection(self, head: int, which: str, group: tuple[str, ...]) -> Float[Tensor, "flat d_head"]:
        """The sum of the components in `group` at every position, read through W_K or W_V of layer-1 head `head`
        (cached): all of them at once from the clean residual stream, otherwise component by component (the
        embedding through a [d_vocab, d_head] table, the bias as one row)."""
        key = (head, which, group)
        if key not in self._projections:
            model, weight = self.model, self._weight(head, which)
            if group == tuple(self.components):
                self._projections[key] = self.resid @ weight
            elif len(group) > 1:
                self._projections[key] = sum(self._projection(head, which, (name,)) for name in group)
            elif group[0] == "embed":
                self._projections[key] = (model.W_E @ weight)[self.flat_tokens]
            elif group[0] == "b_O0":
                self._projections[key] = (model.b_O[0] @ weight).expand(self.flat_tokens.numel(), -1)
            else:
                self._projections[key] = self.head_out[int(group[0][3:])] @ weight
        return self._projections[key]

    def _components_at(self, group: Sequence[str], index: Tensor) -> Float[Tensor, "... d_model"]:
        """The sum of the components in `group` at the flat positions `index` (any shape)."""
        if tuple(group) == tuple(self.components):
            return self.resid[index]
        total: Tensor | int = 0
        for name in group:
            if name == "embed":
                total = total + self.model.W_E[self.flat_tokens[index]]
            elif name == "b_O0":
                total = total + self.model.b_O[0]
            else:
                total = total + self.head_out[int(name[3:])][index]
        return total  # type: ignore[return-value]

    def _prev_value_path(self, head: int, path: PrevValuePath, sources: Mapping[str, Tensor],
                         index: Tensor | None, weight: Tensor | None) -> Tensor:
        """Layer-0 head `head`'s output under `path` at the flat destinations `index` (None: everywhere), read
        through `weight` (or not): its clean output at the pattern source, with the value at the previous position
        swapped for the one at the previous position of the `previous` source."""
        model = self.model
        pattern_index = sources[path.pattern].flatten() if index is None else sources[path.pattern].flatten()[index]
        previous_index = sources[path.previous].flatten() if index is None else sources[path.previous].flatten()[index]
        value_table = (model.W_E @ model.W_V[0, head] + model.b_V[0, head]) @ model.W_O[0, head]  # [d_vocab, d_model]
        base = self.head_out[head]
        if weight is not None:
            value_table, base = value_table @ weight, base @ weight
        swap = (value_table[self.flat_tokens[(previous_index - 1).clamp(min=0)]]
                - value_table[self.flat_tokens[(pattern_index - 1).clamp(min=0)]])
        return base[pattern_index] + self.prev_attention[head][pattern_index][..., None] * swap

    def _cache_for(self, sources: Mapping[str, Tensor], resampled: bool) -> dict:
        """Where assembled inputs and head outputs are kept: one cache for what uses the original only (shared by
        every resampling), one for the current resampling (dropped when another `sources` comes, and holding a
        reference to it, so a cached entry never outlives the tensors its key names)."""
        if not resampled:
            return self._orig_cache
        if self._resampling_cache.get("sources") is not sources:
            self._resampling_cache = {"sources": sources}
        return self._resampling_cache

    def _assembled(self, hypothesis: Hypothesis, input_name: str, sources: Mapping[str, Tensor]
                   ) -> tuple[tuple, Tensor]:
        """One input of the hypothesis, read through its head's matrix, and a key naming it: [batch * seq, d_head]
        for keys and values, [batch, max_per_seq, width] at the candidate positions for queries and the logits'
        input."""
        head, which = (0, "logits") if input_name == "logits" else (int(input_name[3]), input_name[5])
        by_source: dict[str | PrevValuePath, list[str]] = {}
        for name in self.components:
            by_source.setdefault(hypothesis.source(input_name, name), []).append(name)
        key = (input_name, tuple((source, tuple(names)) for source, names in by_source.items()))
        cache = self._cache_for(sources, resampled=set(by_source) != {ORIG})
        if key in cache:
            return key, cache[key]
        at = None if which in "kv" else self.query_flat
        total: Tensor | int = 0
        for source, names in by_source.items():
            if isinstance(source, PrevValuePath):
                if len(names) != 1 or not names[0].startswith("L0H"):
                    raise ValueError("a PrevValuePath applies to one layer-0 head's output")
                total = total + self._prev_value_path(int(names[0][3:]), source, sources, at,
                                                      self._weight(head, which))
                continue
            if at is None:  # keys and values: every position, through cached projections
                projected = self._projection(head, which, tuple(names))
                total = total + (projected if source == ORIG else projected[sources[source].flatten()])
            else:  # queries and the logits' input: only the candidate positions, projected after gathering
                index = at if source == ORIG else sources[source].flatten()[at]
                gathered = self._components_at(names, index)
                weight = self._weight(head, which)
                total = total + (gathered if weight is None else gathered @ weight)
        cache[key] = total
        return key, total  # type: ignore[return-value]

    def _head_output(self, hypothesis: Hypothesis, head: int, sources: Mapping[str, Tensor]
                     ) -> Float[Tensor, "batch query d_model"]:
        """Layer-1 head `head`'s output at the candidate queries, from its q/k/v inputs under `hypothesis`."""
        model = self.model
        q_key, q = self._assembled(hypothesis, f"L1H{head}.q", sources)
        k_key, k = self._assembled(hypothesis, f"L1H{head}.k", sources)
        v_key, v = self._assembled(hypothesis, f"L1H{head}.v", sources)
        key = ("head", head, q_key, k_key, v_key)
        resampled = any(source != ORIG for part in (q_key, k_key, v_key) for source, _ in part[1])
        cache = self._cache_for(sources, resampled)
        if key in cache:
            return cache[key]
        q = q + self.pos_q[head][self.query_pos]  # positions of the query's own place (shortformer)
        k = k.view(self.n_batch, self.seq_len, -1) + self.pos_k[head]
        v = v.view(self.n_batch, self.seq_len, -1) + model.b_V[1, head]
        scores = torch.einsum("bqd,bkd->bqk", q, k) / math.sqrt(model.cfg.d_head)
        future = torch.arange(self.seq_len, device=q.device)[None, None, :] > self.query_pos[:, :, None]
        pattern = scores.masked_fill_(future, float("-inf")).softmax(-1)
        cache[key] = torch.einsum("bqk,bkd->bqd", pattern, v) @ model.W_O[1, head]
        return cache[key]

    def loss(self, hypothesis: Hypothesis, sources: Mapping[str, Tensor]) -> float:
        """Mean loss on the candidate positions (original labels) when the model runs as `hypothesis` says.

        sources: name -> [batch, seq] flat indices into the dataset; "orig" must be the identity.
        """
        model = self.model
        with torch.no_grad():
            _, resid = self._assembled(hypothesis, "logits", sources)
            for head in range(model.cfg.n_heads):
                resid = resid + self._head_output(hypothesis, head, sources)
            resid = resid[self.query_valid] + model.b_O[1]
            logits = resid @ model.W_U + model.b_U
            losses = -logits.log_softmax(-1).gather(-1, self.targets[:, None])[:, 0]
            return losses.mean().item()

    def table(self, hypotheses: Sequence[Hypothesis], resamplings: Sequence[Mapping[str, Tensor]]
              ) -> Float[Tensor, "resampling hypothesis"]:
        """Loss of every hypothesis under every resampling (each a dict of sources)."""
        return torch.tensor([[self.loss(h, sources) for h in hypotheses] for sources in resamplings])


def identity_source(n_batch: int, seq_len: int, device: torch.device | str = "cpu") -> Int[Tensor, "batch seq"]:
    """The "orig" source: every position is itself."""
    return torch.arange(n_batch * seq_len, device=device).view(n_batch, seq_len)


def describe(hypothesis: Hypothesis) -> str:
    """A one-line summary of a hypothesis: for each input it changes, the components grouped by source."""
    if not hypothesis.inputs:
        return f"every input from {hypothesis.default!r}"
    parts = []
    for input_name, sources in hypothesis.inputs.items():
        by_source: dict[str, list[str]] = {}
        for component, source in sources.items():
            label = (f"pattern {source.pattern!r}, previous value {source.previous!r}"
                     if isinstance(source, PrevValuePath) else repr(source))
            by_source.setdefault(label, []).append(component)
        parts.append(f"{input_name}: " + "; ".join(f"{', '.join(c)} from {s}" for s, c in by_source.items()))
    return " | ".join(parts)


def ladder_figure(names: Sequence[str], recovered: Sequence[float], standard_error: Sequence[float],
                 title: str = "% of loss recovered ± 1 s.e."):
    """A dot plot of the fraction of loss recovered per hypothesis (in %), one row each, with error bars of one
    standard error. The x range fits the dots and their bars with a margin, so that bars a fraction of a point wide
    stay visible when every hypothesis is near 100%."""
    import plotly.graph_objects as go

    values = [100 * float(v) for v in recovered]
    errors = [100 * float(e) for e in standard_error]
    low = min(v - e for v, e in zip(values, errors))
    high = max(v + e for v, e in zip(values, errors))
    margin = max(0.15 * (high - low), 0.5)
    fig = go.Figure(go.Scatter(x=values, y=list(names), mode="markers", marker=dict(size=9),
                               error_x=dict(type="data", array=errors, visible=True, thickness=1.5, width=6)))
    fig.update_layout(title=title, xaxis_title="% of loss recovered", height=120 + 36 * len(values),
                      margin=dict(l=260), xaxis_range=[low - margin, high + margin])
    fig.update_yaxes(autorange="reversed")
    return fig
