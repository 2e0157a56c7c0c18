# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Day 3: causal scrubbing of the induction heads
#
# On day 1 we found that `induction-2l` has a previous-token head (L0H0) and an induction head (L1H0), and that
# ablating either one breaks copying. Ablation says *that* a head matters. Today we test *how* it matters, with
# **causal scrubbing**: we write a hypothesis as a statement about which inputs each part of the model actually
# uses, then run the model with every input the hypothesis calls irrelevant replaced by the same input taken from a
# *different, randomly chosen* sequence. If the hypothesis is right, the loss should barely move. How much of the
# damage of a baseline the hypothesis undoes is its *percent of loss recovered*.
#
# By the end of the day you will have:
#
# 1. built the dataset: held-out stories, the induction candidates (the names), inputs and targets, and the loss on
#    the positions where induction is the only way to be right;
# 2. drawn seeded resamplings in *sampling groups* (same permutation within a group, independent across groups);
# 3. measured the baselines: every input scrubbed, and the induction head's inputs scrubbed;
# 4. split the inputs of a layer-1 head into components (embedding, each layer-0 head, biases), assembled its query,
#    key and value inputs from a declarative spec of which input each component sees, and run the model on them,
#    once with hooks and once by hand;
# 5. tested the hypothesis ladder of Redwood's REMIX course, plus a bonus path through L0H0's value;
# 6. tested hypotheses that the data refutes, and a refined hypothesis that resamples only from positions that
#    *agree on a feature*;
# 7. put error bars on every number, from independent resamplings, and drawn the whole ladder.
#
# Every function in a cell marked as an exercise is graded: run `check(function_name)` in the notebook, or
# `pytest --day 3` in a terminal.

# %%
from __future__ import annotations

import math
import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in Jupyter without ipywidgets

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from curriculum import plotting

MAIN = __name__ == "__main__"
if MAIN:
    from checks import check  # noqa: F401  (check(fn) grades one exercise and prints the verdict)

    torch.set_grad_enabled(False)  # the notebook only runs the model forwards

# %% [markdown]
# ## 1. The dataset and the induction candidates
#
# We study `induction-2l` on the text it was trained on: *stories* of its made-up language (`curriculum.data.
# induction_corpus`). In a story each word depends on the word two places back, so the language itself is partly
# predictable from the previous tokens. But the stories also contain **names** (capitalised words). A name is always
# followed by the same word *within a story*, and that word is chosen at random for each story: the first time a
# name appears, nothing predicts its follower; from the second time on, the follower is exactly the word that came
# after the name earlier in the context. Only induction can get it right. So the names are the **induction
# candidates**: the tokens after which we measure the loss, so that the loss measures induction and not the bigram
# statistics of the language. (REMIX picked its candidates from OpenWebText by frequency and by how much induction
# helped on them; our language was built so that the names are good candidates by construction.)
#
# We use held-out stories, from a seed that training never used. Let us look at one.

# %%
if MAIN:
    from curriculum.data.induction_corpus import (INDUCTION_CANDIDATE_WORDS, INDUCTION_CANDIDATES, decode,
                                                  held_out_stories)
    from curriculum.models import load_model

    model = load_model("induction-2l")
    story = held_out_stories(1)[0]
    print(decode(story[:60]), "...")
    print(f"{len(INDUCTION_CANDIDATES)} candidates, e.g. {', '.join(INDUCTION_CANDIDATE_WORDS[:8])}")
    for position in range(story.shape[0] - 1):
        if story[position].item() in INDUCTION_CANDIDATES:
            print(f"  position {position:3d}: {decode(story[position : position + 2])}")

# %% [markdown]
# Each name above is followed by the same word every time it appears: the model can be sure of the follower from
# the second mention on.
#
# A language model's logits at position `i` predict the token at `i + 1`. It is convenient to make that explicit:
# the **inputs** are the tokens at positions `0 .. seq-2` and the **targets** the tokens at `1 .. seq-1`, so that the
# prediction at input position `i` is scored against `targets[:, i]`.
#
# **Exercise.** Split a batch of token sequences into inputs and targets.

# %% tags=["exercise"]
def inputs_and_targets(
    tokens: Int[Tensor, "batch seq"],
) -> tuple[Int[Tensor, "batch seq-1"], Int[Tensor, "batch seq-1"]]:
    """The inputs (tokens at positions 0..seq-2) and the targets (tokens at 1..seq-1), both int64 [batch, seq-1]."""
    return tokens[:, :-1], tokens[:, 1:]


