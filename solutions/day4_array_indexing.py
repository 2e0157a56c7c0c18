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
# # Day 4: interpreting an algorithmic model
#
# Days 1 to 3 took apart induction heads. Today the same tools meet a different model, trained on a different
# task, to show that they are general: given a transformer that does one small algorithmic job, you find out
# *how* it does it, state the mechanism as a prediction in code, and test it by intervening on the model.
#
# The task and the model's configuration come from Connor Kissane's array-indexing practice problem, one of his
# mech-interp practice notebooks; the model here is the course's own, trained for it (`array-2l1h`). The tools for
# reading it (the residual stream as a sum, the direct path, OV circuits) are those of Elhage et al. (2021), "A
# Mathematical Framework for Transformer Circuits".
#
# **The task.** A list `a` of three numbers (0 to 49), an index `idx` (0, 1 or 2) and an element `elt` (0 to 49)
# are written out as the sequence
#
# ```
# BOS a0 a1 a2 NL idx elt NL b0 b1 b2
# ```
#
# and `b` is the list after the assignment `a[idx] = elt`. For example `BOS 7 3 9 NL 1 40 NL 7 40 9`.
# `BOS` (token 50) starts every sequence and `NL` (token 51) is a separator. The model only has to predict
# `b0 b1 b2`; each is predicted at the position just before it (the second `NL`, `b0` and `b1`). We call those
# three positions the **answer positions**.
#
# **The model** is `array-2l1h` from the course's zoo: two layers with one attention head each, `d_model = 128`,
# no MLPs, no LayerNorm, and *shortformer* positional embeddings: positions are added to the queries and keys of
# every layer, but never written into the residual stream. So the residual stream at a position holds only its
# own token embedding plus what attention heads wrote there. That makes this model unusually easy to decompose.
#
# Today's plan: rebuild the data and the loss exactly as in training, check the model is good at the task, look
# at where each layer attends, knock layers out, attribute the answer logit to its sources, read off what each
# head copies, patch the `idx` token to see where the index information travels, and finally write your own
# predictor of the model's behaviour and test it with interventions you run yourself.
#
# Every function in a cell marked as an exercise is graded: fill it in, then run `check(function_name)` in the
# notebook, or `pytest --day 4` in a terminal. The other cells are for reading, running and changing freely.

# %%
from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in Jupyter without ipywidgets

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from curriculum.library import circuits, plotting
from curriculum.data.array_indexing import (
    ANSWER_POSITIONS,
    BOS_TOKEN,
    ELT_POSITION,
    IDX_POSITION,
    LABEL_POSITIONS,
    LIST_LEN,
    MAX_NUM,
    NL_TOKEN,
)

MAIN = __name__ == "__main__"
if MAIN:
    from checks import check  # noqa: F401  (check(fn) grades one exercise and prints the verdict)

# %% [markdown]
# The constants above come from the course's data module: `LIST_LEN = 3`, `MAX_NUM = 50`, `BOS_TOKEN = 50`,
# `NL_TOKEN = 51`, sequences of 11 tokens, `IDX_POSITION = 5`, `ELT_POSITION = 6`, `ANSWER_POSITIONS = (7, 8, 9)` (where
# the logits predicting `b0, b1, b2` are read) and `LABEL_POSITIONS = (8, 9, 10)` (where `b0, b1, b2` stand).
#
# ## 1. The data, the loss, the labels
#
# The model was trained on batches in which every example draws its own list, its own `idx` and its own `elt`,
# independently and uniformly. Write the sampler. Any correct way of drawing passes: it is graded by its contract
# (a valid batch, the same batch from the same generator state, and uniform draws over many seeds), not against one
# particular sequence of draws.

