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
# task, to show that they are general: given a transformer that does one small algorithmic job, we find out
# *how* it does it, with measurements you can rerun.
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
# head copies, patch the `idx` token to see where the index information travels, and finally state the mechanism
# as a prediction and test it.
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

from curriculum import circuits, plotting
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
# independently and uniformly. Write the sampler. To agree with the course's generator draw with `generator`, in
# this order: the whole `[batch, LIST_LEN]` list, then all `idx`, then all `elt`
# (three calls of `torch.randint(..., generator=generator)`).

# %% tags=["exercise"]
def sample_array_indexing_batch(batch_size: int, generator: torch.Generator) -> Int[Tensor, "batch seq"]:
    """Sample `batch_size` sequences `BOS a0 a1 a2 NL idx elt NL b0 b1 b2` with b = a after a[idx] = elt.

    Draw, in this order and each with `generator`: the lists a ([batch, LIST_LEN], values in [0, MAX_NUM)), then
    idx ([batch], values in [0, LIST_LEN)), then elt ([batch], values in [0, MAX_NUM)). Returns int64 tokens.
    Raises ValueError if batch_size < 1.
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
    """Mean cross-entropy (float64) of the answers b0..b2 (at LABEL_POSITIONS) predicted at ANSWER_POSITIONS."""
    answer_logits = logits[:, list(ANSWER_POSITIONS)].to(torch.float64)
    answers = tokens[:, list(LABEL_POSITIONS)]
    log_probs = answer_logits.log_softmax(dim=-1)
    return -log_probs.gather(-1, answers[..., None]).mean()


# %% [markdown]
# Plots need axis labels that say what sits at each position. Token values change from example to example, but
# the *roles* of the positions do not.

# %% tags=["exercise"]
def position_labels(list_len: int = LIST_LEN) -> list[str]:
    """The role of each position: BOS, a0.., NL, idx, elt, NL, b0.. (the list entries numbered from 0).

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
    """Fraction of examples whose argmax at each answer position equals the answer b_j, for j = 0..LIST_LEN-1."""
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
    """Mean attention (head 0) from answer position j to every key position, split by whether idx == j.

    match index 0 averages over examples with idx != j, index 1 over examples with idx == j. Every case must
    occur in `tokens` (raise ValueError otherwise).
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
    """Mean attention (head 0) from answer position j to the position holding b_j: a_j's if idx != j, else elt's."""
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
# Read the two layers differently. In layer 1 the split by `idx == j` changes everything: the answer position looks
# at `a_j` when its entry is unchanged and at `elt` when it is the one being overwritten. So layer 1 *selects*. But
# how can it know whether `idx == j`? Its query at the answer position carries only the position (shortformer) and
# whatever layer 0 wrote there; the key at `elt` carries the token `elt` and whatever layer 0 wrote *there*.
#
# Layer 0, at the answer positions, looks at `elt` whatever `idx` is. What does layer 0 do at the `elt` position
# itself? A head at `elt` may attend to `idx`, the only earlier position that knows the index.

# %%
if MAIN:
    layer0_from_elt = cache["pattern", 0][:, 0, ELT_POSITION].mean(dim=0)
    print("layer 0, mean attention from the elt position:")
    print({labels[k]: round(v, 3) for k, v in enumerate(layer0_from_elt.tolist()) if k <= ELT_POSITION})

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
    """Loss and accuracy per answer position after ablating one layer's attention output (hook_attn_out).

    method 0 replaces the output by zeros, method 1 by its mean over the batch (separately at each position).
    Loss is the mean cross-entropy of b_j over the batch (in float64, returned as float32); accuracy as in
    `answer_accuracy`. Returns (loss, accuracy).
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
# Accuracy alone says *that* something broke. What the broken model predicts instead says *what* broke. The helper
# below (not an exercise) returns the zero-ablated model's predictions, so we can ask how often they are `elt` and how
# often the unchanged entry `a_j`.

# %%
def predictions_with_layer_zeroed(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], layer: int
) -> Int[Tensor, "batch answer"]:
    """The argmax prediction at each answer position with blocks.{layer}.hook_attn_out set to zero."""
    logits = model.run_with_hooks(
        tokens, fwd_hooks=[(f"blocks.{layer}.hook_attn_out", lambda attn_out, hook: torch.zeros_like(attn_out))]
    )
    return logits[:, list(ANSWER_POSITIONS)].argmax(dim=-1)


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
# With no LayerNorm and no MLP, the final residual stream is a plain sum, and so is the logit of the right answer:
# `logit(b_j) = sum over components of component @ W_U[:, b_j] + b_U[b_j]`. The components are the token
# embedding, the positional embedding as it enters the residual stream, and each layer's attention output.
#
# One of these is special in a shortformer model. Before computing, predict what the positional row will be, and
# compute it as what the positions *actually* add to the residual stream (`blocks.0.hook_resid_pre` minus
# `hook_embed`), not by projecting `W_pos` yourself.