# %% [markdown]
# We score the model only where the *input* token is a candidate: the prediction made while reading a name is the
# prediction of the name's follower.
#
# **Exercise.** Return a boolean mask of the input positions whose token is one of `candidates`. A lookup table of
# size `d_vocab` indexed by the tokens is the fast way; `torch.isin` works too.

# %% tags=["exercise"]
def candidate_mask(
    inputs: Int[Tensor, "batch pos"], candidates: Int[Tensor, "n_candidates"], d_vocab: int
) -> Bool[Tensor, "batch pos"]:
    """True where inputs[b, p] is one of `candidates` (token ids in [0, d_vocab)); a bool tensor shaped like inputs."""
    is_candidate = torch.zeros(d_vocab, dtype=torch.bool, device=inputs.device)
    is_candidate[candidates.to(inputs.device)] = True
    return is_candidate[inputs]


# %% [markdown]
# **Exercise.** Compute the per-position loss: run the model on the inputs and, at every position, return minus the
# log-probability of the target. Then, in the next exercise, average it over the candidate positions only: the mean
# over *all* selected positions of the batch (each selected position counts once, however many a sequence has).

# %% tags=["exercise"]
def per_position_loss(
    model: HookedTransformer, inputs: Int[Tensor, "batch pos"], targets: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos"]:
    """-log p(targets[b, p] | inputs[b, 0..p]) under `model`, float32 [batch, pos]."""
    log_probs = model(inputs).log_softmax(dim=-1)
    return -log_probs.gather(-1, targets[..., None])[..., 0]


def loss_on_candidates(losses: Float[Tensor, "batch pos"], mask: Bool[Tensor, "batch pos"]) -> float:
    """Mean of `losses` over the positions where `mask` is True (all of the batch pooled), as a Python float."""
    return losses[mask].mean().item()


# %%
if MAIN:
    N_SEQUENCES = 512
    dataset = held_out_stories(N_SEQUENCES)
    candidates = torch.tensor(INDUCTION_CANDIDATES)
    inputs, targets = inputs_and_targets(dataset)
    mask = candidate_mask(inputs, candidates, model.cfg.d_vocab)
    clean_losses = per_position_loss(model, inputs, targets)
    clean_loss = loss_on_candidates(clean_losses, mask)
    print(f"{N_SEQUENCES} stories, {int(mask.sum())} candidate positions ({mask.float().mean():.1%} of positions)")
    print(f"loss on all positions:       {clean_losses.mean().item():.3f}")
    print(f"loss on candidate positions: {clean_loss:.3f}")
    first_mention = torch.zeros_like(mask)
    for b in range(N_SEQUENCES):
        seen: set[int] = set()
        for p in mask[b].nonzero()[:, 0].tolist():
            first_mention[b, p] = inputs[b, p].item() not in seen
            seen.add(inputs[b, p].item())
    print(f"  after the first mention of a name: {clean_losses[mask & first_mention].mean().item():.3f}")
    print(f"  after a later mention:             {clean_losses[mask & ~first_mention].mean().item():.3f}")

# %% [markdown]
# After the first mention of a name the model cannot know the follower and the loss is high; after later mentions
# it is low. The average over candidate positions mixes both, and it is the number scrubbing will move.
#
# ## 2. Resampling with seeds: sampling groups
#
# Causal scrubbing replaces an input by a *random other* input. Which other input, and which parts of the model share
# it, must be under our control:
#
# - two parts that a hypothesis says see "the same other input" must get the *same* resampled sequence;
# - two parts that see "independent other inputs" must get *independent* resamplings;
# - and the whole experiment must be reproducible, so every draw is seeded.
#
# REMIX's `rust_circuit` does this with `DiscreteVar`s that share a `probs_and_group`: variables with the same group
# are sampled together. We do the same with plain permutations. A **sampling group** is a name with a seed; every
# variable belongs to one group; every variable of a group gets the group's permutation of the dataset's sequences.
#
# **Exercise.** Given which group each variable belongs to and each group's seed, return each variable's
# permutation. A group's permutation is `torch.randperm(n, generator=torch.Generator().manual_seed(seed))`: a fresh
# generator per group, so a group's draw does not depend on which other groups exist or in which order they come.

# %% tags=["exercise"]
def sample_groups(
    group_of: dict[str, str], group_seeds: dict[str, int], n: int
) -> dict[str, Int[Tensor, "n"]]:
    """The permutation of range(n) each variable sees: variable -> int64 [n].

    group_of: variable name -> group name; group_seeds: group name -> seed. Every variable of a group gets the same
    permutation, drawn uniformly at random from a generator seeded with that group's seed alone: the same seed gives
    the same permutation, and groups with different seeds are independent. Any correct way of drawing passes.
    """
    permutations = {
        group: torch.randperm(n, generator=torch.Generator().manual_seed(seed)) for group, seed in group_seeds.items()
    }
    return {variable: permutations[group] for variable, group in group_of.items()}


# %%
if MAIN:
    draws = sample_groups({"query": "A", "key": "A", "value": "B"}, {"A": 11, "B": 22}, 2000)
    same_group = torch.corrcoef(torch.stack([draws["query"], draws["key"]]).float())[0, 1].item()
    other_group = torch.corrcoef(torch.stack([draws["query"], draws["value"]]).float())[0, 1].item()
    print(f"correlation of two variables in one group:        {same_group:.3f}")
    print(f"correlation of two variables in different groups: {other_group:+.3f}")
    assert same_group == 1.0 and abs(other_group) < 0.1, "independent groups must be uncorrelated"

# %% [markdown]
# ## 3. The baselines and the percent of loss recovered
#
# The crudest scrubbing replaces *every* input of the model: we run the model on the resampled sequences but keep
# the original targets and the original candidate positions. The labels are part of the *question*, not of the
# model: scrubbing them too would just measure the model on other text. This gives the loss of a model that sees
# unrelated text, an upper bound on how bad things can get.
#
# **Exercise.** Compute the loss on candidates when the model reads `tokens[other]` while being scored on the
# targets and candidate positions of `tokens`. (Reuse your functions from section 1.)

# %% tags=["exercise"]
def scrub_all_inputs_loss(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], other: Int[Tensor, "batch"],
    candidates: Int[Tensor, "n_candidates"],
) -> float:
    """Loss on the candidate positions of `tokens` (their targets) when the model reads tokens[other] instead.

    other: a permutation of the sequences (int64 [batch]); sequence b is replaced by sequence other[b], whole.
    """
    inputs, targets = inputs_and_targets(tokens)
    mask = candidate_mask(inputs, candidates, model.cfg.d_vocab)
    losses = per_position_loss(model, inputs[other], targets)
    return loss_on_candidates(losses, mask)


