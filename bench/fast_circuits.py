"""Fast activation patching and circuit pruning, for the benchmarks only: answers to Day 5's batched exercises
(`head_patching_by_position`, `greedy_prune_batched`), so they stay out of the learner's library and distribution.

- `patch_heads_by_position`: the effect of patching one head's output (`hook_z`) at one position, for every (layer,
  position, head), as `transformer_lens.patching.get_act_patch_attn_head_out_by_pos` computes it with one forward
  pass per patch. Here nothing is recomputed that a patch cannot change: a patch at layer L and position p leaves
  every layer below L and every position before p as they were in the cached run, and the metric reads only the
  last position, so the last layer is evaluated there only; a head whose clean value equals its corrupted one (as
  at every position before the first token a corruption changes) is patched with its own value, which leaves the
  corrupted run. All heads of one (layer, position) share one batch. bench/patching.py times it.
- `greedy_prune`: the greedy loop of a public mean-ablation study of number sequences in GPT-2 medium (remove a node
  when the circuit without it stays within T percent of the full model's metric) in batches: the next k candidate
  removals are evaluated in one batched pass, candidate i on the circuit that results if candidates 0..i-1 all
  succeed; the longest prefix whose guesses held is accepted, plus the first candidate that failed (its evaluation was
  exact too). As in patching, a pass recomputes only what its candidates can change: layers from the lowest one they
  touch, positions from the earliest one (keys and values before it come from the current circuit's state), and the
  last layer at the last position; the state of the circuit it accepts is read off the pass itself, and a node that
  covers only non-last positions of the last layer (which the metric cannot feel) is decided without evaluation. It
  returns exactly the circuit of `greedy_prune_sequential` (up to float round-off in scores within ~1e-5 of the
  threshold). bench/pruning.py times it.

Both support GPT-2-style HookedTransformers (LayerNorm or none, learned absolute positions, MLPs or not). They reuse
the fused kernels of `curriculum.library.circuits` (Day 4's residual patching). Import it as `fast_circuits` from a
script in bench/ (its folder is then on sys.path), or load the file (tests/tools/test_fast_circuits.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from curriculum.library.circuits import (_causal_attention, _causal_z, _mlp_residual, _normalize, _project,
                                         _unembed)

LastLogitsMetric = Callable[[Float[Tensor, "batch d_vocab"]], Float[Tensor, ""]]
"""A metric of the logits at the last position (one row per prompt) returning a scalar."""


def _require_supported(model: HookedTransformer) -> None:
    cfg = model.cfg
    if cfg.positional_embedding_type not in ("standard",) or cfg.parallel_attn_mlp or cfg.n_key_value_heads:
        raise NotImplementedError("the fast path supports GPT-2-style models (standard positions, sequential blocks)")



def _fused_qkv(model: HookedTransformer) -> list[tuple[Tensor, Tensor]]:
    """Per layer, W_Q, W_K and W_V stacked on the head axis, and their biases: `_project` then gives queries, keys and
    values in one product (split on the head axis)."""
    return [(torch.cat([block.attn.W_Q, block.attn.W_K, block.attn.W_V]),
             torch.cat([block.attn.b_Q, block.attn.b_K, block.attn.b_V])) for block in model.blocks]



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
    names = ("hook_resid_pre", "hook_attn_out", "hook_resid_post", "attn.hook_k", "attn.hook_v", "attn.hook_z")
    _, cache = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n.endswith(names))
    results = torch.empty(n_layers, seq, n_heads, device=corrupted_tokens.device)
    unpatched_final = cache[f"blocks.{n_layers - 1}.hook_resid_post"][:, -1]
    unpatched = metric(_unembed(model, unpatched_final)).item()
    last = torch.tensor([seq - 1], device=corrupted_tokens.device)
    qkv = _fused_qkv(model)
    for layer in range(n_layers):
        z_change = clean_z[layer] - cache["z", layer]  # [batch, pos, head, d_head]
        # Each head's own contribution to the attention output at each position: [head, batch, pos, d_model].
        out_change = torch.einsum("bphe,hed->hbpd", z_change, model.blocks[layer].attn.W_O)
        # A head whose clean hook_z equals the corrupted one at a position (every position before the first token
        # the corruption changed) is patched with its own value: the corrupted run, nothing to compute.
        moved = z_change.ne(0).any(dim=3).any(dim=0)  # [pos, head]
        for position in range(seq):
            heads = moved[position].nonzero().flatten()
            results[layer, position] = unpatched
            if len(heads) == 0 or (layer == n_layers - 1 and position != seq - 1):
                continue  # in the last layer, only the last position is read by the metric
            n = len(heads)
            resid_mid = cache["resid_pre", layer][:, position] + cache["attn_out", layer][:, position]
            resid = resid_mid[None] + out_change[heads, :, position]  # [head, batch, d_model]
            resid = _mlp_residual(model, layer, resid)
            tail = torch.cat([resid[:, :, None], cache["resid_post", layer][None, :, position + 1:].expand(
                n, -1, -1, -1)], dim=2).flatten(0, 1)  # [head*batch, seq - position, d_model]
            tail_positions = torch.arange(position, seq, device=tail.device)
            for later in range(layer + 1, n_layers):
                block = model.blocks[later]
                q, k, v = _project(_normalize(block.ln1, tail), *qkv[later]).split(n_heads, dim=2)
                prefix_k = cache["k", later][:, :position].repeat(n, 1, 1, 1)
                prefix_v = cache["v", later][:, :position].repeat(n, 1, 1, 1)
                keys, values = torch.cat([prefix_k, k], dim=1), torch.cat([prefix_v, v], dim=1)
                if later < n_layers - 1:
                    tail = tail + _causal_attention(model, later, q, keys, values, tail_positions)
                else:  # the last layer: only the last position matters
                    tail = tail[:, -1:] + _causal_attention(model, later, q[:, -1:], keys, values, last)
                tail = _mlp_residual(model, later, tail)
            logits = _unembed(model, tail[:, -1].unflatten(0, (n, batch)))
            results[layer, position, heads] = torch.stack([metric(head_logits) for head_logits in logits])
    return results



# ---- mean ablation and greedy pruning --------------------------------------------------------------------------------
@dataclass
class MeanAblation:
    """Evaluates circuits by mean ablation: `hook_z` of every (layer, position, head) outside the circuit's keep mask
    is replaced by `means` (its mean over a reference dataset), everything inside keeps the run's own value.

    score(keep) = 100 * metric(ablated) / metric(full model): the circuit's faithfulness in percent, where metric
    reads the logits at the last position ([batch, d_vocab]).
    """

    model: HookedTransformer
    tokens: Int[Tensor, "batch pos"]
    means: Float[Tensor, "layer pos head d_head"]
    metric: LastLogitsMetric

    def __post_init__(self) -> None:
        _require_supported(self.model)
        # the weights as scores_from uses them (fused per layer), read once, like full_metric: from the model as it is
        self._qkv = _fused_qkv(self.model)
        self._out = [(block.attn.W_O.flatten(0, 1).T.contiguous(), block.attn.b_O) for block in self.model.blocks]
        with torch.no_grad():
            self.full_metric = self.metric(self.model(self.tokens)[:, -1]).item()

    def _hooks(self, keep: Bool[Tensor, "circuits layer pos head"]) -> list:
        batch = self.tokens.shape[0]

        def ablate(z: Tensor, hook, layer: int) -> Tensor:
            mask = keep[:, layer].repeat_interleave(batch, dim=0)[..., None]  # [circuits*batch, pos, head, 1]
            return torch.where(mask, z, self.means[layer].to(z.dtype))

        return [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: ablate(z, hook, layer))
                for layer in range(self.model.cfg.n_layers)]

    @torch.no_grad()
    def scores(self, keep: Bool[Tensor, "circuits layer pos head"]) -> Float[Tensor, "circuits"]:
        """Faithfulness (percent) of each circuit, with plain hooked forward passes, all circuits in one batch."""
        n_circuits, batch = keep.shape[0], self.tokens.shape[0]
        logits = self.model.run_with_hooks(self.tokens.repeat(n_circuits, 1), fwd_hooks=self._hooks(keep))
        last = logits[:, -1].unflatten(0, (n_circuits, batch))
        return torch.stack([100 * self.metric(c) / self.full_metric for c in last]).cpu()

    @torch.no_grad()
    def state(self, keep: Bool[Tensor, "layer pos head"]) -> dict[str, Tensor]:
        """What candidates derived from circuit `keep` can reuse: the circuit itself, and of its run the residual
        stream entering every layer, the keys, values and (before ablation) hook_z."""
        model = self.model
        names = ("hook_resid_pre", "attn.hook_k", "attn.hook_v")
        with model.hooks(fwd_hooks=self._hooks(keep[None])):
            _, cache = model.run_with_cache(self.tokens, names_filter=lambda n: n.endswith(names))
        state = {name: torch.stack([cache[name, layer] for layer in range(model.cfg.n_layers)])
                 for name in ("resid_pre", "k", "v")}
        every = torch.arange(self.tokens.shape[1], device=self.tokens.device)
        state["z"] = torch.stack([
            _causal_z(model, layer, _project(_normalize(block.ln1, state["resid_pre"][layer]), block.attn.W_Q,
                                             block.attn.b_Q), state["k"][layer], state["v"][layer], every)
            for layer, block in enumerate(model.blocks)])
        state["keep"] = keep.clone()
        return state

    @torch.no_grad()
    def scores_from(self, state: dict[str, Tensor], keep: Bool[Tensor, "circuits layer pos head"],
                    first_layers: Sequence[int], first_position: int, with_runs: bool = False
                    ) -> Float[Tensor, "circuits"] | tuple[Float[Tensor, "circuits"], "PassRuns"]:
        """Faithfulness of circuits each of which agrees with the circuit behind `state` below its own first layer
        (`first_layers[c]`) and, everywhere, before `first_position`. Only positions >= first_position are
        recomputed (keys and values before it come from the state), and the last layer at the last position only.
        At its first layer a circuit differs from the state's only in what it ablates: its attention is the state's
        (hook_z re-masked, no attention computed) and its MLP runs only where the mask changed; from the next layer
        on it joins the batch. With `with_runs`, also returns what the pass computed, from which `PassRuns.state`
        reads any circuit's state without a pass of its own."""
        model, batch = self.model, self.tokens.shape[0]
        n_layers, seq = model.cfg.n_layers, self.tokens.shape[1]
        p0 = first_position
        positions = torch.arange(p0, seq, device=self.tokens.device)
        last = positions[-1:]
        active: list[int] = []
        tail = None
        runs = PassRuns(state, keep, batch, p0)
        for layer in range(min(first_layers), n_layers):
            block = model.blocks[layer]
            final = layer == n_layers - 1
            query_positions = last if final else positions
            if tail is not None:  # the circuits that joined below: this whole layer, from their own residual stream
                n = len(active)
                q, k, v = _project(_normalize(block.ln1, tail), *self._qkv[layer]).split(model.cfg.n_heads, dim=2)
                keys = torch.cat([state["k"][layer][:, :p0].repeat(n, 1, 1, 1), k], dim=1)
                values = torch.cat([state["v"][layer][:, :p0].repeat(n, 1, 1, 1), v], dim=1)
                z = _causal_z(model, layer, q[:, -1:] if final else q, keys, values, query_positions)
                if with_runs:
                    runs.layers.append((layer, list(active), tail, k, v, z))
                tail = (tail[:, -1:] if final else tail) + self._attention_out(layer, z, keep[active], query_positions)
                tail = _mlp_residual(model, layer, tail)
            joining = [c for c, first in enumerate(first_layers) if first == layer]
            if joining:
                joined = self._join(state, keep[joining], layer, query_positions)
                tail = joined if tail is None else torch.cat([tail, joined])
                active += joining
        logits = _unembed(model, tail[:, -1]).unflatten(0, (len(active), batch))
        scores = torch.stack([100 * self.metric(c) / self.full_metric for c in logits]).cpu()
        scores = scores[torch.tensor(active).argsort()]
        return (scores, runs) if with_runs else scores

    def _attention_out(self, layer: int, z: Tensor, keep: Bool[Tensor, "circuits layer pos head"],
                       query_positions: Tensor) -> Tensor:
        """The attention output (with b_O) of hook_z values `z` [circuits * batch, q, head, d_head] at
        `query_positions`, each circuit's entries outside its `keep` replaced by the means."""
        mask = keep[:, layer][:, query_positions].repeat_interleave(self.tokens.shape[0], dim=0)[..., None]
        z = torch.where(mask, z, self.means[layer, query_positions].to(z.dtype))
        return torch.nn.functional.linear(z.flatten(2), *self._out[layer])

    def _join(self, state: dict[str, Tensor], keep: Bool[Tensor, "circuits layer pos head"], layer: int,
              query_positions: Tensor) -> Tensor:
        """The residual stream leaving `layer` at `query_positions` of circuits that agree with the state's circuit
        below `layer`: the state's hook_z with their own mask, and the MLP only at positions where that mask differs
        from the state's (elsewhere the state's own stream)."""
        model, n = self.model, keep.shape[0]
        z = state["z"][layer][:, query_positions].repeat(n, 1, 1, 1)
        resid_mid = (state["resid_pre"][layer][:, query_positions].repeat(n, 1, 1)
                     + self._attention_out(layer, z, keep, query_positions))
        if layer == model.cfg.n_layers - 1:
            return _mlp_residual(model, layer, resid_mid)
        changed = (keep[:, layer][:, query_positions] != state["keep"][layer][query_positions]).any(-1).any(0)
        out = state["resid_pre"][layer + 1][:, query_positions].repeat(n, 1, 1)
        out[:, changed] = _mlp_residual(model, layer, resid_mid[:, changed])
        return out


