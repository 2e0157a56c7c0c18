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
# **causal scrubbing** (Chan, Garriga-Alonso, Goldowsky-Dill, Greenblatt, Nitishinskaya, Radhakrishnan, Shlegeris and
# Thomas, "Causal Scrubbing: a method for rigorously testing interpretability hypotheses", Redwood Research, 2022).
# A hypothesis says which inputs each part of the model actually uses, and which properties of those inputs matter.
# We test it by running the model with every input the hypothesis calls irrelevant replaced by the same input taken
# from *another, randomly chosen* example that agrees on everything the hypothesis says does matter. If the
# hypothesis is right, the loss barely moves; the share of a baseline's damage that the hypothesis undoes is its
# *percent of loss recovered*. The day follows the third day of Redwood Research's REMIX curriculum, which scrubs
# the induction heads of a two-layer model; induction heads themselves are from Olsson et al. 2022, "In-context
# Learning and Induction Heads".
#
# By the end of the day you will have:
#
# 1. built the dataset: held-out stories, the induction candidates (the names), and the loss on the positions where
#    induction is the only way to be right;
# 2. drawn seeded resamplings in *sampling groups* (same permutation within a group, independent across groups);
# 3. measured the baselines and defined the percent of loss recovered;
# 4. split the inputs of a layer-1 head into components (embedding, each layer-0 head, biases) and run the head on
#    inputs assembled from different sources, with hooks and by hand;
# 5. written a resampler that keeps a *feature* (the same token, the same previous token), and error bars;
# 6. written hypotheses as data, and a scrubber that runs any of them to a loss with error bars;
# 7. compared resampling with zero and mean ablation on this model, and seen what sampling groups change;
# 8. written your own hypotheses (a ladder of increasing specificity, one you expect to fail, and a naive and a
#    feature-conditioned hypothesis) and tested them: the capstone.
#
# Every function in a cell marked as an exercise is graded: run `check(function_name)` in the notebook, or
# `pytest --day 3` in a terminal.

# %%
from __future__ import annotations

import math
import os
import warnings
import zlib

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in Jupyter without ipywidgets

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from curriculum.library import plotting

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
# the **inputs** are what the model reads and the **targets** what each of its predictions is scored on, aligned so
# that the prediction at input position `i` is scored against target `i`.
#
# **Exercise.** Split a batch of token sequences into inputs and targets.

# %% tags=["exercise"]
def inputs_and_targets(
    tokens: Int[Tensor, "batch seq"],
) -> tuple[Int[Tensor, "batch seq-1"], Int[Tensor, "batch seq-1"]]:
    """The inputs (the tokens at positions 0 to seq-2) and the targets (the tokens at 1 to seq-1): targets[b, i] is
    the token the model must predict after reading inputs[b, 0..i]. Both int64 [batch, seq-1]."""
    return tokens[:, :-1], tokens[:, 1:]


# %% [markdown]
# We score the model only where the *input* token is a candidate: the prediction made while reading a name is the
# prediction of the name's follower.
#
# **Exercise.** Return a boolean mask of the input positions whose token is one of `candidates`.

# %% tags=["exercise"]
def candidate_mask(
    inputs: Int[Tensor, "batch pos"], candidates: Int[Tensor, "n_candidates"], d_vocab: int
) -> Bool[Tensor, "batch pos"]:
    """True where inputs[b, p] is one of `candidates` (token ids in [0, d_vocab)); a bool tensor shaped like inputs."""
    is_candidate = torch.zeros(d_vocab, dtype=torch.bool, device=inputs.device)
    is_candidate[candidates.to(inputs.device)] = True
    return is_candidate[inputs]


# %% [markdown]
# **Exercise.** Compute the per-position loss: at every position, minus the log-probability the model gives to the
# target. Then, in the next exercise, average it over the candidate positions only: every selected position of the
# batch counts once, however many a sequence has.