# %% [markdown]
# The baseline we measure hypotheses against is less drastic: **the induction head scrubbed**. Every input of L1H0
# comes from the other sequence while everything else in the model sees the original: a model that works normally
# except that induction is switched off. A hypothesis about L1H0 claims that *some* of its inputs can be replaced
# without harm. If the loss with those replaced is `scrubbed`, the loss of the untouched model `clean` and the loss
# with the induction head scrubbed `baseline`, the hypothesis recovers
#
# $$\text{recovered} = \frac{\text{baseline} - \text{scrubbed}}{\text{baseline} - \text{clean}}$$
#
# of the loss: 1 (100%) when scrubbing costs nothing, 0 when it is as bad as switching induction off. It can leave
# `[0, 1]`: above 1 when the scrubbed model does better than the clean one, below 0 when worse than the baseline.
#
# **Exercise.** Write it, for numbers or tensors of scrubbed losses.

# %% tags=["exercise"]
def percent_loss_recovered(
    clean: float, scrubbed: Float[Tensor, "..."], baseline: float
) -> Float[Tensor, "..."]:
    """(baseline - scrubbed) / (baseline - clean), elementwise over `scrubbed` (a float tensor of any shape);
    a fraction, 1.0 meaning everything recovered."""
    return (baseline - scrubbed) / (baseline - clean)


# %%
if MAIN:
    other = torch.randperm(N_SEQUENCES, generator=torch.Generator().manual_seed(0))
    all_scrubbed_loss = scrub_all_inputs_loss(model, dataset, other, candidates)
    print(f"loss with no scrubbing:      {clean_loss:.3f}")
    print(f"loss with all inputs scrubbed: {all_scrubbed_loss:.3f}")