# %% tags=["exercise"]
def sample_array_indexing_batch(batch_size: int, generator: torch.Generator) -> Int[Tensor, "batch seq"]:
    """`batch_size` sequences `BOS a0 a1 a2 NL idx elt NL b0 b1 b2` (int64, [batch_size, 2 * LIST_LEN + 5]) where b
    is a after the assignment a[idx] = elt. Every example draws its own a (each entry uniform in [0, MAX_NUM)), idx
    (uniform in [0, LIST_LEN)) and elt (uniform in [0, MAX_NUM)), independently of each other and of other examples.

    All randomness comes from `generator`: the same generator state gives the same batch, and torch's global RNG is
    left untouched. Raises ValueError if batch_size < 1.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    answers = lists.clone()
    answers[torch.arange(batch_size), idx] = elt
    bos = torch.full((batch_size, 1), BOS_TOKEN)
    nl = torch.full((batch_size, 1), NL_TOKEN)
    return torch.cat([bos, lists, nl, idx[:, None], elt[:, None], nl, answers], dim=1)


# %% [markdown]
# The training loss is the mean cross-entropy of the three answers `b0, b1, b2`, read from the logits at the answer
# positions, and *nothing else*: the model was never asked to predict the list `a` or `idx` (they are random, so it
# could not). Compute it in float64, as training did.

# %% tags=["exercise"]
def answer_loss(logits: Float[Tensor, "batch seq d_vocab_out"], tokens: Int[Tensor, "batch seq"]) -> Float[Tensor, ""]:
    """The training loss: the mean, over examples and the LIST_LEN answers, of the cross-entropy (natural log) of
    each answer b_j (the token at LABEL_POSITIONS[j]) under the logits that predict it (those at ANSWER_POSITIONS[j]).

    Returns a 0-d float64 tensor, computed in float64 whatever the logits' dtype.
    """
    answer_logits = logits[:, list(ANSWER_POSITIONS)].to(torch.float64)
    answers = tokens[:, list(LABEL_POSITIONS)]
    log_probs = answer_logits.log_softmax(dim=-1)
    return -log_probs.gather(-1, answers[..., None]).mean()


# %% [markdown]
# Plots need axis labels that say what sits at each position. Token values change from example to example, but
# the *roles* of the positions do not.

# %% tags=["exercise"]
def position_labels(list_len: int = LIST_LEN) -> list[str]:
    """The role of each position of a sequence with lists of length `list_len`, as strings: "BOS", "a0".., "NL",
    "idx", "elt", "NL", "b0".. (entries numbered from 0), one per position, 2 * list_len + 5 in all.

    Raises ValueError if list_len < 1.
    """
    if list_len < 1:
        raise ValueError(f"list_len must be positive, got {list_len}")
    lists = [f"a{i}" for i in range(list_len)]
    answers = [f"b{i}" for i in range(list_len)]
    return ["BOS", *lists, "NL", "idx", "elt", "NL", *answers]


# %% [markdown]
# How good is the model? Accuracy per answer position: the fraction of examples whose top logit at the answer
# position is the right answer. We split by position because the three answers need not be equally easy.

# %% tags=["exercise"]
def answer_accuracy(
    logits: Float[Tensor, "batch seq d_vocab_out"], tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "answer"]:
    """For each answer j, the fraction of examples whose largest logit at ANSWER_POSITIONS[j] is the answer b_j.

    Returns a float tensor of shape [LIST_LEN]: one fraction per answer, averaged over the batch only.
    """
    predictions = logits[:, list(ANSWER_POSITIONS)].argmax(dim=-1)
    return (predictions == tokens[:, list(LABEL_POSITIONS)]).float().mean(dim=0)


# %%
if MAIN:
    from curriculum.models import load_model

    model = load_model("array-2l1h")
    tokens = sample_array_indexing_batch(2000, torch.Generator().manual_seed(0))
    labels = position_labels()
    logits, cache = model.run_with_cache(tokens)
    print("example:", " ".join(model.to_str_tokens(tokens[0])))
    print(f"loss on 2000 fresh examples: {answer_loss(logits, tokens).item():.4f}")
    accuracy = answer_accuracy(logits, tokens)
    print("accuracy per answer position:", [f"b{j}: {acc:.4f}" for j, acc in enumerate(accuracy.tolist())])

# %% [markdown]
# ## 2. Where does each answer position look?
#
# Answer position `j` (the position predicting `b_j`) must output `a_j`, unless `idx == j`, in which case it must
# output `elt`. So the interesting split is by whether `idx` equals the answer's own index. For each layer, each
# answer position and each of the two cases, average the attention pattern over the examples in that case.

# %% tags=["exercise"]
def attention_by_idx_match(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "layer answer match key"]:
    """Mean attention pattern of head 0 of every layer, from answer position j (the query at ANSWER_POSITIONS[j])
    to every key position, averaged separately over the examples with idx != j (match 0) and idx == j (match 1).

    Shape [n_layers, LIST_LEN, 2, seq]. Raises ValueError if one of the 2 * LIST_LEN groups has no example.
    """
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    idx = tokens[:, IDX_POSITION]
    result = torch.zeros(model.cfg.n_layers, LIST_LEN, 2, tokens.shape[1], device=tokens.device)
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer][:, 0]  # [batch, query, key]
        for j, query in enumerate(ANSWER_POSITIONS):
            for match in (0, 1):
                examples = (idx == j) == bool(match)
                if not examples.any():
                    raise ValueError(f"no example with idx {'==' if match else '!='} {j}")
                result[layer, j, match] = pattern[examples, query].mean(dim=0)
    return result


# %% [markdown]
# A single number per layer and answer position is easier to compare than a pattern: the attention paid to the
# position that *holds the right answer*, which is `a_j` (position `1 + j`) when `idx != j` and `elt` when
# `idx == j`. A head that reads the answer should score near 1.

# %% tags=["exercise"]
def attention_to_answer_source(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "layer answer"]:
    """For every layer and answer j, the mean attention of head 0 from answer position j to the position holding
    the right answer b_j: a_j's position when idx != j, elt's when idx == j. Shape [n_layers, LIST_LEN]."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    idx = tokens[:, IDX_POSITION]
    batch = torch.arange(tokens.shape[0], device=tokens.device)
    result = torch.zeros(model.cfg.n_layers, LIST_LEN, device=tokens.device)
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer][:, 0]
        for j, query in enumerate(ANSWER_POSITIONS):
            source = torch.where(idx == j, ELT_POSITION, 1 + j)
            result[layer, j] = pattern[batch, query, source].mean()
    return result


# %%
if MAIN:
    by_match = attention_by_idx_match(model, tokens)
    for layer in range(model.cfg.n_layers):
        rows = by_match[layer].flatten(0, 1)  # (answer, match) pairs as rows
        row_labels = [f"b{j} {'idx==' if m else 'idx!='}{j}" for j in range(LIST_LEN) for m in (0, 1)]
        fig = plotting.imshow(
            rows,
            x_labels=labels,
            y_labels=row_labels,
            diverging=False,
            zrange=(0.0, 1.0),
            title=f"Layer {layer}: mean attention from each answer position",
            xaxis="key position",
            value_name="attention",
        )
        plotting.show(fig)
        for j in range(LIST_LEN):
            for m in (0, 1):
                top = by_match[layer, j, m].argmax().item()
                print(
                    f"L{layer} answer b{j}, idx {'==' if m else '!='} {j}: "
                    f"most attention to {labels[top]} ({by_match[layer, j, m, top]:.3f})"
                )
    source_attention = attention_to_answer_source(model, tokens)
    print("attention to the answer's source, per layer (rows) and answer (columns):")
    print(source_attention)
    plotting.show(plotting.attention_patterns(cache["pattern", 1][0], model.to_str_tokens(tokens[0])))

# %% [markdown]
# Read the two layers differently. Layer 0, at the answer positions, looks at `elt` whatever `idx` is. In layer 1
# the split by `idx == j` changes the picture: which key does it favour when `idx != j`, and which when `idx == j`?
# Is that equally clean at the three answers? Compare the rows of `b0`, `b1` and `b2` before reading on; the cell
# below prints, for `idx != j`, the attention layer 1 pays to `a_j` and to the `idx` position.