# %% tags=["exercise"]
def per_position_loss(
    model: HookedTransformer, inputs: Int[Tensor, "batch pos"], targets: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos"]:
    """Minus the log-probability of targets[b, p] given inputs[b, 0..p] under `model`, float32 [batch, pos]."""
    log_probs = model(inputs).log_softmax(dim=-1)
    return -log_probs.gather(-1, targets[..., None])[..., 0]


def loss_on_candidates(losses: Float[Tensor, "batch pos"], mask: Bool[Tensor, "batch pos"]) -> float:
    """Mean of `losses` over the positions where `mask` is True, all of the batch pooled (each selected position
    weighs the same), as a Python float."""
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
# A group's draw must depend on its own seed only, not on which other groups exist or in which order they come:
# otherwise adding a group to a hypothesis would silently change the draws of the others.
#
# **Exercise.** Given which group each variable belongs to and each group's seed, return each variable's
# permutation.

# %% tags=["exercise"]
def sample_groups(
    group_of: dict[str, str], group_seeds: dict[str, int], n: int
) -> dict[str, Int[Tensor, "n"]]:
    """The permutation of 0..n-1 each variable sees: variable -> int64 [n].

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
# unrelated text.
#
# **Exercise.** Compute the loss on candidates when the model reads other sequences while being scored on the
# targets and candidate positions of `tokens`. (Reuse your functions from section 1.)

# %% tags=["exercise"]
def scrub_all_inputs_loss(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], other: Int[Tensor, "batch"],
    candidates: Int[Tensor, "n_candidates"],
) -> float:
    """Loss on the candidate positions of `tokens` (scored on their own targets) when the model reads sequence
    other[b] in place of sequence b, whole, as a Python float.

    other: a permutation of the sequences, int64 [batch].
    """
    inputs, targets = inputs_and_targets(tokens)
    mask = candidate_mask(inputs, candidates, model.cfg.d_vocab)
    losses = per_position_loss(model, inputs[other], targets)
    return loss_on_candidates(losses, mask)


# %% [markdown]
# The baseline we measure hypotheses against is less drastic: **the induction head scrubbed**. Every input of L1H0
# comes from one other sequence while everything else in the model sees the original: the model works normally
# except that its induction head reads another story. A hypothesis about L1H0 claims that *some* of its inputs can
# be replaced without harm. If the loss with those replaced is `scrubbed`, the loss of the untouched model `clean` and
# the loss with the induction head scrubbed `baseline`, the hypothesis recovers
#
# $$\text{recovered} = \frac{\text{baseline} - \text{scrubbed}}{\text{baseline} - \text{clean}}$$
#
# of the loss: 1 (100%) when scrubbing costs nothing, 0 when it is as bad as the baseline. It can leave `[0, 1]`:
# above 1 when the scrubbed model does better than the clean one, below 0 when worse than the baseline.
#
# **Exercise.** Write it, for numbers or tensors of scrubbed losses.

# %% tags=["exercise"]
def percent_loss_recovered(
    clean: float, scrubbed: Float[Tensor, "..."], baseline: float
) -> Float[Tensor, "..."]:
    """The fraction of the baseline's excess loss that each scrubbed loss removes, elementwise over `scrubbed` (a
    float tensor of any shape): 1.0 when a scrubbed loss equals `clean`, 0.0 when it equals `baseline`, linear in
    between and beyond."""
    return (baseline - scrubbed) / (baseline - clean)


# %%
if MAIN:
    other = torch.randperm(N_SEQUENCES, generator=torch.Generator().manual_seed(0))
    all_scrubbed_loss = scrub_all_inputs_loss(model, dataset, other, candidates)
    print(f"loss with no scrubbing:        {clean_loss:.3f}")
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
# through W_V (value). Normally the three are the same vector. TransformerLens can give each head its own copy of
# each (`model.set_use_split_qkv_input`, hook points `blocks.1.hook_q_input`, `hook_k_input` and `hook_v_input`,
# shaped `[batch, pos, head, d_model]`), so a hook can give L1H0's key a different input from its query, and from the
# other heads' keys. That is what a path-specific hypothesis needs: "L1H0's value reads only the token embedding"
# means the *embedding component* of L1H0's *value input* must come from the original sequence, while every other
# component of that input may come from another sequence.
#
# **Exercise.** Split the input of layer 1 into its components, in the order embed, L0H0, ..., L0H{n-1}, b_O of
# layer 0. They must add up to `blocks.1.hook_resid_pre`.

# %% tags=["exercise"]
def layer1_input_components(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "component batch pos d_model"]:
    """The components of the residual stream entering layer 1, float32 [n_heads + 2, batch, pos, d_model]: the token
    embedding, each layer-0 head's output (its z through its own W_O, in head order), then layer 0's output bias at
    every position. No positional embedding: with shortformer positions it never enters the residual stream."""
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
# does not mention comes from the original. Scrubbing here replaces *whole sequences*: a component "from other" at
# sequence `b`, position `p` is that component in sequence `other[b]` at the same position `p`.
#
# **Exercise.** Assemble the three inputs from the components of the original batch, following the spec.

# %% tags=["exercise"]
def assemble_qkv_inputs(
    components: Float[Tensor, "component batch pos d_model"], names: list[str], other: Int[Tensor, "batch"],
    spec: dict[str, dict[str, str]],
) -> Float[Tensor, "qkv batch pos d_model"]:
    """The query, key and value inputs of one head, stacked in that order, each the sum of every component.

    names: the name of each component, in the components' order. spec: "q", "k" or "v" -> component name -> "orig"
    or "other"; a missing input or component means "orig". A component "from other" at sequence b, position p is
    that component of sequence other[b] at the same position p.
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
# logits. The model must be left exactly as you found it, whatever happens during the run. The hook points carry the
# residual stream only: the model adds the positional embedding to queries and keys itself.