# %% [markdown]
# ## 4. Splitting a head's inputs into components
#
# In an attention-only model without LayerNorm the input of layer 1 (the residual stream before it) is a plain sum:
#
# $$x = \underbrace{W_E[t]}_{\text{embed}} + \sum_h \underbrace{z_h W_O^{0,h}}_{\text{L0H}h} + \underbrace{b_O^0}_{\text{bias}}$$
#
# Notice what is *not* in the sum: with shortformer positions, the positional embedding never enters the residual
# stream. Each attention layer adds it to its query and key inputs, at the position where the query or key sits. So
# a residual vector carries no position of its own, which will let us move residual vectors between positions.
#
# Each layer-1 head reads this sum three times: once through W_Q (its query input), once through W_K (key), once
# through W_V (value). Normally the three are the same vector. With `model.set_use_split_qkv_input(True)`,
# TransformerLens gives each head its own copy of each, at hook points `blocks.1.hook_q_input`, `hook_k_input` and
# `hook_v_input` (shape `[batch, pos, head, d_model]`), so a hook can give L1H0's key a different input from its
# query, and from the other heads' keys. That is what a path-specific hypothesis needs: "L1H0's value reads only the
# token embedding" means the *embedding component* of L1H0's *value input* must come from the original sequence,
# while every other component of that input may come from another sequence.
#
# **Exercise.** Split the input of layer 1 into its components, in the order embed, L0H0, ..., L0H{n-1}, b_O of
# layer 0 (broadcast to every position). They must add up to `blocks.1.hook_resid_pre`.

# %% tags=["exercise"]
def layer1_input_components(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "component batch pos d_model"]:
    """The components of the residual stream entering layer 1, float32 [n_heads + 2, batch, pos, d_model]:
    the token embedding, each layer-0 head's output z @ W_O (head order), then layer 0's b_O at every position.
    No positional embedding: with shortformer positions it never enters the residual stream."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in ("hook_embed", "blocks.0.attn.hook_z"))
    heads = torch.einsum("bphd,hdm->hbpm", cache["blocks.0.attn.hook_z"], model.W_O[0])
    bias = model.b_O[0].expand_as(cache["hook_embed"])
    return torch.cat([cache["hook_embed"][None], heads, bias[None]])


# %%
if MAIN:
    sample = dataset[:8]
    components = layer1_input_components(model, sample)
    _, sample_cache = model.run_with_cache(sample)
    gap = (components.sum(0) - sample_cache["blocks.1.hook_resid_pre"]).abs().max().item()
    print(f"components: {tuple(components.shape)}; largest gap between their sum and resid_pre of layer 1: {gap:.1e}")
    component_labels = ["embed", *[f"L0H{h}" for h in range(model.cfg.n_heads)], "b_O0"]
    plotting.show(
        plotting.bar(
            components.norm(dim=-1).mean(dim=(1, 2)),
            labels=component_labels,
            title="Mean norm of each component of the residual stream entering layer 1",
            yaxis="norm",
        )
    )

# %% [markdown]
# Now the declarative part. A **spec** says, for each of the query, key and value inputs of one head, which
# component comes from which sequence: `{"v": {"embed": "orig", "L0H0": "other", ...}, ...}`. A component the spec
# does not mention comes from the original. Scrubbing replaces *whole sequences*: component `c` "from other" at
# `[b, p]` is the component of sequence `other[b]` at the same position `p`.
#
# **Exercise.** Assemble the three inputs from the components of the original batch, following the spec.

# %% tags=["exercise"]
def assemble_qkv_inputs(
    components: Float[Tensor, "component batch pos d_model"], names: list[str], other: Int[Tensor, "batch"],
    spec: dict[str, dict[str, str]],
) -> Float[Tensor, "qkv batch pos d_model"]:
    """The query, key and value inputs of one head (stacked in that order), each the sum of all components.

    names: the name of each component (components[i] is names[i]). spec: "q"/"k"/"v" -> component name ->
    "orig" or "other"; missing entries mean "orig". A component from "other" is components[i, other]: sequence
    other[b] at the same position.
    """
    inputs = []
    for which in "qkv":
        sources = spec.get(which, {})
        total = torch.zeros_like(components[0])
        for i, name in enumerate(names):
            total = total + (components[i, other] if sources.get(name, "orig") == "other" else components[i])
        inputs.append(total)
    return torch.stack(inputs)


# %% [markdown]
# **Exercise.** Run the model with one head's query, key and value inputs replaced by given tensors, and return the
# logits. Turn on split inputs with `model.set_use_split_qkv_input(True)` for the run only (turn it off again, even
# if the run fails: `try ... finally`), and replace the head's slice at the three hook points. The hook points carry
# the residual stream only: the model adds the positional embedding to queries and keys itself.

# %% tags=["exercise"]
def run_with_qkv_inputs(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], qkv_inputs: Float[Tensor, "qkv batch pos d_model"],
    layer: int, head: int,
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits (float32 [batch, pos, d_vocab]) of `model` on `tokens` with the query, key and value inputs of
    `head` in `layer` replaced by qkv_inputs[0], [1], [2]; every other head reads its usual input."""

    def replace(which: int):
        def hook(activation: Float[Tensor, "batch pos head d_model"], hook: HookPoint) -> Tensor:
            activation = activation.clone()
            activation[:, :, head] = qkv_inputs[which]
            return activation

        return hook

    hooks = [(f"blocks.{layer}.hook_{x}_input", replace(i)) for i, x in enumerate("qkv")]
    model.set_use_split_qkv_input(True)
    try:
        return model.run_with_hooks(tokens, fwd_hooks=hooks)
    finally:
        model.set_use_split_qkv_input(False)