# %% tags=["exercise"]
def answer_logit_attribution(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "component batch answer"]:
    """Direct contribution of each residual component to the correct answer's logit at each answer position.

    Components, in order: token embedding (hook_embed), positional embedding as it enters the residual stream
    (blocks.0.hook_resid_pre - hook_embed), then each layer's attention output (blocks.{L}.hook_attn_out).
    Each is projected on W_U[:, b_j] (no bias): with b_U added, the components sum to the logit of b_j.
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
# A head moves information by writing `x @ W_V @ W_O` for each source residual vector `x` it attends to. For a
# source that is a bare number token `t`, the logits this adds are row `t` of the full OV circuit
# `W_E[:MAX_NUM] @ W_V @ W_O @ W_U`, a `[50, 50]` matrix (input number -> output number). A head that *copies*
# has a dominant diagonal. (For layer 1 this is only the direct path: its values also contain what layer 0 wrote.)

# %% tags=["exercise"]
def full_ov_circuit(model: HookedTransformer, layer: int, head: int = 0) -> Float[Tensor, "d_vocab_out d_vocab_out"]:
    """W_E @ W_V @ W_O @ W_U of one head, restricted to the number tokens 0..d_vocab_out-1 as inputs.

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
    """Fraction of rows (input tokens) of a square OV circuit whose argmax is on the diagonal, as a Python float.

    Raises ValueError if `ov_circuit` is not a square matrix.
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
# Take each example and make a *corrupted* twin that differs only in the `idx` token. Everything else stays,
# including the tokens `b0 b1` that the later answer positions read, so the only thing the two runs disagree on is
# the index. The corrupted run's right answer is what its own `a`, `idx` and `elt` imply. Run the clean sequence, but
# overwrite the residual stream at one layer and one position with the corrupted run's; if that moves the
# prediction towards the corrupted answer, that residual vector carries the index.
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
    """Normalised effect of patching the corrupted residual stream into the clean run, at one point and position.

    resid_point L < n_layers is blocks.{L}.hook_resid_pre, the last is blocks.{n_layers-1}.hook_resid_post.
    Effect = (LD_patched - LD_clean) / (LD_corrupted - LD_clean), where LD is logit(corrupted answer) -
    logit(clean answer) averaged over the (example, answer position) pairs whose two answers differ. A sequence's
    answer is computed from its a, idx and elt tokens (b_j = elt if idx == j else a_j), not read from its end.
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
# layer 0's head (which, at `elt`, attends to `idx`). Nothing about the index has reached the answer positions yet;
# only after layer 1 does it sit there, about a third at each answer position (each flips its own answer).

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
# ## 7. The mechanism as a prediction
#
# Putting it together, the measurements above tell this story:
#
# 1. **Layer 0, at the `elt` position**, attends to `idx` and writes the index into `elt`'s residual stream.
# 2. **Layer 0, at the answer positions**, attends to `elt` and copies it: on its own this would answer `elt`
#    everywhere (which is what the model does with layer 1 removed).
# 3. **Layer 1, at answer position `j`**, attends to `elt` when the index written there equals `j` (its query knows
#    `j` from the positional embedding), and to `a_j` otherwise; its OV circuit copies the attended token, and this
#    dominates the answer logit.
#
# A story is only worth having if it predicts. Turn step 3 into a predictor that does not use the logits at all: at
# each answer position, output the token at the key position that the head attends to most.

# %% tags=["exercise"]
def predict_from_attention(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], layer: int
) -> Int[Tensor, "batch answer"]:
    """At each answer position, the token (int64) at the key position that head 0 of `layer` attends to most.

    Raises ValueError if layer is not in [0, n_layers).
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
            f"L{layer} attention-argmax predictor: right on {(predicted == answers).float().mean():.4f} of answers "
            f"(per answer position: {[round(x, 4) for x in (predicted == answers).float().mean(0).tolist()]}), "
            f"agrees with the model on {(predicted == model_predictions).float().mean():.4f}"
        )
    layer1_prediction = predict_from_attention(model, tokens, 1)

# %% [markdown]
# Where the predictor fails, look at the attention row: at the last answer position, layer 1 sometimes splits its
# attention between `a2` and the `idx` position, and the model is still right. The story above is the main road, not
# every lane: the residual stream at the `idx` position evidently carries something that layer 1 can copy usefully,
# which would be the next thing to investigate.
#
# ## Conclusion
#
# The cell below collects the day's measurements on the shipped `array-2l1h`, computed above in this notebook.

# %%
if MAIN:
    predictor_accuracy = (layer1_prediction == answers).float().mean().item()
    ablated_l0 = predictions_with_layer_zeroed(model, tokens, 0)
    ablated_l1 = predictions_with_layer_zeroed(model, tokens, 1)
    print(f"On {len(tokens)} fresh examples (seed 0):")
    print(f"- accuracy per answer position: {[round(x, 4) for x in accuracy.tolist()]}")
    print(f"- layer 0: the elt position attends to idx ({layer0_from_elt[IDX_POSITION]:.3f}); answer positions attend"
          f" to elt ({by_match[0, :, :, ELT_POSITION].mean():.3f} on average)")
    print(f"- layer 1: attention to the position holding the answer, per answer: "
          f"{[round(x, 3) for x in source_attention[1].tolist()]}")
    print(f"- zeroing layer 1 leaves accuracy {ablated_accuracy[0, 1].mean():.3f}, with elt predicted for "
          f"{(ablated_l1 == elt_everywhere).float().mean():.3f} of answers; zeroing layer 0 leaves "
          f"{ablated_accuracy[0, 0].mean():.3f}, with a_j predicted for {(ablated_l0 == original_entries).float().mean():.3f}")
    print(f"- copying scores of the full OV circuits: {[round(x, 3) for x in copying_scores]}")
    print(f"- patching idx: entering layer 1 the index sits at the elt position (effect {patching[1, ELT_POSITION]:.3f}"
          f", at idx {patching[1, IDX_POSITION]:.3f})")
    print(f"- 'layer 1 copies the token it attends to most' predicts {predictor_accuracy:.4f} of answers")