# %% tags=["exercise"]
def run_with_qkv_inputs(
    model: HookedTransformer, tokens: Int[Tensor, "batch pos"], qkv_inputs: Float[Tensor, "qkv batch pos d_model"],
    layer: int, head: int,
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits (float32 [batch, pos, d_vocab]) of `model` on `tokens` when the query, key and value inputs of `head`
    in `layer` are qkv_inputs[0], [1] and [2] (residual stream, no positions); every other head reads its usual
    input. The model's configuration and hooks are as they were afterwards, even if the run fails."""

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
# changes. To scrub fast we will compute the layer-1 head ourselves from its three inputs. Mind what the hook points
# leave to the model: the positional embedding (which of the three inputs get it, and at which position?) and the
# biases of the head.
#
# **Exercise.** Compute one head's output from its three inputs.

# %% tags=["exercise"]
def head_output_from_inputs(
    model: HookedTransformer, layer: int, head: int, q_input: Float[Tensor, "batch pos d_model"],
    k_input: Float[Tensor, "batch pos d_model"], v_input: Float[Tensor, "batch pos d_model"],
) -> Float[Tensor, "batch pos d_model"]:
    """What `head` of `layer` writes to the residual stream (float32 [batch, pos, d_model], its share of the layer's
    attention output: without the layer's b_O) when its query, key and value inputs are the given residual-stream
    vectors (without positions), in a shortformer model: exactly what the model computes when these tensors are the
    head's inputs at its three split-input hook points."""
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
# ## 5. Resampling that keeps a feature, and error bars
#
# Resampling a whole sequence throws away everything about the input. A sharper hypothesis says *which property* of
# an input matters: "L1H0's key only needs to know which token came before it". Causal scrubbing tests such a claim by
# resampling the key input from a random position, in any sequence, **whose previous token is the same**: everything
# the claim calls irrelevant changes, the one feature it calls relevant is kept. Because positions are not in the
# residual stream, a residual vector taken from another position is a legitimate input: the layer adds the positional
# embedding of the position where the key sits. This is the heart of the method: a hypothesis is a claim about which
# *features* of the input each part of the model computes from, and the resampling respects exactly those features.
#
# **Exercise.** Write the resampler: for every element, a uniformly random index among the elements with the same
# feature value (possibly itself).

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

# %% [markdown]
# Every scrubbed loss is an average over random resamplings, so it has sampling noise. With the losses of `n`
# independent resamplings, their mean estimates the scrubbed loss and the **standard error of the mean** (the
# unbiased standard deviation of the `n` losses, divided by the square root of `n`) says how far that mean is likely
# to be from the value we would get with infinitely many resamplings. Two hypotheses whose means differ by many
# standard errors really differ; 0.99 versus 1.00 recovered may well be noise.
#
# **Exercise.** Compute the mean and the standard error of each hypothesis's loss over resamplings.

# %% tags=["exercise"]
def mean_and_standard_error(
    losses: Float[Tensor, "resampling hypothesis"],
) -> tuple[Float[Tensor, "hypothesis"], Float[Tensor, "hypothesis"]]:
    """For each hypothesis (column), the mean of its losses over the resamplings (rows) and the standard error of
    that mean, from the unbiased standard deviation (divided by n - 1)."""
    n = losses.shape[0]
    return losses.mean(dim=0), losses.std(dim=0, unbiased=True) / math.sqrt(n)


# %% [markdown]
# ## 6. A hypothesis is data
#
# From here on you write the hypotheses. A hypothesis about L1H0 is a small dictionary:
#
# ```python
# {"v": {"embed": "orig", "L0H0": "A", "L0H1": "A", "L0H2": "A", "L0H3": "A", "b_O0": "A"},
#  "groups": {"A": "sequence"}}
# ```
#
# - `"q"`, `"k"`, `"v"`: for L1H0's query, key and value inputs, which **source** each component (the names of
#   section 4) comes from. `"orig"` means kept: the hypothesis says this component matters. Any other name is a
#   sampling group: the hypothesis says the component does not matter beyond what the group keeps. A component or an
#   input the hypothesis does not mention is kept.
# - `"groups"`: what each sampling group's resampling **keeps**: `"sequence"` (the same position of another
#   sequence: nothing about the story is kept), `"token"` (a position with the same token), `"previous token"` (a
#   position with the same previous token) or `"any position"` (any position but the first: nothing is kept, not
#   even the position). Components with the same group name see the same resampled position; different names are
#   drawn independently.
#
# The example says: "L1H0's value needs only the token embedding; every other component of its value input can come
# from another story (one story for all of them)". Everything else in the model reads the original input.
#
# One *resampling* of a hypothesis's groups is a dict: group name -> int64 `[batch, pos]`, for every input position
# `(b, p)` the flat index `b2 * pos + p2` of the position `(b2, p2)` whose component is used instead. The function
# below draws one with your `sample_groups` and `matched_resample`: it is plumbing (a feature per kind of group and a
# seed per group and resampling), no exercise. A group's seed depends only on its name and the resampling's number,
# so two hypotheses that use the same group name see the same draw: their difference is then not blurred by
# different draws.

# %%
GROUP_KINDS = ("sequence", "token", "previous token", "any position")


def draw_sources(inputs: Int[Tensor, "batch pos"], groups: dict[str, str], resampling: int
                 ) -> dict[str, Int[Tensor, "batch pos"]]:
    """One resampling of `groups` (group name -> one of GROUP_KINDS) on `inputs`: group name -> flat source indices."""
    batch, pos = inputs.shape
    seeds = {name: zlib.crc32(f"{name}/{resampling}".encode()) for name in groups}
    by_sequence = [name for name, kind in groups.items() if kind == "sequence"]
    permutations = sample_groups({name: name for name in by_sequence}, {name: seeds[name] for name in by_sequence},
                                 batch)
    positions = torch.arange(pos, device=inputs.device)
    sources = {}
    for name, kind in groups.items():
        if kind == "sequence":
            sources[name] = permutations[name].to(inputs.device)[:, None] * pos + positions
            continue
        if kind == "token":
            feature = inputs.clone()
        elif kind == "previous token":
            feature = torch.cat([inputs[:, :1], inputs[:, :-1]], dim=1)
        elif kind == "any position":
            feature = torch.zeros_like(inputs)
        else:
            raise ValueError(f"group {name!r}: unknown kind {kind!r}; the kinds are {GROUP_KINDS}")
        if kind != "token":  # the first position has no previous token: it keeps itself (a value no other has)
            feature[:, 0] = -1 - torch.arange(batch, device=inputs.device)
        generator = torch.Generator().manual_seed(seeds[name])
        sources[name] = matched_resample(feature.flatten(), generator).view(batch, pos)
    return sources


# %% [markdown]
# **Exercise.** Write the scrubber: run any number of hypotheses to a loss with error bars. Each hypothesis changes
# only L1H0's three inputs, so one forward pass of the model gives everything that stays the same (your functions of
# section 4 do the rest); the grader counts forward passes.

# %% tags=["exercise"]
def scrub_hypotheses(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], candidates: Int[Tensor, "n_candidates"],
    hypotheses: dict[str, dict], resamplings: list[dict[str, Int[Tensor, "batch seq-1"]]],
) -> dict[str, tuple[float, float]]:
    """The loss on the candidate positions of `tokens` when L1H0 reads its inputs as each hypothesis says: hypothesis
    name -> (mean over the resamplings, standard error of that mean), Python floats.

    The model reads the inputs of `tokens` and is scored on their targets at the candidate positions (section 1).
    A hypothesis maps "q", "k" and "v" to component name -> source, the components and their names being those of
    layer1_input_components; a source is "orig" (the component at its own position) or the name of a source that every
    resampling has. Inputs and components a hypothesis does not mention come from "orig"; other keys (such as
    "groups") are ignored. Only L1H0's three inputs change: every other head, and the residual stream that skips
    layer 1, read the original.
    resamplings: at least two (else ValueError), each a dict source name -> int64 [batch, seq - 1], whose entry
    [b, p] is the flat index b2 * (seq - 1) + p2 of the input position (b2, p2) whose component replaces the one at
    (b, p). The standard error is the one of mean_and_standard_error. At most one forward pass of the model in all.
    """
    if len(resamplings) < 2:
        raise ValueError(f"a standard error needs at least two resamplings, got {len(resamplings)}")
    inputs, targets = inputs_and_targets(tokens)
    mask = candidate_mask(inputs, candidates, model.cfg.d_vocab)
    wanted = ("hook_embed", "blocks.0.attn.hook_z", "blocks.1.attn.hook_z", "blocks.1.hook_resid_post")
    _, cache = model.run_with_cache(inputs, names_filter=lambda name: name in wanted)
    heads = torch.einsum("bphd,hdm->hbpm", cache["blocks.0.attn.hook_z"], model.W_O[0])
    embed = cache["hook_embed"]
    components = torch.cat([embed[None], heads, model.b_O[0].expand_as(embed)[None]])
    names = ["embed", *[f"L0H{h}" for h in range(model.cfg.n_heads)], "b_O0"]
    clean_input = components.sum(0)
    l1h0 = cache["blocks.1.attn.hook_z"][:, :, 0] @ model.W_O[1, 0]
    without_l1h0 = cache["blocks.1.hook_resid_post"] - l1h0
    scored = targets[mask]
    losses: dict[str, list[Tensor]] = {name: [] for name in hypotheses}
    for sources in resamplings:
        assembled: dict[tuple, Tensor] = {}  # one input, by the components each source supplies (shared by hypotheses)

        def input_for(chosen: dict[str, str]) -> Tensor:
            by_source: dict[str, list[int]] = {}
            for i, component in enumerate(names):
                if chosen.get(component, "orig") != "orig":
                    by_source.setdefault(chosen[component], []).append(i)
            key = tuple(sorted((source, tuple(index)) for source, index in by_source.items()))
            if key not in assembled:
                total = clean_input
                for source, index in by_source.items():  # swap the resampled components in, a source at a time
                    part = components[index].sum(0)
                    total = total - part + part.flatten(0, 1)[sources[source]]
                assembled[key] = total
            return assembled[key]

        for name, hypothesis in hypotheses.items():
            qkv = [input_for(hypothesis.get(which, {})) for which in "qkv"]
            out = head_output_from_inputs(model, 1, 0, *qkv)
            logits = (without_l1h0 + out)[mask] @ model.W_U + model.b_U
            losses[name].append(-logits.log_softmax(-1).gather(-1, scored[:, None]).mean())
    results = {}
    for name, values in losses.items():
        mean, error = mean_and_standard_error(torch.stack(values)[:, None])
        results[name] = (mean.item(), error.item())
    return results