# %%
if MAIN:
    for j in range(LIST_LEN):
        print(f"L1 at b{j}, idx != {j}: on a{j} {by_match[1, j, 0, 1 + j]:.3f}, on the idx position "
              f"{by_match[1, j, 0, IDX_POSITION]:.3f}; idx == {j}: on elt {by_match[1, j, 1, ELT_POSITION]:.3f}")

# %% [markdown]
# Layer 1 *selects*. Where does the rest of its attention go at `b2`, and what could a position that holds no list
# entry offer there? Keep the question for the last section.
#
# How can layer 1 know whether `idx == j`? Its query at answer position `j` is built from that position's residual
# stream (the token `NL`, `b0` or `b1` plus what layer 0 wrote there) and, under shortformer, the positional embedding
# of position `j`; its keys carry each earlier position's token, what layer 0 wrote there and the key's position.
# Which part of the query does the selecting? A test: recompute layer 1's pattern at the answer positions from the
# positional part of the query alone (`W_pos` of the answer position through `W_Q`, plus `b_Q`), keys unchanged.

# %%
if MAIN:
    keys = cache["blocks.1.attn.hook_k"][:, :, 0]  # [batch, key, d_head]
    answer_rows = list(ANSWER_POSITIONS)
    positional_query = model.W_pos[answer_rows] @ model.W_Q[1, 0] + model.b_Q[1, 0]  # [answer, d_head]
    scores = torch.einsum("ad,bkd->bak", positional_query, keys) / model.cfg.d_head**0.5
    causal = torch.tensor(answer_rows)[:, None] >= torch.arange(tokens.shape[1])[None]
    positional_pattern = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # [batch, answer, key]
    idx = tokens[:, IDX_POSITION]
    positional_source_attention = torch.stack([  # to a_j where idx != j, to elt where idx == j, over all examples
        torch.cat([positional_pattern[idx != j, j, 1 + j], positional_pattern[idx == j, j, ELT_POSITION]]).mean()
        for j in range(LIST_LEN)
    ])
    print("layer 1, attention to the answer's source with the positional part of the query only:",
          [round(x, 3) for x in positional_source_attention.tolist()])

# %% [markdown]
# Compare these with the full model's in the table above (`attention to the answer's source`). The query needs no
# more than the position to pick the right key most of the time: the information about `idx` must be in the keys.
# Which key could carry it? Only positions at or after `idx` can have read it. Look at layer 0 at the `elt` position:

# %%
if MAIN:
    layer0_from_elt = cache["pattern", 0][:, 0, ELT_POSITION]  # [batch, key]
    print("layer 0, mean attention from the elt position:",
          {labels[k]: round(v, 3) for k, v in enumerate(layer0_from_elt.mean(0).tolist()) if k <= ELT_POSITION})
    print("  on idx, by the value of idx:",
          [round(layer0_from_elt[tokens[:, IDX_POSITION] == i, IDX_POSITION].mean().item(), 3) for i in range(LIST_LEN)])

# %% [markdown]
# Layer 0 at `elt` splits its attention: about half goes to `idx` (less when `idx` is 2) and most of the rest stays
# on `elt` itself. So the `elt` position ends layer 0 holding both the element and the index; section 6 tests
# whether that is where layer 1 gets the index from.

# %% [markdown]
# ## 3. Ablations: what breaks when a layer is removed?
#
# Two ways to remove a layer's attention output (`blocks.{L}.hook_attn_out`): set it to zero, or replace it by its
# mean over the batch at each position (mean ablation keeps whatever is constant, e.g. biases and what the layer
# always writes, and removes only what depends on the input). Measure the loss and accuracy at each answer position.