# %%
if MAIN:
    SPEC_ALL_OTHER = {x: {name: "other" for name in component_labels} for x in "qkv"}
    sample_other = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    qkv = assemble_qkv_inputs(components, component_labels, sample_other, {})
    unchanged = (run_with_qkv_inputs(model, sample, qkv, 1, 0) - model(sample)).abs().max().item()
    print(f"with every component from the original, the logits move by at most {unchanged:.1e}")

# %% [markdown]
# A full forward pass per hypothesis repeats a lot of work: layer 0 is the same for every hypothesis, and only L1H0
# changes. To scrub fast we will compute the layer-1 head ourselves from its three inputs. Mind the two things the
# hook points leave to the model: the **positional embedding**, added to the query and key inputs (not the value
# input) at the query's and the key's own positions, and the **biases** b_Q, b_K, b_V.
#
# **Exercise.** Compute one head's output from its three inputs: queries, keys and values with their biases,
# scores scaled by `sqrt(d_head)`, the causal mask, a softmax over keys, then `z @ W_O` (without `b_O`, which
# belongs to the layer, not to the head).

# %% tags=["exercise"]
def head_output_from_inputs(
    model: HookedTransformer, layer: int, head: int, q_input: Float[Tensor, "batch pos d_model"],
    k_input: Float[Tensor, "batch pos d_model"], v_input: Float[Tensor, "batch pos d_model"],
) -> Float[Tensor, "batch pos d_model"]:
    """The output z @ W_O (float32 [batch, pos, d_model], no b_O) of `head` in `layer` of a shortformer model whose
    query, key and value inputs (residual stream, no positions) are given; positions 0..pos-1 of W_pos are added to
    the query and key inputs."""
    pos = model.W_pos[: q_input.shape[1]]
    q = (q_input + pos) @ model.W_Q[layer, head] + model.b_Q[layer, head]
    k = (k_input + pos) @ model.W_K[layer, head] + model.b_K[layer, head]
    v = v_input @ model.W_V[layer, head] + model.b_V[layer, head]
    scores = q @ k.transpose(-1, -2) / math.sqrt(model.cfg.d_head)
    future = torch.triu(torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device), diagonal=1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    return pattern @ v @ model.W_O[layer, head]


# %%
if MAIN:
    resid = sample_cache["blocks.1.hook_resid_pre"]
    by_hand = head_output_from_inputs(model, 1, 0, resid, resid, resid)
    from_model = torch.einsum("bpd,dm->bpm", sample_cache["z", 1][:, :, 0], model.W_O[1, 0])
    print(f"L1H0 by hand vs the model: largest difference {(by_hand - from_model).abs().max().item():.1e}")

# %% [markdown]
# ## 5. The hypothesis ladder
#
# Now we can scrub. The course's helper `curriculum.scrubbing` does exactly what your functions do, organised for
# speed: it computes the layer-0 components of the dataset once (every resampled input is a re-indexing of the same
# dataset, so one pass serves all of them), projects each component through L1H0's W_K and W_V once, assembles every
# hypothesis's inputs from those projections, and computes queries and logits only at the candidate positions. A
# hypothesis is written as in your spec: for each input (`"L1H0.q"`, `"L1H0.k"`, `"L1H0.v"`, ..., `"logits"` for the
# unembedding's input), which source each component sees.
#
# First, let us check that the helper agrees with your functions on one hypothesis, "every input of L1H0 from the
# other sequence", on a small batch.