# %% [markdown]
# Let us run the first hypotheses: nothing scrubbed (the clean loss, with a standard error of exactly 0: no
# component is resampled, so every resampling gives the same loss), the baseline (every component of L1H0's three
# inputs from one other story), the example above, and its mirror image, **only the value scrubbed**.

# %%
if MAIN:
    import time

    N_RESAMPLINGS = 4
    NAMES = ["embed", *[f"L0H{h}" for h in range(model.cfg.n_heads)], "b_O0"]

    def keep(kept: list[str], group: str = "A") -> dict[str, str]:
        """Every component from `group`, except the `kept` ones."""
        return {c: ("orig" if c in kept else group) for c in NAMES}

    def draws(hypotheses: dict[str, dict]) -> list[dict[str, Tensor]]:
        """N_RESAMPLINGS resamplings of every group the hypotheses use."""
        groups = {g: kind for h in hypotheses.values() for g, kind in h.get("groups", {}).items()}
        return [draw_sources(inputs, groups, r) for r in range(N_RESAMPLINGS)]

    started = time.perf_counter()
    first = {
        "clean": {},
        "L1H0 scrubbed": {"q": keep([]), "k": keep([]), "v": keep([]), "groups": {"A": "sequence"}},
        "value needs only the embedding": {"v": keep(["embed"]), "groups": {"A": "sequence"}},
        "only the value scrubbed": {"v": keep([]), "groups": {"A": "sequence"}},
    }
    first_losses = scrub_hypotheses(model, dataset, candidates, first, draws(first))
    clean_mean, baseline_mean = first_losses["clean"][0], first_losses["L1H0 scrubbed"][0]

    def recovered(losses: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        """name -> (recovered, its standard error), relative to this notebook's clean loss and baseline."""
        excess = baseline_mean - clean_mean
        return {name: (percent_loss_recovered(clean_mean, torch.tensor(mean), baseline_mean).item(), error / excess)
                for name, (mean, error) in losses.items()}

    for name, (fraction, error) in recovered(first_losses).items():
        print(f"{name:32s} loss {first_losses[name][0]:.3f} ± {first_losses[name][1]:.4f}   "
              f"recovered {fraction:8.2%} ± {error:.3%}")
    print(f"({time.perf_counter() - started:.1f} s)")

# %% [markdown]
# Two of these numbers need a second look.
#
# **"Value needs only the embedding" recovers 100.0% ± 0.0%.** That is not a bug, and not a proof. Over the
# resamplings, the scrubbed loss moves by less than the printed precision: resampling the layer-0 heads' part of
# L1H0's value input changes almost nothing, because that part is small *through L1H0's value weights* (the cell
# below measures it) and L1H0 reads its value almost only at the one key it attends to. The ± 0.0% says the four
# resamplings agree, so the mean is precise; it does not say the claim is exactly true, only that, on this dataset,
# no resampling of the other components changes the loss measurably.
#
# **Only the value scrubbed does worse than the baseline** (a negative percentage): worse than scrubbing all of
# L1H0. With its query and key intact, L1H0 still finds the right key, the position after the earlier mention of the
# name, and copies with confidence whatever token its value input holds there, which is now another story's token: a
# confident wrong answer costs more than the baseline's head, which reads another story whole.

# %%
if MAIN:
    W_V = model.W_V[1, 0]
    full = layer1_input_components(model, dataset[:64, :-1])
    through_value = (full @ W_V).norm(dim=-1).mean(dim=(1, 2))
    for name, norm in zip(NAMES, through_value.tolist()):
        print(f"  {name:6s} through L1H0's W_V: mean norm {norm:.3f}")

# %% [markdown]
# ### Sampling groups, for real
#
# Which parts share a resampled input is part of the hypothesis, and it changes the numbers. Take the baseline:
# "L1H0 scrubbed" means *L1H0 runs on another story*. For that, its query, key and value inputs **must share** one
# sampling group: the head then computes a real output, the one it computes on another story. Give each of the three
# inputs its own group and the head reads three unrelated stories at once, an input no story produces, and its output
# is noise rather than a confident answer about the wrong story. The same for the attention pattern alone: query and
# key from one other story, or from two.
#
# The opposite case: the top rung of the ladder you will write keeps one component of each input and scrubs the
# rest. The hypothesis says those scrubbed remainders are irrelevant *and unrelated to each other*, so they **must
# not** share a group: if the query's remainder and the key's remainder came from one story, they could match each
# other as they would in that story. We measure both ways.

# %%
if MAIN:
    seq3 = {"A": "sequence", "B": "sequence", "C": "sequence"}
    group_pairs = {
        "L1H0 runs on another story (q, k, v share A)": {"q": keep([]), "k": keep([]), "v": keep([]), "groups": seq3},
        "L1H0 reads three stories (q A, k B, v C)": {"q": keep([]), "k": keep([], "B"), "v": keep([], "C"),
                                                     "groups": seq3},
        "pattern from one other story (q, k share A)": {"q": keep([]), "k": keep([]), "groups": seq3},
        "pattern from two other stories (q A, k B)": {"q": keep([]), "k": keep([], "B"), "groups": seq3},
        "top rung, remainders share A": {"q": keep(["embed"]), "k": keep(["L0H0"]), "v": keep(["embed"]),
                                         "groups": seq3},
        "top rung, remainders independent": {"q": keep(["embed"]), "k": keep(["L0H0"], "B"), "v": keep(["embed"], "C"),
                                             "groups": seq3},
    }
    group_losses = scrub_hypotheses(model, dataset, candidates, group_pairs, draws(group_pairs))
    for name, (fraction, error) in recovered(group_losses).items():
        print(f"{name:48s} loss {group_losses[name][0]:.3f}   recovered {fraction:7.1%} ± {error:.1%}")

# %% [markdown]
# Sharing matters where the shared parts interact: a head that reads one other story whole gives a *confident*
# wrong answer, one that reads three gives a vaguer one, so the second loses less. The course's baseline is the
# first, the head running intact on the wrong story: a percent recovered is always relative to a baseline, and the
# baseline's sampling groups are part of its definition. For the top rung, sharing or not changes nothing measurable:
# its scrubbed remainders do not interact, which is what the hypothesis claims. (Its "± 0.0%" is a standard error
# below 0.05 points: the resamplings agree to the printed precision, as explained in section 6.)
#
# ## 7. Why resample? Zero and mean ablation, side by side
#
# Day 1 measured a head's importance by **zero ablation** (replace an activation by 0) and **mean ablation** (by its
# mean over the dataset). Causal scrubbing replaces an activation by its value **on another input** instead, because
# of what a hypothesis claims. "The query needs only the token embedding" does not claim the other components are
# zero; it claims that *whatever values they take on real inputs* the head behaves the same. Zero is a value they may
# never take: a zeroed component can push the head off the distribution it was trained on and break it for reasons
# that have nothing to do with the claim. A mean is a more typical value, but still one the model may never see, and
# it removes every variation the claim allows. Resampling feeds values the model does see, in the combinations the
# claim allows, so a failure is a failure of the claim.
#
# The cell below measures all three on this model: for the whole of L1H0 (its output zeroed, replaced by its mean
# over every position of the dataset, or the head run on another story) and for the claim "the query needs only the
# token embedding" (every other component of the query input zeroed, replaced by its mean, or resampled).

# %%
if MAIN:
    _, full_cache = model.run_with_cache(inputs)
    parts = layer1_input_components(model, inputs)
    resid_in = parts.sum(0)
    l1h0_out = torch.einsum("bpd,dm->bpm", full_cache["z", 1][:, :, 0], model.W_O[1, 0])
    rest = full_cache["blocks.1.hook_resid_post"] - l1h0_out

    def candidate_loss_with(out: Tensor) -> float:
        """Loss on the candidates when L1H0 writes `out` and everything else is the clean run."""
        logits = (rest + out)[mask] @ model.W_U + model.b_U
        return -logits.log_softmax(-1).gather(-1, targets[mask][:, None]).mean().item()

    story_other = torch.randperm(N_SEQUENCES, generator=torch.Generator().manual_seed(7))
    rest_of_query = resid_in - parts[0]
    ablations = {
        "L1H0 output zeroed": candidate_loss_with(torch.zeros_like(l1h0_out)),
        "L1H0 output mean-ablated": candidate_loss_with(l1h0_out.mean(dim=(0, 1)).expand_as(l1h0_out)),
        "L1H0 on another story (resampled)": candidate_loss_with(head_output_from_inputs(
            model, 1, 0, resid_in[story_other], resid_in[story_other], resid_in[story_other])),
    }
    for label, remainder in (("zeroed", torch.zeros_like(rest_of_query)),
                             ("mean-ablated", rest_of_query.mean(dim=(0, 1)).expand_as(rest_of_query)),
                             ("resampled", rest_of_query[story_other])):
        ablations[f"query needs only the embedding: rest {label}"] = candidate_loss_with(
            head_output_from_inputs(model, 1, 0, parts[0] + remainder, resid_in, resid_in))
    story_baseline = ablations["L1H0 on another story (resampled)"]
    for label, value in ablations.items():
        fraction = percent_loss_recovered(clean_mean, torch.tensor(value), story_baseline).item()
        print(f"{label:50s} loss {value:.3f}   recovered {fraction:7.1%}")

# %% [markdown]
# Read the two halves separately. For the whole head, zeroing or mean-ablating the output costs *less* than running
# the head on another story: an absent head leaves the model unsure, a head reading the wrong story makes it
# confidently wrong. Which one is "the" importance of L1H0 depends on the question; scrubbing asks "what if L1H0 saw
# another story", a question about the inputs the head uses.
#
# For the query claim, zero ablation would have us reject it: the query would seem to need more than the embedding.
# Resampling says the claim holds. The layer-0 heads' part of the query is never zero on a real input; zeroing it
# moves the query off the inputs the head was trained on, and the head breaks for a reason unrelated to the claim.
# Mean ablation keeps that part's average and lands close to resampling here: what the query needs from the layer-0
# heads is mostly their average, not anything that varies from story to story.
#
# **What a percent recovered means, and what it does not.** Of the loss the baseline adds to the clean model, on this
# dataset and these candidate positions, it is the share that does *not* come back when everything the hypothesis
# calls irrelevant is resampled as the hypothesis says. Near 100% means the model's loss is *consistent* with the
# hypothesis: no resampling the hypothesis allows hurts. It does not mean the hypothesis is the mechanism: a vaguer
# hypothesis (fewer claims) usually recovers at least as much, errors can cancel (one wrong claim making the loss
# lower, another higher), and only the loss is tested, not every behaviour. It depends on the baseline (above: which
# one, and its sampling groups), on the dataset and on the candidates. And a value above 100% or below 0% is
# possible: the scrubbed model can do better than the clean one, or worse than the baseline. Chan et al. discuss such
# limits; the remedy is the one you will practise next: make hypotheses *more specific* one step at a time, and
# write ones that should fail.
#
# ## 8. Your hypotheses: the capstone
#
# First, REMIX's "bonus path", by hand: L0H0's output needs only its value at the previous position. We run L0H0 on
# mixed inputs: its attention pattern from another sequence (if it attends by *position*, the pattern does not depend
# on the tokens), its value at the previous position from the original, its values elsewhere from the other sequence.
#
# **Exercise.** Compute the output of a layer-0 head run on such mixed inputs.

# %% tags=["exercise"]
def prev_value_path_output(
    model: HookedTransformer, head: int, tokens: Int[Tensor, "batch pos"], other_tokens: Int[Tensor, "batch pos"]
) -> Float[Tensor, "batch pos d_model"]:
    """What layer-0 head `head` writes to the residual stream (float32 [batch, pos, d_model], without b_O) when its
    attention pattern is the one it computes on `other_tokens`, and the value it reads at key position p - 1 for the
    output at position p is the value of `tokens` there, every other value it reads being the value of
    `other_tokens`. Values include the head's b_V; position 0, which has no previous position, reads values of
    `other_tokens` only."""
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
# The same claim can be written as a hypothesis, with no special machinery: "the L0H0 component of L1H0's key input
# needs only the previous token" is L0H0's component resampled from a position with the same previous token.
#
# Now the capstone. Write your hypotheses about L1H0 and test them:
#
# - **a ladder** of at least four hypotheses of increasing specificity: each claims everything the one before claims,
#   and more (it resamples every component the one before resamples, and at least one more). Start from one claim
#   ("the value needs only the embedding"), add the query, the key, then sharpen a kept component into a feature.
#   The top rung keeps at most one component of each of the query, key and value inputs;
# - **one hypothesis of your own design that you expect the data to refute** (a claim that sounds plausible: what
#   would L1H0 read if it were a different kind of head?);
# - **a naive and a refined hypothesis**: the same input resampled from any position (naive), then from positions
#   that agree on the feature you think it reads (refined).
#
# The grader runs your capstone and checks what your hypotheses recover: every rung at least 90%, the refuted one
# below 50%, the refined one at least 85% and the naive one at most 25%. These bounds come from the course's own
# answers (a test recomputes them): each sits several points, and many standard errors, from what those answers
# recover.

# %% tags=["exercise"]
def capstone(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], candidates: Int[Tensor, "n_candidates"],
    n_resamplings: int, seed: int,
) -> dict[str, dict]:
    """Your hypotheses about L1H0, tested: name -> {"hypothesis": the hypothesis, "recovered": the fraction of loss it
    recovers, "standard_error": the standard error of that fraction} (Python floats).

    Names: "ladder 1", "ladder 2", ... (at least four rungs, in order), "refuted", "naive" and "refined", as the
    text above describes them. Each hypothesis is written as in section 6, with "groups" naming the kind of every
    group it uses. Every loss is measured with scrub_hypotheses on `tokens` and `candidates`, under the same
    n_resamplings resamplings of draw_sources, numbered seed to seed + n_resamplings - 1. Recovered is relative to
    the clean model and to the baseline "L1H0 scrubbed" (every component of its three inputs from one group of kind
    "sequence"); its standard error is the scrubbed loss's divided by the baseline's excess loss over the clean one.
    """
    names = ["embed", *[f"L0H{h}" for h in range(model.cfg.n_heads)], "b_O0"]

    def keep(kept: list[str], group: str = "other") -> dict[str, str]:
        return {c: ("orig" if c in kept else group) for c in names}

    story = {"other": "sequence"}
    hypotheses = {
        "ladder 1": {"v": keep(["embed"]), "groups": story},
        "ladder 2": {"v": keep(["embed"]), "q": keep(["embed"]), "groups": story},
        "ladder 3": {"v": keep(["embed"]), "q": keep(["embed"]), "k": keep(["L0H0"]), "groups": story},
        "ladder 4": {"v": keep(["embed"]), "q": keep(["embed"]), "k": {**keep([]), "L0H0": "previous"},
                     "groups": {"other": "sequence", "previous": "previous token"}},
        # the value copies what L0H0 carries (the previous token) rather than the token itself
        "refuted": {"v": keep(["L0H0"]), "groups": story},
        "naive": {"k": keep([], "anywhere"), "groups": {"anywhere": "any position"}},
        "refined": {"k": keep([], "previous"), "groups": {"previous": "previous token"}},
    }
    baseline = {"q": keep([]), "k": keep([]), "v": keep([]), "groups": story}
    groups = {g: kind for h in (*hypotheses.values(), baseline) for g, kind in h["groups"].items()}
    inputs = tokens[:, :-1]
    resamplings = [draw_sources(inputs, groups, seed + r) for r in range(n_resamplings)]
    losses = scrub_hypotheses(model, tokens, candidates, {"clean": {}, "baseline": baseline, **hypotheses},
                              resamplings)
    clean, base = losses["clean"][0], losses["baseline"][0]
    return {name: {"hypothesis": hypothesis,
                   "recovered": (base - losses[name][0]) / (base - clean),
                   "standard_error": losses[name][1] / (base - clean)}
            for name, hypothesis in hypotheses.items()}