@dataclass
class PassRuns:
    """What one `MeanAblation.scores_from` pass computed for the circuits `keep` it evaluated: per layer, those in
    the batch there, and their residual streams, keys and values at positions >= first_position and hook_z before
    ablation (at the last position only in the last layer); circuit c's rows: the c-th block of `batch` in `active`
    order."""

    base: dict[str, Tensor]
    keep: Tensor
    batch: int
    first_position: int
    layers: list[tuple[int, list[int], Tensor, Tensor, Tensor, Tensor]] = field(default_factory=list)

    def state(self, circuit: int) -> dict[str, Tensor]:
        """`MeanAblation.state` of circuit `circuit` of the pass: the base state where the circuit agrees with it
        (below the layer where it joined the batch, its first layer included), and the pass's own values elsewhere."""
        state = {name: tensor.clone() for name, tensor in self.base.items()}
        state["keep"] = self.keep[circuit].clone()
        p0 = self.first_position
        for layer, active, resid, k, v, z in self.layers:
            if circuit in active:
                rows = slice(active.index(circuit) * self.batch, (active.index(circuit) + 1) * self.batch)
                for name, value in (("resid_pre", resid), ("k", k), ("v", v)):
                    state[name][layer][:, p0:] = value[rows]
                state["z"][layer][:, -z.shape[1]:] = z[rows]
        return state