# %%
if MAIN:
    from curriculum import scrubbing

    small = dataset[:64]
    small_other = torch.randperm(64, generator=torch.Generator().manual_seed(2))
    small_inputs, small_targets = inputs_and_targets(small)
    small_components = layer1_input_components(model, small_inputs)
    qkv = assemble_qkv_inputs(small_components, component_labels, small_other, SPEC_ALL_OTHER)
    logits = run_with_qkv_inputs(model, small_inputs, qkv, 1, 0)
    losses = -logits.log_softmax(-1).gather(-1, small_targets[..., None])[..., 0]
    mine = loss_on_candidates(losses, candidate_mask(small_inputs, candidates, model.cfg.d_vocab))
    helper_run = scrubbing.ScrubbingRun(model, small, INDUCTION_CANDIDATES)
    hypothesis = scrubbing.Hypothesis("L1H0 scrubbed", {f"L1H0.{x}": {c: "other" for c in component_labels}
                                                        for x in "qkv"})
    helper = helper_run.loss(hypothesis, {"orig": scrubbing.identity_source(64, small.shape[1]),
                                          "other": scrubbing.sequence_source_from(small_other, small.shape[1])})
    print(f"L1H0 scrubbed, 64 sequences: your functions {mine:.4f}, the helper {helper:.4f}")

# %% [markdown]
# The ladder of REMIX tests three claims about the induction head, each on its own and then together:
#
# - **embeddings -> value**: L1H0's value input needs only the token embedding (what it copies is the token itself);
#   every other component of the value input is scrubbed;
# - **embeddings -> query**: its query input needs only the token embedding (it looks for the current token);
# - **previous-token head -> key**: its key input needs only L0H0's output (each key says "my previous token was A");
# - **all three** at once;
# - and a **bonus path**: L0H0's output itself needs only its value at the previous position. We run L0H0 on mixed
#   inputs: its attention pattern from the other sequence (if it attends by *position*, the pattern does not depend
#   on the tokens), its value at the position before each key from the original, its values elsewhere from the other
#   sequence.
#
# **Exercise.** Compute the output of a layer-0 head run on such mixed inputs: the attention pattern (queries and
# keys, with positions) from `other_tokens`, the value input at position `p - 1` from `tokens` for the output at
# position `p`, every other value from `other_tokens`. At position 0 there is no previous position.

# %% tags=["exercise"]
def prev_value_path_output(
    model: HookedTransformer, head: int, tokens: Int[Tensor, "batch pos"], other_tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos d_model"]:
    """Layer-0 head `head`'s output z @ W_O (float32 [batch, pos, d_model], no b_O) when its pattern comes from
    `other_tokens` and, for the output at position p, the value at key position p - 1 comes from `tokens` (values at
    every other key position from `other_tokens`). Values are W_E[t] @ W_V + b_V."""
    seq = tokens.shape[1]
    W_V, b_V = model.W_V[0, head], model.b_V[0, head]
    other_embed = model.W_E[other_tokens]
    qk_input = other_embed + model.W_pos[:seq]
    q = qk_input @ model.W_Q[0, head] + model.b_Q[0, head]
    k = qk_input @ model.W_K[0, head] + model.b_K[0, head]
    scores = q @ k.transpose(-1, -2) / math.sqrt(model.cfg.d_head)
    future = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=tokens.device), diagonal=1)
    pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    other_v = other_embed @ W_V + b_V
    z = pattern @ other_v
    orig_v = model.W_E[tokens] @ W_V + b_V
    to_previous = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)  # [batch, seq-1]: weight of key p-1 at query p
    z[:, 1:] = z[:, 1:] + to_previous[..., None] * (orig_v[:, :-1] - other_v[:, :-1])
    return z @ model.W_O[0, head]


# %%
if MAIN:
    mixed = prev_value_path_output(model, 0, sample, sample[sample_other])
    true_l0h0 = components[1]
    shuffled_l0h0 = components[1, sample_other]
    print("L0H0 output, relative distance from the clean one:")
    print(f"  bonus path (pattern from other, previous value from orig): "
          f"{((mixed - true_l0h0).norm() / true_l0h0.norm()).item():.3f}")
    print(f"  fully from the other sequence:                            "
          f"{((shuffled_l0h0 - true_l0h0).norm() / true_l0h0.norm()).item():.3f}")

# %% [markdown]
# Now the ladder itself, on 512 stories, with 4 independent resamplings per hypothesis (resampling `r` uses its
# own seed for every source). The table also holds the baselines and the hypotheses of the next section;
# `curriculum.scrubbing.day3_hypotheses` writes them all down as specs. Read a few of them.