# %%
if MAIN:
    started = time.perf_counter()
    mine = capstone(model, dataset, candidates, N_RESAMPLINGS, 0)
    print(f"capstone on {N_SEQUENCES} stories, {N_RESAMPLINGS} resamplings: {time.perf_counter() - started:.1f} s")
    for name, result in mine.items():
        print(f"{name:9s} recovered {result['recovered']:8.2%} ± {result['standard_error']:.2%}")
    from curriculum.library.scrubbing import ladder_figure

    rungs = [name for name in mine if name.startswith("ladder")] + ["refined"]
    plotting.show(ladder_figure(rungs, [mine[n]["recovered"] for n in rungs],
                                [mine[n]["standard_error"] for n in rungs],
                                title="Your ladder and refined hypothesis: % of loss recovered ± 1 s.e."))
    everything = {**{n: (r["recovered"], r["standard_error"]) for n, r in mine.items()},
                  **{n: v for n, v in recovered(first_losses).items() if n in ("L1H0 scrubbed",
                                                                              "only the value scrubbed")}}
    plotting.show(ladder_figure(list(everything), [v[0] for v in everything.values()],
                                [v[1] for v in everything.values()],
                                title="Every hypothesis, on the full range: % of loss recovered ± 1 s.e."))

# %% [markdown]
# The first figure zooms on the hypotheses that hold, so that their error bars (a fraction of a point) are visible;
# the second shows everything on one range, refuted hypotheses and baselines included. A rung at 100.0% ± 0.0% is
# explained in section 6: the resamplings agree, the claim changes the loss by less than the precision printed.
#
# ## 9. What we found
#
# The cell below prints the findings from this notebook's runs.