# %% tags=["exercise"]
def attention_ablation_effects(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> tuple[Float[Tensor, "method layer answer"], Float[Tensor, "method layer answer"]]:
    """Loss and accuracy at each answer position with one layer's attention output (blocks.{L}.hook_attn_out)
    ablated, as a tuple (loss, accuracy), each float32 of shape [2, n_layers, LIST_LEN].

    method 0 replaces the output by zeros, method 1 by its mean over the batch (a separate mean at each position).
    loss[m, L, j] is the mean cross-entropy of b_j over the batch (computed in float64); accuracy as in
    `answer_accuracy`.
    """
    n_layers = model.cfg.n_layers
    loss = torch.zeros(2, n_layers, LIST_LEN, device=tokens.device)
    accuracy = torch.zeros(2, n_layers, LIST_LEN, device=tokens.device)
    answers = tokens[:, list(LABEL_POSITIONS)]

    def zero(attn_out: Tensor, hook) -> Tensor:
        return torch.zeros_like(attn_out)

    def mean(attn_out: Tensor, hook) -> Tensor:
        return attn_out.mean(dim=0, keepdim=True).expand_as(attn_out)

    for method, hook_fn in enumerate((zero, mean)):
        for layer in range(n_layers):
            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_attn_out", hook_fn)])
            answer_logits = logits[:, list(ANSWER_POSITIONS)].to(torch.float64)
            log_probs = answer_logits.log_softmax(dim=-1).gather(-1, answers[..., None])[..., 0]
            loss[method, layer] = -log_probs.mean(dim=0).float()
            accuracy[method, layer] = (answer_logits.argmax(dim=-1) == answers).float().mean(dim=0)
    return loss, accuracy


# %%
if MAIN:
    ablated_loss, ablated_accuracy = attention_ablation_effects(model, tokens)
    for method, name in enumerate(("zero", "mean")):
        for layer in range(model.cfg.n_layers):
            print(
                f"{name}-ablate L{layer}: loss per answer {[round(x, 3) for x in ablated_loss[method, layer].tolist()]}"
                f", accuracy {[round(x, 3) for x in ablated_accuracy[method, layer].tolist()]}"
            )
    fig = plotting.imshow(
        ablated_accuracy.flatten(0, 1),
        x_labels=[f"b{j}" for j in range(LIST_LEN)],
        y_labels=[f"{m}-ablate L{layer}" for m in ("zero", "mean") for layer in range(model.cfg.n_layers)],
        diverging=False,
        zrange=(0.0, 1.0),
        title="Accuracy per answer position with one layer ablated",
        value_name="accuracy",
    )
    plotting.show(fig)

# %% [markdown]
# Accuracy alone says *that* something broke. What the broken model predicts instead says *what* broke. Write the
# zero-ablated model's predictions, so that we can ask how often they are `elt` and how often the unchanged entry `a_j`.

# %% tags=["exercise"]
def predictions_with_layer_zeroed(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], layer: int
) -> Int[Tensor, "batch answer"]:
    """The model's prediction (argmax, int64) at each answer position, [batch, LIST_LEN], with the attention output
    of `layer` (blocks.{layer}.hook_attn_out) replaced by zeros. Raises ValueError if layer is not in [0, n_layers).
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must be in [0, {model.cfg.n_layers}), got {layer}")
    logits = model.run_with_hooks(
        tokens, fwd_hooks=[(f"blocks.{layer}.hook_attn_out", lambda attn_out, hook: torch.zeros_like(attn_out))]
    )
    return logits[:, list(ANSWER_POSITIONS)].argmax(dim=-1)


# %%
if MAIN:
    elt_everywhere = tokens[:, ELT_POSITION, None].expand(-1, LIST_LEN)
    original_entries = tokens[:, 1 : 1 + LIST_LEN]
    for layer in range(model.cfg.n_layers):
        predicted = predictions_with_layer_zeroed(model, tokens, layer)
        print(
            f"L{layer} zeroed: prediction is elt for {(predicted == elt_everywhere).float().mean():.3f} of answers, "
            f"the original entry a_j for {(predicted == original_entries).float().mean():.3f}"
        )

# %% [markdown]
# ## 4. Direct logit attribution
#
# With no LayerNorm and no MLP, the final residual stream is a plain sum of *components* (the token embedding, the
# positional embedding as it enters the residual stream, and each layer's attention output), and the logits are a
# linear function of it. So the logit of the right answer splits exactly into one term per component plus the
# unembedding bias. A component's term is its **direct path** to the logits (Elhage et al. 2021): what it adds to
# the logit by going straight through the unembedding `W_U`, not what it does by changing what later layers read.
# Splitting a logit into direct paths is called **direct logit attribution**.
#
# One of these is special in a shortformer model. Before computing, predict what the positional row will be, and
# compute it as what the positions *actually* add to the residual stream, read from the cache, not by projecting
# `W_pos` yourself.

# %% tags=["exercise"]
def answer_logit_attribution(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "component batch answer"]:
    """Direct contribution of each residual-stream component to the logit of the right answer b_j at answer
    position j, for every example: shape [n_layers + 2, batch, LIST_LEN].

    Components, in order: the token embedding, the positional embedding as it enters the residual stream (what
    blocks.0.hook_resid_pre holds beyond the token embedding), then each layer's attention output. A component's
    contribution is its direct path to the logit of b_j, without the unembedding bias: the contributions plus
    b_U[b_j] sum to that logit.
    """
    _, cache = model.run_with_cache(tokens)
    embed = cache["hook_embed"]
    components = [embed, cache["blocks.0.hook_resid_pre"] - embed]
    components += [cache[f"blocks.{layer}.hook_attn_out"] for layer in range(model.cfg.n_layers)]
    stacked = torch.stack(components)[:, :, list(ANSWER_POSITIONS)]  # [component, batch, answer, d_model]
    answer_directions = model.W_U.T[tokens[:, list(LABEL_POSITIONS)]]  # [batch, answer, d_model]
    return (stacked * answer_directions).sum(dim=-1)


# %%
if MAIN:
    attribution = answer_logit_attribution(model, tokens)
    component_names = ["embed", "pos_embed"] + [f"L{layer} attn" for layer in range(model.cfg.n_layers)]
    idx = tokens[:, IDX_POSITION]
    rows, row_names = [], []
    for j in range(LIST_LEN):
        for m in (0, 1):
            rows.append(attribution[:, (idx == j) == bool(m), j].mean(dim=1))
            row_names.append(f"b{j} {'idx==' if m else 'idx!='}{j}")
    attribution_table = torch.stack(rows)
    fig = plotting.imshow(
        attribution_table,
        x_labels=component_names,
        y_labels=row_names,
        title="Mean direct attribution to the correct answer's logit",
        value_name="logit",
    )
    plotting.show(fig)
    for name, row in zip(row_names, attribution_table):
        print(name, {c: round(v, 2) for c, v in zip(component_names, row.tolist())})
    # The components plus the unembedding bias sum to the logit: a check of the decomposition.
    answers = tokens[:, list(LABEL_POSITIONS)]
    correct_logits = logits[:, list(ANSWER_POSITIONS)].gather(-1, answers[..., None])[..., 0]
    gap = (attribution.sum(0) + model.b_U[answers] - correct_logits).abs().max()
    print(f"max |sum of components + b_U - logit| = {gap:.2e}")

# %% [markdown]
# The positional row is zero, exactly: under shortformer, positions shape *where* heads look but are never added to
# the residual stream, so they have no direct effect. The embedding row is also near zero: the token sitting at an
# answer position (`NL`, `b0` or `b1`) says nothing about the next answer. Nearly all of the right answer's logit is
# written by layer 1. Layer 0 adds a smaller push when `idx == j`, i.e. when the answer is `elt`, and next to nothing
# on average otherwise: it fits the ablation above, where the model without layer 1 predicts `elt` almost everywhere.

# %% [markdown]
# ## 5. What do the heads copy? The OV circuit
#
# A head does two separable things (Elhage et al. 2021): its **QK circuit** (`W_Q`, `W_K`) decides where it
# attends, and its **OV circuit** (`W_V`, then `W_O`) decides what it writes, as one linear map from the residual
# vector at the source position it reads to the vector it adds at the destination. Chain the OV circuit with the
# token embedding before it and the unembedding after it and you get the **full OV circuit**: for each input number
# token, the logits the head adds for each output number, a `[50, 50]` matrix, when it attends to a position that
# holds just that token. A head that *copies* has a dominant diagonal. (For layer 1 this covers only the part of
# its input that is the bare token: its source positions also hold what layer 0 wrote there.)

# %% tags=["exercise"]
def full_ov_circuit(model: HookedTransformer, layer: int, head: int = 0) -> Float[Tensor, "d_vocab_out d_vocab_out"]:
    """The full OV circuit of head `head` of `layer` on the number tokens: entry [s, t] is the logit of output token
    t that the head adds per unit of attention paid to a position holding only the embedding of token s (no biases).
    Rows are the input tokens 0..d_vocab_out-1; shape [d_vocab_out, d_vocab_out].

    Raises ValueError if layer is not in [0, n_layers) (a negative layer too: no counting from the end).
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must be in [0, {model.cfg.n_layers}), got {layer}")
    number_embeddings = model.W_E[: model.cfg.d_vocab_out]
    return number_embeddings @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U