# %%
if MAIN:
    import time

    N_RESAMPLINGS = 4
    hypotheses = scrubbing.day3_hypotheses(model)
    for h in hypotheses[3:8]:
        print(f"{h.name}: {scrubbing.describe(h)}")
    started = time.perf_counter()
    run = scrubbing.ScrubbingRun(model, dataset, INDUCTION_CANDIDATES)
    resamplings = [scrubbing.day3_sources(dataset, r) for r in range(N_RESAMPLINGS)]
    table = run.table(hypotheses, resamplings)  # [resampling, hypothesis]
    print(f"{len(hypotheses)} hypotheses x {N_RESAMPLINGS} resamplings on {N_SEQUENCES} stories: "
          f"{time.perf_counter() - started:.1f} s")

# %% [markdown]
# ## 6. Error bars
#
# Every scrubbed loss is an average over random resamplings, so it has sampling noise. With the losses of `n`
# independent resamplings, their mean estimates the scrubbed loss and the **standard error of the mean**,
# `std / sqrt(n)` (with the unbiased standard deviation, dividing by `n - 1`), says how far that mean is likely to be
# from the value we would get with infinitely many resamplings. Two hypotheses whose means differ by many standard
# errors really differ; 0.99 versus 1.00 recovered may well be noise.
#
# **Exercise.** Compute the mean and the standard error of each hypothesis's loss over resamplings.

# %% tags=["exercise"]
def mean_and_standard_error(
    losses: Float[Tensor, "resampling hypothesis"],
) -> tuple[Float[Tensor, "hypothesis"], Float[Tensor, "hypothesis"]]:
    """Mean over resamplings (dim 0) and standard error of that mean, std (unbiased, n - 1) / sqrt(n)."""
    n = losses.shape[0]
    return losses.mean(dim=0), losses.std(dim=0, unbiased=True) / math.sqrt(n)


# %%
if MAIN:
    names = [h.name for h in hypotheses]
    mean_loss, sem_loss = mean_and_standard_error(table)
    clean_mean = mean_loss[names.index("no scrubbing")].item()
    baseline_mean = mean_loss[names.index("L1H0 scrubbed")].item()
    recovered = percent_loss_recovered(clean_mean, mean_loss, baseline_mean)
    recovered_sem = sem_loss / (baseline_mean - clean_mean)
    print(f"{'hypothesis':58s} {'loss':>7s} {'± s.e.':>7s} {'recovered':>10s} {'± s.e.':>7s}")
    for i, name in enumerate(names):
        print(f"{name:58s} {mean_loss[i]:7.3f} {sem_loss[i]:7.3f} {recovered[i]:10.1%} {recovered_sem[i]:7.1%}")
    plotting.show(scrubbing.ladder_figure(names, recovered, recovered_sem))

# %% [markdown]
# (The error bar of the percent recovered above treats the clean loss and the baseline as exact. Both are averages
# too, but the clean loss has no resampling noise at all and the baseline's standard error is small next to the
# differences we read.)
#
# ## 7. Hypotheses the data refutes, and a refined hypothesis
#
# On this clean little model the REMIX ladder holds almost exactly: every step recovers most of the loss, and the
# three claims together nearly all of it. That is not because causal scrubbing is lenient. The table also holds
# hypotheses that sound plausible and are wrong:
#
# - **"L1H0's key needs only the token embedding"**: only the embedding component of the key input is kept;
# - **"L1H0's query needs only L0H0"**: the query reads the previous token instead of the current one;
# - **"the other layer-1 heads don't matter"**: every input of L1H1, L1H2 and L1H3 is scrubbed.
#
# Causal scrubbing can also *refine* a hypothesis. "The key input can come from anywhere" is plainly false. The
# mechanism says something narrower: a key only needs to say *which token came before it*. So resample L1H0's key
# input (every component of it) not from a random position but from a random position, in any sequence, **whose
# previous token is the same**. Because positions are not in the residual stream, a residual vector taken from
# another position is a legitimate input: the layer adds the positional embedding of the position where the key
# sits. The same for the query: resample it from positions with the *same current token*. Each refined hypothesis
# is compared with its naive counterpart, which resamples from any position.
#
# **Exercise.** Write the resampler: for every element `i`, a uniformly random index `j` with
# `feature[j] == feature[i]` (possibly `i` itself). To make everyone's draw the same, follow this recipe: draw
# `u = torch.rand(n, generator=generator)` once; sort the indices by feature with `torch.argsort(feature,
# stable=True)`; element `i`, whose feature value occupies a block of `count` consecutive entries starting at `start`
# in that order, picks the entry at `start + floor(u[i] * count)`.