# %%
if MAIN:
    print(f"clean loss on candidates {clean_mean:.3f}; L1H0 scrubbed {baseline_mean:.3f}; "
          f"all inputs scrubbed {all_scrubbed_loss:.3f}")
    for name, result in mine.items():
        print(f"{name:9s} {result['recovered']:8.2%} ± {result['standard_error']:.2%}   {result['hypothesis']}")

# %% [markdown]
# The story of `induction-2l` under causal scrubbing, on 512 held-out stories with 4 resamplings (the numbers are the
# ones printed above; the course's tests recompute each statement):
#
# - **Induction is most of what the model does after a name.** Running L1H0 on another story raises the loss on
#   candidate positions several-fold; scrubbing every input of the model raises it further.
# - **The ladder holds, rung by rung.** L1H0's value needs only the token embedding, its query only the token
#   embedding, its key only L0H0's output, and of that output only what depends on the previous token: every rung
#   recovers more than 90% of the loss. So L1H0 reads the current token in its query, the previous token (through
#   L0H0, which attends by position) in its key, and copies the token embedding through its value: the induction
#   mechanism of Olsson et al.
# - **The method refutes what is false.** "The value copies what L0H0 carries" recovers far less than nothing: the
#   scrubbed model does worse than the baseline, as does scrubbing the value alone.
# - **Agreeing on a feature is what matters.** A key input taken from a random position recovers about nothing; one
#   taken from a position with the same previous token recovers nearly everything. The hypothesis "the key is a
#   function of the previous token" is confirmed by resampling everything but that.
# - **Sampling groups are part of a hypothesis.** L1H0 reading one other story is a harsher baseline than L1H0
#   reading three unrelated ones; the top rung does not care whether its scrubbed remainders share a story.
# - **Resampling, not zeroing.** Zeroing the query's non-embedding components would refute a claim that resampling
#   confirms.
# - **The error bars are small.** Over 4 resamplings the standard error of every percent recovered is below one
#   percentage point, so the gaps above are far outside the resampling noise. (They say nothing about the choice of
#   the 512 stories themselves: another held-out set would move every number a little.)