# %% [markdown]
# A copying score that a single number can carry: the fraction of input tokens whose largest output logit is the
# token itself.

# %% tags=["exercise"]
def copying_score(ov_circuit: Float[Tensor, "d_in d_out"]) -> float:
    """The fraction of input tokens (rows of a square OV circuit) whose largest output logit is the token itself,
    as a Python float. Raises ValueError if `ov_circuit` is not a square matrix.
    """
    if ov_circuit.ndim != 2 or ov_circuit.shape[0] != ov_circuit.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {tuple(ov_circuit.shape)}")
    tokens = torch.arange(ov_circuit.shape[0], device=ov_circuit.device)
    return (ov_circuit.argmax(dim=-1) == tokens).float().mean().item()


# %%
if MAIN:
    ov_circuits = [full_ov_circuit(model, layer) for layer in range(model.cfg.n_layers)]
    copying_scores = [copying_score(ov) for ov in ov_circuits]
    for layer, score in enumerate(copying_scores):
        print(f"L{layer} head: copying score {score:.3f}")
    fig = plotting.imshow(
        torch.stack(ov_circuits),
        facet_labels=[f"L{layer} (copying {s:.2f})" for layer, s in enumerate(copying_scores)],
        title="Full OV circuits (input number -> output logit)",
        xaxis="output token",
        yaxis="input token",
    )
    plotting.show(fig)

# %% [markdown]
# Both heads copy: whatever number token they attend to, they raise that number's logit. So *what* a head outputs is
# settled by *where* it attends, and the whole question of the algorithm is a question about attention.
#
# ## 6. Where does the index information go? Activation patching
#
# **Activation patching** runs the model on one input but overwrites one activation (here the residual stream at
# one layer and one position) with its value from a run on another input; if the output moves towards the other
# run's, that activation carried the difference. Take each example and make a *corrupted* twin that differs only in
# the `idx` token. Everything else stays, including the tokens `b0 b1` that the later answer positions read, so the
# only thing the two runs disagree on is the index. The corrupted run's right answer is what its own `a`, `idx` and
# `elt` imply. Run the clean sequence, but overwrite the residual stream at one layer and one position with the
# corrupted run's; if that moves the prediction towards the corrupted answer, that residual vector carries the index.
#
# The metric is the logit difference `logit(corrupted answer) - logit(clean answer)`, averaged over the answer
# positions (and examples) where the two answers differ, and normalised so that the clean run scores 0 and the
# corrupted run 1. Patch the residual stream entering each layer (`blocks.{L}.hook_resid_pre`) and, as a last row,
# the final residual stream (`blocks.{n_layers-1}.hook_resid_post`).
#
# One hooked forward pass per (point, position) is correct but slow, and so is one big pass over `seq` copies of the
# batch: both recompute everything, although a patch at layer `L` and position `p` changes nothing below `L`, nothing
# at positions before `p` (attention is causal), and only the answer positions' logits matter. The course's shared
# helper `circuits.logits_with_residual_patch(model, clean_cache, point, position, resid, ANSWER_POSITIONS)` does
# exactly that saving: from a cache made by `circuits.run_for_residual_patching(model, clean_tokens)` (the residual
# streams, queries, keys and values of the clean run), it recomputes the clean run with `resid` (one vector per
# example) put in at that point and position, from layer `point` on and from `position` on, reusing the cached keys
# and values of earlier positions, and returns the logits at the answer positions, `[batch, 3, d_vocab_out]`: the
# same numbers as a hooked forward pass. Your part: the answers each run implies, the logit-difference metric and its
# normalisation, the corrupted run's residual streams to patch in, and the loop over points and positions. (A hooked
# version that patches one position per forward pass gets the same numbers, just slower; you may write that instead.)