# %% tags=["exercise"]
def matched_resample(feature: Int[Tensor, "n"], generator: torch.Generator) -> Int[Tensor, "n"]:
    """For each i, an index j drawn uniformly at random among the indices with feature[j] == feature[i].

    feature: int64 [n]. Returns int64 [n]. Draws for different i are independent, and every random number comes from
    `generator`: the same generator state gives the same output, and torch's global RNG is left alone. Any correct
    way of drawing passes: grading tests these properties over many seeds, not one particular sequence of draws.
    """
    u = torch.rand(feature.shape[0], generator=generator).to(feature.device)
    order = torch.argsort(feature, stable=True)
    values, counts = torch.unique_consecutive(feature[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    block = torch.searchsorted(values, feature)
    offset = (u * counts[block]).long().clamp(max=counts[block] - 1)
    return order[starts[block] + offset]


# %%
if MAIN:
    demo_feature = torch.tensor([3, 1, 3, 2, 1, 3])
    demo = matched_resample(demo_feature, torch.Generator().manual_seed(0))
    print(f"feature {demo_feature.tolist()} -> resampled indices {demo.tolist()} "
          f"(features {demo_feature[demo].tolist()})")
    for name in scrubbing.REFUTED + scrubbing.REFINED_PAIRS_FLAT:
        i = names.index(name)
        print(f"{name:58s} recovered {recovered[i]:7.1%} ± {recovered_sem[i]:.1%}")

# %% [markdown]
# ## 8. What we found
#
# The cell below prints the conclusions from the table; `tests/test_day3_claims.py` recomputes every one of them with
# this notebook's data and seeds.

# %%
if MAIN:
    def recovered_of(name: str) -> str:
        i = names.index(name)
        return f"{recovered[i]:.1%} ± {recovered_sem[i]:.1%}"

    print(f"clean loss on candidates {clean_mean:.3f}; all inputs scrubbed {mean_loss[names.index('all inputs scrubbed')]:.3f}; "
          f"L1H0 scrubbed {baseline_mean:.3f}")
    for name in scrubbing.LADDER:
        print(f"ladder   {name:50s} {recovered_of(name)}")
    for name in scrubbing.REFUTED:
        print(f"refuted  {name:50s} {recovered_of(name)}")
    cost = mean_loss[names.index("other layer-1 heads don't matter")].item() - clean_mean
    print(f"scrubbing every input of L1H1-L1H3 costs {cost:.2f} nats on the candidate positions")
    for naive, refined in scrubbing.REFINED_PAIRS:
        print(f"naive    {naive:50s} {recovered_of(naive)}")
        print(f"refined  {refined:50s} {recovered_of(refined)}")

# %% [markdown]
# The story of `induction-2l` under causal scrubbing (the numbers are the ones printed above, on 512 held-out
# stories with 4 resamplings; `tests/test_day3_claims.py` asserts each statement):
#
# - **Induction is most of what the model does after a name.** Scrubbing L1H0's inputs raises the loss on candidate
#   positions from about 1.8 to about 6.1 nats; scrubbing every input of the model raises it to about 8.8.
# - **The REMIX ladder holds, step by step and together.** Each of embeddings -> value, embeddings -> query and
#   previous-token head -> key recovers at least 97% of the loss; all three together recover at least 97%; with the
#   bonus path (L0H0's pattern from the other sequence, only its value at the previous position kept) at least 95%.
#   So L1H0 reads the current token in its query, the previous token (through L0H0, which attends by position) in its
#   key, and copies the token embedding through its value. REMIX found that its naive ladder explained only about
#   a third of the loss on a real language model; on this model, trained on a language built for induction, the
#   naive story is nearly the whole story.
# - **The method refutes what is false.** "The key needs only the token embedding" and "the query needs only L0H0"
#   each recover less than 30%; "the other layer-1 heads don't matter" recovers less than 90%: scrubbing L1H1-L1H3
#   costs more than half a nat on the candidate positions, so they help predict the word after a name too.
# - **Agreeing on a feature is what matters.** A key input taken from a random position recovers nothing (within 5
#   points of 0%), but a key input taken from a position with the same previous token recovers more than 90%;
#   likewise a query input from a random position recovers less than 15%, one from a position with the same token
#   more than 90%. This is the sense in which causal scrubbing tests a *feature*: the hypothesis "the key is a
#   function of the previous token" is confirmed by resampling everything but that.
# - **The error bars are small.** Over 4 resamplings the standard error of every percent recovered is below one
#   percentage point, so the gaps above are far outside the resampling noise. (They say nothing about the choice of
#   the 512 stories themselves: another held-out set would move every number a little.)