def greedy_prune_sequential(ablation: MeanAblation, nodes: Bool[Tensor, "node layer pos head"],
                            threshold: float) -> Bool[Tensor, "node"]:
    """The study's loop, one plain forward pass per candidate: in order, drop node i when the circuit without it
    scores above 100 - threshold percent. The circuit starts as the union of all nodes; entries no node covers stay
    ablated throughout. Returns which nodes are kept."""
    kept = torch.ones(nodes.shape[0], dtype=torch.bool)
    counts = nodes.to(torch.int32)
    cover = counts.sum(0)  # how many kept nodes cover each (layer, pos, head)
    for i in range(nodes.shape[0]):
        if 100 - ablation.scores((cover - counts[i] > 0)[None])[0].item() < threshold:
            kept[i] = False
            cover = cover - counts[i]
    return kept


def greedy_prune(ablation: MeanAblation, nodes: Bool[Tensor, "node layer pos head"], threshold: float,
                 speculation: int = 2, max_speculation: int = 4) -> Bool[Tensor, "node"]:
    """The same circuit as `greedy_prune_sequential`, evaluating up to `speculation` candidates per batched pass
    (doubled after a pass whose guesses all held, halved after one that failed at once, within [1,
    max_speculation]), each pass recomputing only what its candidates can change. See the module docstring.

    Small passes are best here: a candidate after a failure is wasted, and a pass is cheap because it starts from the
    current circuit's state, read off the pass before (measured with bench/pruning.py: 2-4 candidates per pass beat
    8-64 on both of its models)."""
    n_nodes, n_layers, seq = nodes.shape[:3]
    first_layer_of = nodes.any(dim=(2, 3)).int().argmax(dim=1).tolist()  # 0 for a node that covers nothing
    first_position_of = nodes.any(dim=(1, 3)).int().argmax(dim=1).tolist()
    # A node only in the last layer, away from the last position, cannot change the metric (which reads the last
    # position): removing it scores what the circuit scores without evaluating anything.
    inert = (~nodes[:, :-1].flatten(1).any(dim=1) & ~nodes[:, -1, -1].any(dim=-1)).tolist()
    kept = torch.ones(n_nodes, dtype=torch.bool)
    counts = nodes.to(torch.int32)
    cover = counts.sum(0)  # how many kept nodes cover each (layer, pos, head)
    state = ablation.state(cover > 0)
    score = ablation.scores_from(state, (cover > 0)[None], [n_layers - 1], seq - 1)[0].item()
    i, k = 0, max(1, speculation)
    while i < n_nodes:
        if inert[i]:
            if 100 - score < threshold:
                kept[i] = False
            i += 1
            continue
        batch = []
        while i + len(batch) < n_nodes and len(batch) < k and not inert[i + len(batch)]:
            batch.append(i + len(batch))
        trials, trial = [], cover
        for j in batch:  # candidate j assumes every earlier candidate of this pass was removed
            trial = trial - counts[j]
            trials.append(trial > 0)
        # Candidate j differs from the current circuit from the lowest layer among candidates 0..j of the pass.
        first_layers = [min(first_layer_of[m] for m in batch[: n + 1]) for n in range(len(batch))]
        first_position = min(first_position_of[j] for j in batch)
        scores, runs = ablation.scores_from(state, torch.stack(trials), first_layers, first_position, with_runs=True)
        accepted = 0
        for candidate_score in scores.tolist():
            if 100 - candidate_score < threshold:
                accepted += 1
            else:
                break
        for j in batch[:accepted]:
            kept[j] = False
            cover = cover - counts[j]
        if accepted:  # the circuit is now the last accepted candidate's: its state and score come from the pass
            state, score = runs.state(accepted - 1), scores[accepted - 1].item()
        i += accepted + (1 if accepted < len(batch) else 0)  # the first failure is decided too: it stays
        k = min(max_speculation, k * 2) if accepted == len(batch) else max(1, k // 2 if accepted == 0 else k)
    return kept