# %% tags=["exercise"]
def residual_patching_effect(
    model: HookedTransformer, clean_tokens: Int[Tensor, "batch seq"], corrupted_tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "resid_point seq"]:
    """Normalised effect of patching the corrupted run's residual stream into the clean run, at one point and one
    position at a time: shape [n_layers + 1, seq].

    resid_point L < n_layers is blocks.{L}.hook_resid_pre, the last is blocks.{n_layers-1}.hook_resid_post. The
    logit difference (LD) of a run is the logit of the corrupted answer minus that of the clean answer, averaged over
    the (example, answer position) pairs whose two answers differ; the effect is 0 where the patched run's LD is the
    clean run's, 1 where it is the corrupted run's, and linear in between. A sequence's answers follow from its own
    a, idx and elt tokens (b_j is elt where idx is j, else a_j), not from its last tokens.
    Raises ValueError if the two token tensors differ in shape, or if no answer differs between them.
    """
    if clean_tokens.shape != corrupted_tokens.shape:
        raise ValueError(f"shapes differ: {tuple(clean_tokens.shape)} vs {tuple(corrupted_tokens.shape)}")

    def implied_answers(tokens: Tensor) -> Tensor:
        lists = tokens[:, 1 : 1 + LIST_LEN]
        is_idx = tokens[:, IDX_POSITION, None] == torch.arange(LIST_LEN, device=tokens.device)
        return torch.where(is_idx, tokens[:, ELT_POSITION, None], lists)

    clean_answers = implied_answers(clean_tokens)
    corrupted_answers = implied_answers(corrupted_tokens)
    differs = clean_answers != corrupted_answers
    if not differs.any():
        raise ValueError("the clean and corrupted answers never differ: nothing to measure")

    def logit_difference(answer_logits: Float[Tensor, "batch answer d_vocab_out"]) -> Tensor:
        corrupted_logit = answer_logits.gather(-1, corrupted_answers[..., None])[..., 0]
        clean_logit = answer_logits.gather(-1, clean_answers[..., None])[..., 0]
        return (corrupted_logit - clean_logit)[differs].mean()

    n_layers = model.cfg.n_layers
    hook_names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)]
    hook_names.append(f"blocks.{n_layers - 1}.hook_resid_post")
    corrupted_logits, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=lambda n: n in hook_names)
    clean_logits, clean_cache = circuits.run_for_residual_patching(model, clean_tokens)
    answers = list(ANSWER_POSITIONS)
    ld_clean = logit_difference(clean_logits[:, answers])
    ld_corrupted = logit_difference(corrupted_logits[:, answers])

    # The clean run with the corrupted residual stream at one (point, position), recomputed from there on.
    seq = clean_tokens.shape[1]
    effect = torch.zeros(len(hook_names), seq, device=clean_tokens.device)
    for point, name in enumerate(hook_names):
        for position in range(seq):
            corrupted_resid = corrupted_cache[name][:, position]
            answer_logits = circuits.logits_with_residual_patch(
                model, clean_cache, point, position, corrupted_resid, answers
            )
            effect[point, position] = (logit_difference(answer_logits) - ld_clean) / (ld_corrupted - ld_clean)
    return effect


# %%
if MAIN:
    patch_generator = torch.Generator().manual_seed(1)
    clean = tokens[:500]
    new_idx = (clean[:, IDX_POSITION] + torch.randint(1, LIST_LEN, (len(clean),), generator=patch_generator)) % LIST_LEN
    corrupted = clean.clone()
    corrupted[:, IDX_POSITION] = new_idx
    patching = residual_patching_effect(model, clean, corrupted)
    point_names = [f"resid_pre L{layer}" for layer in range(model.cfg.n_layers)] + ["final resid"]
    fig = plotting.imshow(
        patching,
        x_labels=labels,
        y_labels=point_names,
        title="Patching the corrupted idx run into the clean run (0 = clean, 1 = corrupted)",
        value_name="effect",
    )
    plotting.show(fig)
    for name, row in zip(point_names, patching):
        print(name, {labels[p]: round(v, 2) for p, v in enumerate(row.tolist()) if abs(v) > 0.05})

# %% [markdown]
# Read the rows top to bottom. Entering layer 0, only the `idx` token matters, of course. Entering layer 1, the index
# is no longer read from the `idx` position: it lives in the residual stream at the `elt` position, put there by
# layer 0's head (which, at `elt`, puts about half its attention on `idx`). Nothing about the index has reached the answer positions yet;
# only after layer 1 does it sit there, about a third at each answer position (each flips its own answer).
#
# The function does not care *which* token was corrupted. Corrupt `elt` instead (a different number, same list and
# index) to see where the element travels.

# %%
if MAIN:
    elt_generator = torch.Generator().manual_seed(2)
    elt_corrupted = clean.clone()
    elt_offset = torch.randint(1, MAX_NUM, (len(clean),), generator=elt_generator)
    elt_corrupted[:, ELT_POSITION] = (clean[:, ELT_POSITION] + elt_offset) % MAX_NUM
    elt_patching = residual_patching_effect(model, clean, elt_corrupted)
    for name, row in zip(point_names, elt_patching):
        print(name, {labels[p]: round(v, 2) for p, v in enumerate(row.tolist()) if abs(v) > 0.05})

# %% [markdown]
# Entering layer 1, most of what the element does to the answer is still read from the `elt` position, by layer 1;
# a smaller share has already been copied to the answer positions by layer 0, the same small push that the logit
# attribution showed.

# %% [markdown]
# ## 7. Your mechanism: a predictor, and two interventions that test it
#
# You now have the measurements to say how the model computes `b_j`: where each layer reads, what its head copies,
# and where the index is when layer 1 needs it. Say it in code, as predictions that can fail.
#
# **What does layer 1 copy?** The logit attribution says layer 1 writes nearly all of the right answer's logit, and
# its full OV circuit copies. If layer 1 simply copies the token it attends to most, then reading that token off its
# attention pattern, without looking at the logits, should give the answers. Does it? And does the same hold for
# layer 0?

# %% tags=["exercise"]
def predict_from_attention(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], layer: int
) -> Int[Tensor, "batch answer"]:
    """For every example and answer j, the token (int64) at the key position that head 0 of `layer` attends to
    most from answer position j: shape [batch, LIST_LEN]. Raises ValueError if layer is not in [0, n_layers).
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must be in [0, {model.cfg.n_layers}), got {layer}")
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.attn.hook_pattern")
    pattern = cache["pattern", layer][:, 0, list(ANSWER_POSITIONS)]  # [batch, answer, key]
    return tokens.gather(1, pattern.argmax(dim=-1))


# %%
if MAIN:
    answers = tokens[:, list(LABEL_POSITIONS)]
    model_predictions = logits[:, list(ANSWER_POSITIONS)].argmax(dim=-1)
    for layer in range(model.cfg.n_layers):
        predicted = predict_from_attention(model, tokens, layer)
        print(
            f"L{layer}: the token it attends to most is the answer for {(predicted == answers).float().mean():.4f} of "
            f"answers (per answer position: {[round(x, 4) for x in (predicted == answers).float().mean(0).tolist()]})"
        )
    layer1_prediction = predict_from_attention(model, tokens, 1)
    copy_misses = layer1_prediction != answers
    print(f"layer 1's most-attended token is not the answer on {int(copy_misses.sum())} of {answers.numel()} answers, "
          f"at answer positions {sorted(set(copy_misses.nonzero()[:, 1].tolist()))}; the model itself is right on "
          f"{(model_predictions == answers)[copy_misses].float().mean():.3f} of those")

# %% [markdown]
# **Where does layer 1 read?** Copying settles *what* is written once you know *where* layer 1 attends. So the
# heart of the mechanism is a rule for where: from the tokens alone, which key position does layer 1 attend to most
# at answer position `j`? Decide from what you measured in sections 2 and 6 and write the rule below, without
# running the model. It is graded on how often the position it names is the one layer 1 attends to most (at least
# 90% of the examples at every answer position), so any rule that describes the model that well passes, and a rule
# that misses a case your measurements show does not.

# %% tags=["exercise"]
def predicted_read_positions(tokens: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch answer"]:
    """Your mechanism for layer 1, as a prediction from the tokens alone: for every example and answer j, the key
    position (an index into the sequence, int64) that layer 1's head attends to most from answer position j.

    Shape [batch, LIST_LEN]. Graded on its agreement with the model's layer 1, not on one expected output: it passes
    when it names the most-attended position on at least 90% of the examples at every answer position.
    """
    idx = tokens[:, IDX_POSITION, None]
    entries = torch.arange(LIST_LEN, device=tokens.device)
    return torch.where(idx == entries, ELT_POSITION, 1 + entries).expand(tokens.shape[0], -1).contiguous()


# %%
if MAIN:
    read_positions = predicted_read_positions(tokens)
    layer1_top = cache["pattern", 1][:, 0, list(ANSWER_POSITIONS)].argmax(dim=-1)  # [batch, answer]
    read_accuracy = (read_positions == layer1_top).float().mean(0)
    print("your rule names layer 1's most-attended position for a fraction, per answer position:",
          [round(x, 4) for x in read_accuracy.tolist()])
    mechanism_answers = tokens.gather(1, read_positions)  # what the head copies from there
    print(f"the answers it predicts (the token there) agree with the model's predictions on "
          f"{(mechanism_answers == model_predictions).float().mean():.4f} of answers")
    read_misses = read_positions != layer1_top
    print(f"{int(read_misses.sum())} misses; layer 1 attends most to these positions instead:",
          {labels[p]: int((layer1_top[read_misses] == p).sum()) for p in layer1_top[read_misses].unique().tolist()})

# %% [markdown]
# If your rule misses, look at where. What does the position that layer 1 reads instead hold after layer 0, and
# could layer 1 copy the right answer from there? The cell below shows where layer 0 attends from the `idx`
# position, and which number layer 1's OV circuit would write if it read the residual stream there (the direct path
# of that vector through layer 1's OV circuit and the unembedding).

# %%
if MAIN:
    layer0_from_idx = cache["pattern", 0][:, 0, IDX_POSITION].mean(0)
    print("layer 0, mean attention from the idx position:",
          {labels[k]: round(v, 3) for k, v in enumerate(layer0_from_idx.tolist()) if k <= IDX_POSITION})
    at_idx = cache["blocks.1.hook_resid_pre"][:, IDX_POSITION]  # [batch, d_model]
    copied_from_idx = (at_idx @ model.W_V[1, 0] @ model.W_O[1, 0] @ model.W_U).argmax(dim=-1)
    print(f"read by layer 1, the idx position's residual stream would write a2 for "
          f"{(copied_from_idx == tokens[:, 1 + LIST_LEN - 1]).float().mean():.3f} of examples")

# %% [markdown]
# **Intervention 1: move the index.** A mechanism makes claims about causes, and a claim about causes is tested by
# intervening. Yours says where the index is when layer 1 needs it (section 6 measured it). Then overwriting the
# residual stream *there* with its value from a run with another `idx` should make the model answer as if `idx` were
# the new one, and overwriting it anywhere else should change nothing. Write that patched forward pass yourself,
# with a hook: no course helper this time.

# %% tags=["exercise"]
def predictions_with_idx_patched(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    new_idx: Int[Tensor, "batch"],
    layer: int,
    position: int,
) -> Int[Tensor, "batch answer"]:
    """The model's predictions (argmax, int64) at the answer positions, [batch, LIST_LEN], when the residual stream
    entering `layer` (blocks.{layer}.hook_resid_pre) at `position` is replaced, in every example, by its value in a
    run on the same tokens except that the idx token is `new_idx` (one value per example).

    Raises ValueError if new_idx is not of shape [batch] with values in [0, LIST_LEN), if layer is not in
    [0, n_layers), or if position is not in [0, seq).
    """
    if new_idx.shape != tokens.shape[:1] or new_idx.min() < 0 or new_idx.max() >= LIST_LEN:
        raise ValueError(f"new_idx must be [batch] indices in [0, {LIST_LEN}), got shape {tuple(new_idx.shape)}")
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must be in [0, {model.cfg.n_layers}), got {layer}")
    if not 0 <= position < tokens.shape[1]:
        raise ValueError(f"position must be in [0, {tokens.shape[1]}), got {position}")
    hook_name = f"blocks.{layer}.hook_resid_pre"
    moved = tokens.clone()
    moved[:, IDX_POSITION] = new_idx
    _, moved_cache = model.run_with_cache(moved, names_filter=hook_name)

    def patch(resid: Tensor, hook) -> Tensor:
        resid = resid.clone()
        resid[:, position] = moved_cache[hook_name][:, position]
        return resid

    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, patch)])
    return logits[:, list(ANSWER_POSITIONS)].argmax(dim=-1)


# %%
if MAIN:
    shift = torch.randint(1, LIST_LEN, (len(tokens),), generator=torch.Generator().manual_seed(3))
    new_idx = (tokens[:, IDX_POSITION] + shift) % LIST_LEN
    moved_tokens = tokens.clone()
    moved_tokens[:, IDX_POSITION] = new_idx
    # Your mechanism's prediction for the moved index: the token at the position your rule names for it.
    predicted_after_move = moved_tokens.gather(1, predicted_read_positions(moved_tokens))
    changed = predicted_after_move != mechanism_answers
    idx_patch_outcome = {}
    for layer, position in ((0, IDX_POSITION), (1, IDX_POSITION), (1, ELT_POSITION)):
        patched = predictions_with_idx_patched(model, tokens, new_idx, layer, position)
        idx_patch_outcome[layer, position] = (
            (patched == predicted_after_move)[changed].float().mean().item(),
            (patched == model_predictions)[changed].float().mean().item(),
        )
        print(f"patch entering layer {layer} at {labels[position]}: of the answers your mechanism says should change, "
              f"{idx_patch_outcome[layer, position][0]:.4f} become the predicted new answer, "
              f"{idx_patch_outcome[layer, position][1]:.4f} stay as they were")

# %% [markdown]
# **Intervention 2: cut a route.** If your rule missed at `b2`, the cell before intervention 1 suggests where a second
# route to the answer could run, and what it would carry. A route is tested by cutting it. Write the model with one
# attention weight removed (set to zero, the others left as they are), and before running it, predict: with layer
# 1's weight from `b2`'s answer position to the `idx` position cut, which examples should now fail, and which should
# not notice? The cell after it also cuts `b2`'s weight on `a2`, for comparison.

# %% tags=["exercise"]
def predictions_with_attention_cut(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], layer: int, query_position: int, key_position: int
) -> Int[Tensor, "batch answer"]:
    """The model's predictions (argmax, int64) at the answer positions, [batch, LIST_LEN], when head 0 of `layer`
    gives no weight to `key_position` from `query_position`: that one attention weight is set to 0 in every example
    and the other weights are left as they are (not renormalised).

    Raises ValueError if layer is not in [0, n_layers) or unless 0 <= key_position <= query_position < seq.
    """
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must be in [0, {model.cfg.n_layers}), got {layer}")
    if not 0 <= key_position <= query_position < tokens.shape[1]:
        raise ValueError(f"need 0 <= key_position <= query_position < {tokens.shape[1]}, got {key_position}, "
                         f"{query_position}")

    def cut(pattern: Tensor, hook) -> Tensor:
        pattern = pattern.clone()
        pattern[:, 0, query_position, key_position] = 0.0
        return pattern

    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", cut)])
    return logits[:, list(ANSWER_POSITIONS)].argmax(dim=-1)


# %%
if MAIN:
    b2_query = ANSWER_POSITIONS[LIST_LEN - 1]
    reads_idx = layer1_top[:, LIST_LEN - 1] == IDX_POSITION  # where layer 1 at b2 attends most to the idx position
    route_outcome = {}
    for key, name in ((IDX_POSITION, "the idx position"), (LIST_LEN, "a2")):
        cut_predictions = predictions_with_attention_cut(model, tokens, 1, b2_query, key)
        right = cut_predictions[:, LIST_LEN - 1] == answers[:, LIST_LEN - 1]
        route_outcome[key] = (right.float().mean().item(), right[reads_idx].float().mean().item(),
                              right[~reads_idx].float().mean().item(),
                              (cut_predictions[:, :-1] == answers[:, :-1]).float().mean().item())
        print(f"layer 1 at b2 cut from {name}: b2 accuracy {route_outcome[key][0]:.4f}; on the {int(reads_idx.sum())} "
              f"examples where layer 1 attends most to the idx position {route_outcome[key][1]:.3f}, on the others "
              f"{route_outcome[key][2]:.4f}; b0 and b1 {route_outcome[key][3]:.4f}")

# %% [markdown]
# ## Conclusion
#
# The cell below collects the day's measurements on the shipped `array-2l1h`, each computed above in this notebook
# (2000 fresh examples, seed 0). Put them next to your rule: which of its claims did an intervention test, and
# which did only a correlation support?

# %%
if MAIN:
    ablated_l0 = predictions_with_layer_zeroed(model, tokens, 0)
    ablated_l1 = predictions_with_layer_zeroed(model, tokens, 1)
    print(f"On {len(tokens)} fresh examples (seed 0):")
    print(f"- accuracy per answer position: {[round(x, 4) for x in accuracy.tolist()]}")
    print(f"- layer 0: the elt position attends to idx {layer0_from_elt[:, IDX_POSITION].mean():.3f} and to itself "
          f"{layer0_from_elt[:, ELT_POSITION].mean():.3f}; the idx position attends to a2 "
          f"{layer0_from_idx[LIST_LEN]:.3f}; answer positions attend to elt "
          f"{by_match[0, :, :, ELT_POSITION].mean():.3f} on average")
    print(f"- layer 1: attention to the position holding the answer, per answer: "
          f"{[round(x, 3) for x in source_attention[1].tolist()]}; at b2 (idx != 2) on the idx position "
          f"{by_match[1, LIST_LEN - 1, 0, IDX_POSITION]:.3f}")
    print(f"- layer 1 from the positional part of its query alone: "
          f"{[round(x, 3) for x in positional_source_attention.tolist()]}")
    print(f"- zeroing layer 1 leaves accuracy {ablated_accuracy[0, 1].mean():.3f}, with elt predicted for "
          f"{(ablated_l1 == elt_everywhere).float().mean():.3f} of answers; zeroing layer 0 leaves "
          f"{ablated_accuracy[0, 0].mean():.3f}, with a_j predicted for {(ablated_l0 == original_entries).float().mean():.3f}")
    print(f"- copying scores of the full OV circuits: {[round(x, 3) for x in copying_scores]}")
    print(f"- patching idx: entering layer 1 the index sits at the elt position (effect {patching[1, ELT_POSITION]:.3f}"
          f", at idx {patching[1, IDX_POSITION]:.3f})")
    print(f"- your read-position rule: {[round(x, 4) for x in read_accuracy.tolist()]} per answer position")
    print(f"- moving idx at the elt position entering layer 1: {idx_patch_outcome[1, ELT_POSITION][0]:.4f} of the "
          f"answers that should change become the predicted ones; at the idx position: "
          f"{idx_patch_outcome[1, IDX_POSITION][0]:.4f}")
    print(f"- cutting layer 1's b2 -> idx weight: b2 accuracy {route_outcome[IDX_POSITION][0]:.4f} "
          f"({route_outcome[IDX_POSITION][1]:.3f} where layer 1 read mostly idx)")
