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
# # Day 2: reverse-engineering the induction circuit from the weights
#
# Yesterday we watched `induction-2l` run. We found, from its activations, that L0H0 attends to the previous token
# and that L1H0 attends to the token after an earlier copy of the current one, and that removing either head breaks
# copying. That told us *which* heads do the work, not *how* their weights make them do it. Today we read the
# mechanism off the weight matrices themselves, without running the model on any text, and at the end we use what
# we learned to predict L1H0's attention pattern from the weights alone.
#
# By the end of the day you will have:
#
# 1. built a head's OV and QK circuits as *factored matrices* and measured them without multiplying them out;
# 2. computed each head's *full OV circuit* (token in, logits out) and measured how well it copies, by its top-k
#    predictions and by its eigenvalues;
# 3. computed the *positional* QK circuit of the layer-0 heads and found the previous-token head in it;
# 4. split the queries and keys of L1H0 into the contributions of their sources, and checked that they add up;
# 5. split L1H0's attention scores into (query source x key source) terms and found the one that draws the
#    induction stripe;
# 6. written down the *K-composition circuit* of L0H0 into L1H0 as one token-by-token matrix;
# 7. scored how strongly every layer-0 head composes with every layer-1 head, against a random baseline;
# 8. predicted L1H0's attention pattern from weights alone and compared the prediction with the real pattern.
#
# As yesterday, every function in a cell marked as an exercise is graded: `check(function_name)` in the notebook,
# `pytest --day 2` in a terminal.

# %%
from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in Jupyter without ipywidgets

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import ActivationCache, FactoredMatrix, HookedTransformer

from curriculum.library import plotting

MAIN = __name__ == "__main__"
if MAIN:
    from checks import check  # noqa: F401  (check(fn) grades one exercise and prints the verdict)

# %% [markdown]
# ## 1. The model, seen as a sum of paths
#
# `induction-2l` has two attention layers, four heads each, no MLPs and no LayerNorm. Its positional embeddings are
# *shortformer* style: the position embedding `W_pos[p]` is added to the input of the queries and keys of **every**
# layer, and is never written into the residual stream. You can see it in TransformerLens's source
# (`TransformerBlock.forward`): the attention layer gets `query_input = ln1(resid_pre) + pos_embed`, the same for the
# keys, and `value_input = ln1(resid_pre)` with no positions. This model has no LayerNorm, so at layer `l`
#
# - the residual stream is `resid_pre[l] = W_E[token] + sum of the outputs of the heads of layers < l
#   + the output biases b_O of those layers`;
# - a head's query is `(resid_pre[l] + W_pos[position]) @ W_Q + b_Q`, its key is the same with `W_K, b_K`;
# - its value is `resid_pre[l] @ W_V + b_V`, and it writes `pattern @ value @ W_O` into the stream.
#
# Everything is linear except the attention softmax. So the logits are a sum of *paths* through the network, and
# each path is a product of weight matrices that we can study on its own.
#
# Two products describe a head completely (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits",
# who introduced them). Their names come from the four weight matrices of a head: **Q**uery, **K**ey, **V**alue and
# **O**utput.
#
# - the **OV circuit** `W_OV = W_V @ W_O` (`d_model x d_model`): if the head attends to a position holding the
#   vector `x`, it writes `x @ W_OV` (plus a bias) into the stream. It says *what* the head moves.
# - the **QK circuit** `W_QK = W_Q @ W_K.T` (`d_model x d_model`): the attention score of a query vector `x_q` on a
#   key vector `x_k` is `x_q @ W_QK @ x_k.T / sqrt(d_head)` (plus bias terms). It says *where* the head looks.
#
# Both have rank at most `d_head`, because they pass through the `d_head`-dimensional space of the head.

# %%
if MAIN:
    from curriculum.models import load_model

    model = load_model("induction-2l")
    cfg = model.cfg
    print(f"layers {cfg.n_layers}, heads {cfg.n_heads}, d_model {cfg.d_model}, d_head {cfg.d_head}, "
          f"d_vocab {cfg.d_vocab}, n_ctx {cfg.n_ctx}, positions: {cfg.positional_embedding_type}, "
          f"normalisation: {cfg.normalization_type}")
    print("W_Q", tuple(model.W_Q.shape), " W_O", tuple(model.W_O.shape), " W_E", tuple(model.W_E.shape),
          " W_pos", tuple(model.W_pos.shape), " W_U", tuple(model.W_U.shape))

# %% [markdown]
# ## 2. Factored matrices
#
# The full OV circuit of a head, from token to logit, is `W_E @ W_V @ W_O @ W_U`: a `d_vocab x d_vocab` matrix.
# Here that is 193 x 193, but for a real language model it would be 50,000 x 50,000, ten gigabytes, and its rank
# is still only `d_head`. TransformerLens's `FactoredMatrix(A, B)` stands for the product `A @ B` without computing
# it. It knows its `.shape`, multiplies on either side (`fm @ M`, `M @ fm`, both still factored), transposes
# (`.T`), and computes the singular value decomposition of the product from the two factors (`.U`, `.S`, `.V`,
# cheap when the inner dimension is small). `.AB` multiplies it out: that is the one thing to avoid on a big one.
# Factored matrices may carry leading batch dimensions: `FactoredMatrix(model.W_V[0], model.W_O[0])` holds the
# OV circuits of all heads of layer 0 at once, with shape `[n_heads, d_model, d_model]`.
#
# The **Frobenius norm** of a matrix is the square root of the sum of its squared entries, the matrix's size as if it
# were one long vector.
#
# **Exercise.** Summarise a (possibly batched) factored matrix without ever materialising the full product. Ask
# yourself, for each of the three numbers, which small pieces of the two factors it needs.

# %% tags=["exercise"]
def circuit_summary(circuit: FactoredMatrix, k: int) -> dict[str, Tensor]:
    """The Frobenius norm, the k largest singular values and the top-left k x k corner of a factored matrix.

    circuit: a FactoredMatrix of shape [*batch, ldim, rdim] (any number of leading batch dimensions, possibly none).
    k: how many singular values and how big a corner, from 1 to the smallest of ldim, rdim and the inner dimension.

    Returns a dict of float tensors:
        "frobenius_norm": [*batch], the Frobenius norm of each product matrix;
        "singular_values": [*batch, k], its k largest singular values, in decreasing order;
        "corner": [*batch, k, k], the top-left k x k block of the product (its first k rows and columns).
    Never multiplies out the full [ldim, rdim] product (neither `circuit.AB` nor the two factors multiplied): this must
    work on matrices far too large to hold in memory. Raises ValueError when k is out of range.
    """
    if not 1 <= k <= min(circuit.ldim, circuit.rdim, circuit.mdim):
        raise ValueError(f"k must lie in 1..{min(circuit.ldim, circuit.rdim, circuit.mdim)}, got {k}")
    return {
        "frobenius_norm": circuit.norm(),
        "singular_values": circuit.S[..., :k],
        "corner": circuit.A[..., :k, :] @ circuit.B[..., :, :k],  # a k x k product: A's first rows, B's first columns
    }


# %%
if MAIN:
    ov_layer0 = FactoredMatrix(model.W_V[0], model.W_O[0])  # [head, d_model, d_model]
    qk_layer1 = FactoredMatrix(model.W_Q[1], model.W_K[1].transpose(-1, -2))
    print(f"layer-0 OV circuits: {ov_layer0}")
    for name, circuit in [("OV, layer 0", ov_layer0), ("QK, layer 1", qk_layer1)]:
        summary = circuit_summary(circuit, 3)
        print(f"{name}: Frobenius norms {[round(x, 2) for x in summary['frobenius_norm'].tolist()]}")
    with torch.no_grad():
        full_ov_factored = FactoredMatrix(model.W_E, model.W_V[1, 0]) @ model.W_O[1, 0] @ model.W_U
        summary = circuit_summary(full_ov_factored, 3)
        gap = (summary["frobenius_norm"] - full_ov_factored.AB.norm()).abs().item()  # small here: we may check
        print(f"L1H0's full OV circuit: {full_ov_factored}; norm {summary['frobenius_norm'].item():.1f} "
              f"(materialised: off by {gap:.1e})")
        print("its top-left 3x3 corner (rows: input token, columns: output token):")
        print(summary["corner"])
        plotting.show(
            plotting.line(
                torch.stack([FactoredMatrix(model.W_V[layer], model.W_O[layer]).S for layer in range(2)]).flatten(0, 1),
                names=[f"L{layer}H{head}" for layer in range(2) for head in range(cfg.n_heads)],
                title="Singular values of each head's OV circuit (W_V W_O)",
                xaxis="index",
                yaxis="singular value",
            )
        )

# %% [markdown]
# The corner of L1H0's full OV circuit already hints at what is coming: for the two words in it (rows and columns 1
# and 2) the diagonal entries, a token mapped to itself, are large and positive (about 13) and the entries off it
# small. Not for `<bos>` (row and column 0): its diagonal entry is about 0.2, below two entries of its column
# (-1.6 and -1.8 are further from zero, but that is the row of `<bos>` being a weak input, not copying). The model
# never needs to copy `<bos>`: it occurs only at position 0. Section 3 measures copying over every token.
#
# ## 3. The full OV circuit: which heads copy?
#
# Suppose a head attends perfectly to a position that holds token `t`, and suppose, for the moment, that the
# residual stream there holds only `t`'s embedding (true in layer 0; in layer 1 the embedding is still there, next
# to the outputs of layer 0). Then the head adds `W_E[t] @ W_V @ W_O` to the stream, and the direct effect on the
# logits is `W_E[t] @ W_V @ W_O @ W_U`. Stack these rows for every token and you get the **full OV circuit**, a
# `[d_vocab, d_vocab_out]` matrix: row = the token attended to, column = the output logit.
#
# An induction head should *copy*: attending to `B`, it should raise the logit of `B`. In the full OV circuit
# that means a dominant diagonal.
#
# **Exercise.** Compute the full OV circuit of one head as a plain tensor (on this model it is small enough to
# materialise; a factored matrix is a fine way to build it).

# %% tags=["exercise"]
def head_full_ov_circuit(model: HookedTransformer, layer: int, head: int) -> Float[Tensor, "d_vocab d_vocab_out"]:
    """The full OV circuit of one head: the direct effect on the logits of attending to each token.

    Row t is what the head adds to the logits when it attends fully to a position whose residual stream holds only
    token t's embedding (biases left out); column u is output token u's logit. Returns a float tensor of shape
    [d_vocab, d_vocab_out] on the model's device.
    """
    circuit = FactoredMatrix(model.W_E, model.W_V[layer, head]) @ model.W_O[layer, head] @ model.W_U
    return circuit.AB


# %% [markdown]
# How close to "copying" is a matrix? A simple measure: for each row (input token) `t`, is the largest entry on the
# diagonal, i.e. would attending to `t` make `t` the head's top prediction? That is the **top-1 copying accuracy**;
# with "`t` is among the `k` largest entries of its row" it is the top-k accuracy. A random matrix scores about
# `k / d_vocab`.
#
# **Exercise.** Compute the top-k copying accuracy of a batch of square circuits. `Tensor.topk` and a comparison
# with `torch.arange` are enough; no loop over rows.

# %% tags=["exercise"]
def top_k_copying_accuracy(circuits: Float[Tensor, "*batch d_vocab d_vocab"], k: int) -> Float[Tensor, "*batch"]:
    """Fraction of rows t whose diagonal entry [t, t] is among the k largest entries of row t, per matrix.

    circuits: float tensor, any number of leading batch dimensions, the last two of equal size (rows: input token,
        columns: output token).
    Ties count against the diagonal only as `Tensor.topk` breaks them. Returns a float tensor of shape [*batch] with
    values in [0, 1]. Raises ValueError when the last two dimensions differ or k is not in 1..d_vocab.
    """
    n_rows, n_cols = circuits.shape[-2:]
    if n_rows != n_cols:
        raise ValueError(f"copying needs a square circuit, got {n_rows} x {n_cols}")
    if not 1 <= k <= n_cols:
        raise ValueError(f"k must lie in 1..{n_cols}, got {k}")
    top = circuits.topk(k, dim=-1).indices  # [*batch, row, k]
    rows = torch.arange(n_rows, device=circuits.device)[:, None]
    return (top == rows).any(dim=-1).float().mean(dim=-1)


# %%
if MAIN:
    with torch.no_grad():
        all_full_ov = torch.stack([
            torch.stack([head_full_ov_circuit(model, layer, head) for head in range(cfg.n_heads)])
            for layer in range(cfg.n_layers)
        ])  # [layer, head, d_vocab, d_vocab]
    copying_top1 = top_k_copying_accuracy(all_full_ov, 1)
    copying_top5 = top_k_copying_accuracy(all_full_ov, 5)
    labels = [f"L{layer}H{head}" for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]
    for label, top1, top5 in zip(labels, copying_top1.flatten().tolist(), copying_top5.flatten().tolist()):
        print(f"{label}: top-1 copying accuracy {top1:.3f}, top-5 {top5:.3f}")
    plotting.show(
        plotting.imshow(
            all_full_ov[1, 0, :40, :40],
            title="Full OV circuit of L1H0, first 40 tokens (row: attended token, column: logit)",
            xaxis="output token",
            yaxis="attended token",
            value_name="logit",
        )
    )

# %% [markdown]
# A second, coarser measure of copying uses the eigenvalues of the full OV circuit. An eigenvector `v` with
# eigenvalue `lambda` is a direction that the circuit maps onto itself, scaled by `lambda`; a copying circuit maps
# most directions onto themselves with a positive factor, so its eigenvalues are mostly positive. The **eigenvalue
# copying score** `sum(lambda).real / sum(|lambda|)` is 1 when every eigenvalue is positive and real, -1 when every
# one is negative.
#
# The full OV circuit is `d_vocab x d_vocab` but has rank `d_head`: it has at most `d_head` non-zero eigenvalues,
# and they are those of the small `d_head x d_head` matrix `B @ A` (if `A @ B v = lambda v`, then `B A (B v) =
# lambda (B v)`). `FactoredMatrix.eigenvalues` uses exactly this, so the big matrix is never built.
#
# **Exercise.** Build the full OV circuits of every head of a model as one batched factored matrix (leading dims
# `[layer, head]`) and compute each head's eigenvalue copying score.

# %% tags=["exercise"]
def eigenvalue_copying_scores(model: HookedTransformer) -> Float[Tensor, "layer head"]:
    """Each head's eigenvalue copying score: the real part of the sum of its full OV circuit's eigenvalues over the
    sum of their absolute values.

    The full OV circuit is the token-to-logit one of head_full_ov_circuit (biases left out); its non-zero eigenvalues
    are computed without building the [d_vocab, d_vocab] matrix. Returns a real float tensor of shape
    [n_layers, n_heads] with values in [-1, 1]. Raises ValueError when the model's input and output vocabularies
    differ in size (the circuit is not square).
    """
    if model.cfg.d_vocab != model.cfg.d_vocab_out:
        raise ValueError(f"eigenvalues need a square circuit; this model reads {model.cfg.d_vocab} tokens and "
                         f"predicts {model.cfg.d_vocab_out}")
    full_ov = FactoredMatrix(model.W_E @ model.W_V, model.W_O @ model.W_U)  # [layer, head, d_vocab, d_vocab]
    eigenvalues = full_ov.eigenvalues  # complex, [layer, head, d_head]
    return eigenvalues.sum(dim=-1).real / eigenvalues.abs().sum(dim=-1)


# %%
if MAIN:
    with torch.no_grad():
        eigenvalue_scores = eigenvalue_copying_scores(model)
    plotting.show(
        plotting.imshow(
            torch.stack([copying_top1, eigenvalue_scores]),
            facet_labels=["top-1 copying accuracy", "eigenvalue copying score"],
            x_labels=[f"H{head}" for head in range(cfg.n_heads)],
            y_labels=[f"L{layer}" for layer in range(cfg.n_layers)],
            zrange=(-1.0, 1.0),
            title="Which heads copy? Two measures from the full OV circuits",
        )
    )
    for label, score in zip(labels, eigenvalue_scores.flatten().tolist()):
        print(f"{label}: eigenvalue copying score {score:+.3f}")

# %% [markdown]
# L1H0 copies almost perfectly: for nearly every token, attending to it makes that very token its top prediction,
# and its eigenvalue score is 1 to three decimals. No other head comes close on top-1 accuracy; a head in layer 0
# should not copy anyway (its job is to move information, not to predict). Notice that L0H1 and L0H3 have high
# eigenvalue scores all the same: positive eigenvalues say that the circuit tends to map directions onto
# themselves, not that each token's own logit wins. The top-1 accuracy is the sharper test. We have the *OV* half of the induction head. Now for the question of where it looks.
#
# ## 4. The positional QK circuit of layer 0
#
# A previous-token head must find "the position just before me". In a shortformer model the only place positions
# enter is the query and key inputs, so let us isolate that: pretend every position holds nothing but its position
# embedding. The query at position `i` is then `W_pos[i] @ W_Q + b_Q`, the key at position `j` is
# `W_pos[j] @ W_K + b_K`, and their product (scaled by `1/sqrt(d_head)`, masked causally and softmaxed over keys)
# is the attention pattern the head would produce *from positions alone*. For a layer-0 head this is a real part of
# its computation: its query and key inputs are exactly `W_E[token] + W_pos[position]`.
#
# **Exercise.** Compute that positional attention pattern for the first `n_positions` positions.

# %% tags=["exercise"]
def positional_attention(
    model: HookedTransformer, layer: int, head: int, n_positions: int
) -> Float[Tensor, "n_positions n_positions"]:
    """The attention pattern of one head if each query and key input held only its position embedding.

    Query and key are those the head computes (its biases included) from the position embeddings of positions
    0 .. n_positions-1; scores, causal mask and softmax as in the model. Returns a float tensor of shape
    [n_positions, n_positions] (row: query position, column: key position), zero above the diagonal.
    Raises ValueError unless the model uses shortformer positions, or when n_positions is not in 1..n_ctx.
    """
    if model.cfg.positional_embedding_type != "shortformer":
        raise ValueError("positions enter only the queries and keys in a shortformer model; "
                         f"this one has {model.cfg.positional_embedding_type!r} positions")
    if not 1 <= n_positions <= model.cfg.n_ctx:
        raise ValueError(f"n_positions must lie in 1..{model.cfg.n_ctx}, got {n_positions}")
    positions = model.W_pos[:n_positions]
    queries = positions @ model.W_Q[layer, head] + model.b_Q[layer, head]
    keys = positions @ model.W_K[layer, head] + model.b_K[layer, head]
    scores = queries @ keys.T / model.cfg.d_head**0.5
    future = torch.triu(torch.ones(n_positions, n_positions, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


# %% [markdown]
# **Exercise.** Score a pattern (or a batch of them) as previous-position attention: the mean probability that a
# query puts on the key just before it. Skip query 0, which has no previous position.

# %% tags=["exercise"]
def previous_position_score(patterns: Float[Tensor, "*batch query key"]) -> Float[Tensor, "*batch"]:
    """Mean attention from each query to the key just before it, over every query that has one, per pattern.

    patterns: float tensor of attention probabilities, square in its last two dims (query, key) with at least 2
    positions, any number of leading dimensions. Returns a float tensor of shape [*batch].
    """
    return patterns.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1)


# %%
if MAIN:
    N_POSITIONS = cfg.n_ctx  # the whole context: a head may work in part of it only
    with torch.no_grad():
        positional = torch.stack([positional_attention(model, 0, head, N_POSITIONS) for head in range(cfg.n_heads)])
    positional_scores = previous_position_score(positional)
    to_previous = positional.diagonal(offset=-1, dim1=-2, dim2=-1)  # [head, query 1..n_ctx-1]
    to_first = positional[:, 2:, 0].mean(dim=-1)  # queries 2.. (query 1 has only keys 0 and 1)
    for head, score in enumerate(positional_scores.tolist()):
        print(f"L0H{head}: previous-position score from positions alone {score:.3f} (lowest query "
              f"{to_previous[head].min().item():.3f}, at query {to_previous[head].argmin().item() + 1}); "
              f"mean attention to position 0 {to_first[head].item():.3f}")
    chunks = [(start, min(start + 16, N_POSITIONS)) for start in range(0, N_POSITIONS, 16)]
    l0h0_by_chunk = [to_previous[0, max(lo - 1, 0) : hi - 1].mean().item() for lo, hi in chunks]
    print("L0H0, previous-position attention by 16-query chunk:",
          ", ".join(f"{lo}-{hi - 1}: {value:.2f}" for (lo, hi), value in zip(chunks, l0h0_by_chunk)))
    plotting.show(
        plotting.imshow(
            positional[:, :20, :20],
            facet_labels=[f"L0H{head}" for head in range(cfg.n_heads)],
            diverging=False,
            zrange=(0.0, 1.0),
            title="Layer 0 attention from positions alone (first 20 positions)",
            xaxis="key position",
            yaxis="query position",
        )
    )
    plotting.show(
        plotting.line(
            to_previous,
            x=list(range(1, N_POSITIONS)),
            names=[f"L0H{head}" for head in range(cfg.n_heads)],
            title="Attention to the previous position from positions alone, at every query of the context",
            xaxis="query position",
            yaxis="attention to query - 1",
        )
    )

# %% [markdown]
# From positions alone, L0H0 attends to the previous position in the first half of the context: above 0.99 of each
# query's attention per 16-query chunk up to position 47, about 0.9 in 48-63, and under 0.5 after (0.32-0.46 per
# chunk). That is the limit we measured on Day 1 in its real attention, and here it is in the weights: the position
# embeddings of the second half of the context do not tell L0H0's query where the previous position is. Its mean
# over the whole context (about 0.67) hides the split; so would a mean over the first 64 positions (0.98). The
# other layer-0 heads put little on the previous position (at most 0.03 on average), but they do not spread their
# attention evenly either: each puts a large share on position 0 (the dark first column in the figure), L0H2 most,
# more than half. This is the first half of the
# induction circuit, read off the weights: L0H0 moves each token's embedding one position forward, and its OV circuit
# decides what form that moved copy takes.
#
# ## 5. Where do L1H0's queries and keys come from?
#
# Layer 1 reads a richer residual stream than layer 0: the embedding plus what every layer-0 head wrote. Which of
# those sources do L1H0's queries and keys use? Because everything before the softmax is linear, we can split the
# query (and key) input of a layer into one term per source and pass each term through `W_Q` (or `W_K`) separately.
#
# The sources of the query and key input of layer `l` in an attention-only, LayerNorm-free shortformer model:
#
# 1. the token embedding, `cache["embed"]`;
# 2. the output of each head of each earlier layer, `cache["z", layer][:, :, head] @ W_O[layer, head]`
#    (layer by layer, head by head: L0H0, L0H1, ...);
# 3. the output biases `b_O` of the earlier layers, summed (a constant vector, the same at every position);
# 4. the position embedding, `cache["pos_embed"]`, which shortformer adds here and never into the stream.
#
# (`cache.decompose_resid()` would list `pos_embed` as part of the residual stream: with shortformer it is not, and
# the parts it returns only add up without it.)
#
# **Exercise.** Stack these sources into one tensor. Check yourself that the sum over sources equals
# `cache["resid_pre", layer] + cache["pos_embed"]`, the real input of the queries and keys.

# %% tags=["exercise"]
def decompose_attention_input(
    model: HookedTransformer, cache: ActivationCache, layer: int
) -> Float[Tensor, "source batch pos d_model"]:
    """The query/key input of `layer` split by source: [embed, each head of layers < layer, summed b_O, pos_embed].

    Heads are ordered layer by layer, head by head (L0H0, L0H1, ..., L1H0, ...); for layer 0 there are none and
    the bias term is all zeros. cache: the model's activations on tokens of shape [batch, pos].
    Returns a float tensor of shape [2 + layer * n_heads + 1, batch, pos, d_model] whose sum over dim 0 is
    resid_pre[layer] + pos_embed.
    Raises ValueError unless the model is attention-only, has no normalisation and uses shortformer positions.
    """
    cfg = model.cfg
    if not cfg.attn_only or cfg.normalization_type is not None or cfg.positional_embedding_type != "shortformer":
        raise ValueError("this decomposition holds for attention-only shortformer models without normalisation")
    embed = cache["embed"]
    heads = [torch.einsum("bphd,hdm->hbpm", cache["z", earlier], model.W_O[earlier]) for earlier in range(layer)]
    bias = model.b_O[:layer].sum(dim=0).expand_as(embed)
    return torch.cat([embed[None], *heads, bias[None], cache["pos_embed"][None]], dim=0)


# %% [markdown]
# Each source now goes through the head's query and key weights on its own. The biases `b_Q` and `b_K` are not
# linear in any source; keep them as one more term of their own, so that the terms still sum to the real queries
# and keys (`cache["q", layer][:, :, head]`, `cache["k", layer][:, :, head]`).
#
# **Exercise.** Map the sources to per-source queries and keys of one head.

# %% tags=["exercise"]
def decompose_queries_keys(
    sources: Float[Tensor, "source batch pos d_model"], model: HookedTransformer, layer: int, head: int
) -> tuple[Float[Tensor, "term batch pos d_head"], Float[Tensor, "term batch pos d_head"]]:
    """Per-source queries and keys of one head: what each source alone contributes through the head's query (key)
    weights, plus one last term for the query (key) bias.

    Returns (queries, keys), float tensors of shape [source + 1, batch, pos, d_head]; term i < source comes from
    source i alone, the last term is the bias at every position. Their sums over dim 0 are the head's real queries and
    keys when `sources` decomposes its input.
    """
    w_q, w_k = model.W_Q[layer, head], model.W_K[layer, head]
    shape = (1, *sources.shape[1:-1], model.cfg.d_head)
    queries = torch.cat([sources @ w_q, model.b_Q[layer, head].expand(shape)], dim=0)
    keys = torch.cat([sources @ w_k, model.b_K[layer, head].expand(shape)], dim=0)
    return queries, keys


# %%
if MAIN:
    from curriculum.data.induction_corpus import FIRST_WORD_TOKEN
    from curriculum.data.repeated_tokens import repeated_tokens

    HALF_LEN = 25
    rep_tokens = repeated_tokens(8, HALF_LEN, cfg.d_vocab, torch.Generator().manual_seed(2), first_token=FIRST_WORD_TOKEN)
    with torch.no_grad():
        _, rep_cache = model.run_with_cache(rep_tokens)
        sources = decompose_attention_input(model, rep_cache, layer=1)
        input_gap = (sources.sum(0) - (rep_cache["resid_pre", 1] + rep_cache["pos_embed"])).abs().max().item()
        query_terms, key_terms = decompose_queries_keys(sources, model, layer=1, head=0)
        query_gap = (query_terms.sum(0) - rep_cache["q", 1][:, :, 0]).abs().max().item()
        key_gap = (key_terms.sum(0) - rep_cache["k", 1][:, :, 0]).abs().max().item()
    source_labels = ["embed", *[f"L0H{head}" for head in range(cfg.n_heads)], "b_O", "pos"]
    term_labels = [*source_labels, "bias"]
    print(f"{len(source_labels)} sources: {source_labels}")
    print(f"largest gap from the real input {input_gap:.1e}, queries {query_gap:.1e}, keys {key_gap:.1e}")
    term_norms = torch.stack([query_terms.norm(dim=-1).mean(dim=(1, 2)), key_terms.norm(dim=-1).mean(dim=(1, 2))])
    plotting.show(
        plotting.imshow(
            term_norms,
            x_labels=term_labels,
            y_labels=["query", "key"],
            diverging=False,
            title="L1H0: mean size of each source's contribution to its queries and keys",
            value_name="mean norm",
        )
    )

# %% [markdown]
# Size is not importance, but it narrows the search: a source whose query or key term is tiny cannot drive the
# attention pattern. For that we need the scores.
#
# ## 6. Which pair of sources draws the induction stripe?
#
# The attention score is a dot product of a query with a key. With queries and keys split into terms, the score
# splits into one term per *pair*: `score[q, k] = sum over i, j of query_term_i[q] . key_term_j[k] / sqrt(d_head)`.
# On a repeated random sequence L1H0 draws a stripe `half_len - 1` below the diagonal; one of these pair terms
# should draw it on its own.
#
# **Exercise.** Compute every (query term, key term) score, for a batch of sequences. Leave out the causal mask:
# masked entries would be `-inf`, which does not split into a sum.

# %% tags=["exercise"]
def decompose_attention_scores(
    queries: Float[Tensor, "q_term batch pos d_head"], keys: Float[Tensor, "k_term batch pos d_head"]
) -> Float[Tensor, "q_term k_term batch query key"]:
    """Attention score of every (query term, key term) pair, scaled as the model scales scores, unmasked.

    Returns a float tensor of shape [q_term, k_term, batch, query pos, key pos] whose sum over the first two dims is
    the head's attention score before the causal mask.
    """
    d_head = queries.shape[-1]
    return torch.einsum("ibqd,jbkd->ijbqk", queries, keys) / d_head**0.5


# %% [markdown]
# To see which term draws the stripe, measure for each pair how much higher its score is on the stripe (query in
# the second copy, key right after that token's first occurrence) than on the other keys the query may attend to.

# %%
def stripe_contrast(scores: Float[Tensor, "*terms batch query key"], half_len: int) -> Float[Tensor, "*terms"]:
    """Mean score on the induction stripe minus the mean score on the other allowed keys, over second-copy queries."""
    seq = scores.shape[-1]
    query = torch.arange(seq, device=scores.device)[:, None]
    key = torch.arange(seq, device=scores.device)[None, :]
    in_second_copy = query > half_len
    on_stripe = (key == query - half_len + 1) & in_second_copy
    elsewhere = (key <= query) & ~on_stripe & in_second_copy
    return scores[..., on_stripe].mean(dim=(-1, -2)) - scores[..., elsewhere].mean(dim=(-1, -2))


# %%
if MAIN:
    score_terms = decompose_attention_scores(query_terms, key_terms)
    with torch.no_grad():
        real_scores = rep_cache["attn_scores", 1][:, 0]
    causal = torch.ones_like(real_scores[0], dtype=torch.bool).tril()
    score_gap = (score_terms.sum(dim=(0, 1)) - real_scores)[:, causal].abs().max().item()
    print(f"summed terms vs. the real (unmasked) scores: largest gap {score_gap:.1e}")
    contrast = stripe_contrast(score_terms, HALF_LEN)
    best = divmod(contrast.argmax().item(), contrast.shape[1])
    print(f"strongest stripe term: query {term_labels[best[0]]} x key {term_labels[best[1]]}, contrast "
          f"{contrast.max().item():.2f}; next largest {contrast.flatten().sort().values[-2].item():.2f}")
    plotting.show(
        plotting.imshow(
            contrast,
            x_labels=term_labels,
            y_labels=term_labels,
            title="L1H0: score on the induction stripe minus elsewhere, per (query term, key term)",
            xaxis="key term",
            yaxis="query term",
            value_name="contrast",
        )
    )
    plotting.show(
        plotting.imshow(
            score_terms[0, 1, 0],
            title="L1H0 score term: query from the embedding x key from L0H0 (one sequence)",
            xaxis="key position",
            yaxis="query position",
            value_name="score",
        )
    )

# %% [markdown]
# The second figure has a second stripe, *above* the diagonal: for a query in the first copy, the key in the second
# copy whose previous token is the query's token. The term matches tokens wherever they sit; the scores here are
# unmasked, and in the real pattern the causal mask removes those keys (they come after the query). Both stripes
# score about the same (the tests measure it), far above the rest of the term.
#
# One term stands out: the query made from the **token embedding** against the key made from **L0H0's output**.
# L0H0 writes, at every position, a transformed copy of the previous token's embedding; L1H0's key reads it; L1H0's
# query reads the current token. So a query for token `A` scores high on keys whose *previous token* was `A`: that
# is the token after the earlier `A`. This is **K-composition**: a layer-0 head changes what a layer-1 head's keys
# say.
#
# ## 7. The K-composition circuit
#
# We can write that term as one matrix over tokens, from weights alone. If the query position holds token `a` and
# the key position's previous token is `b` (and L0H0 attends to it fully), the score term is
#
# `W_E[a] @ W_Q^{1.0} . (W_E[b] @ W_V^{0.0} @ W_O^{0.0} @ W_K^{1.0}) / sqrt(d_head)`,
#
# a `[d_vocab, d_vocab]` matrix, row = query token, column = previous token at the key. For an induction head its
# diagonal should dominate each row.
#
# **Exercise.** Compute this K-composition circuit for any pair of heads (earlier layer -> later layer).

# %% tags=["exercise"]
def k_composition_circuit(
    model: HookedTransformer, prev_layer: int, prev_head: int, layer: int, head: int
) -> Float[Tensor, "query_token key_prev_token"]:
    """The K-composition circuit of (prev_layer, prev_head) into (layer, head), over tokens.

    Entry [a, b] is the attention score (scaled as the model scales scores, biases left out) of a query whose input is
    token a's embedding on a key whose input is what (prev_layer, prev_head) writes when it attends fully to token
    b's embedding. Returns a float tensor of shape [d_vocab, d_vocab] (row: query token, column: the token moved to
    the key).
    """
    queries = FactoredMatrix(model.W_E, model.W_Q[layer, head])
    moved = FactoredMatrix(model.W_E, model.W_V[prev_layer, prev_head]) @ model.W_O[prev_layer, prev_head]
    keys = moved @ model.W_K[layer, head]
    return (queries @ keys.T).AB / model.cfg.d_head**0.5


# %%
if MAIN:
    with torch.no_grad():
        k_circuit = k_composition_circuit(model, 0, 0, 1, 0)
        k_circuits_other = torch.stack([k_composition_circuit(model, 0, prev, 1, 0) for prev in range(cfg.n_heads)])
    k_top1 = top_k_copying_accuracy(k_circuits_other, 1)
    for prev, accuracy in enumerate(k_top1.tolist()):
        print(f"K-composition L0H{prev} -> L1H0: the query token's own column is the row's largest for "
              f"{accuracy:.3f} of tokens")
    plotting.show(
        plotting.imshow(
            k_circuit[:40, :40],
            title="K-composition circuit L0H0 -> L1H0 (first 40 tokens)",
            xaxis="previous token at the key",
            yaxis="query token",
            value_name="score",
        )
    )

# %% [markdown]
# ## 8. Composition scores: which heads compose at all?
#
# We found K-composition of L0H0 into L1H0 by looking. To search all pairs, measure how much of a later head's
# circuit reads what an earlier head writes. With the earlier head's OV circuit `W_A` (what it writes) and a matrix
# `W_B` of the later head that reads the residual stream, the **composition score** is
#
# `||W_A @ W_B||_F / (||W_A||_F * ||W_B||_F)`,
#
# between 0 and 1: large when the output space of `W_A` lines up with the input space of `W_B`. With row vectors
# (`x @ W`) the three kinds are
#
# - **Q-composition**: the earlier output feeds the query: `W_B = W_QK` of the later head;
# - **K-composition**: it feeds the key: `W_B = W_QK.T` (the score is `x_q @ W_QK @ (x_k @ W_A).T`);
# - **V-composition**: it feeds the value: `W_B = W_OV` of the later head.
#
# (Elhage et al. 2021 define these scores; the names Q-, K- and V-composition are theirs.)
#
# **Exercise.** Compute the scores of every (left, right) pair at once, with no Python loop over pairs. The obvious
# batched product of every pair builds a `[left, right, d_model, d_model]` array: for a model with 144 heads of
# `d_model` 768 that is 144 x 144 x 768 x 768 floats, about 49 GB. Look for a way to get each pair's Frobenius norm
# without building its product: the squared Frobenius norm of a matrix `M` is the trace of `M.T @ M`, and a trace of
# a product can be regrouped. (The check grades the values only, on this small model, so the obvious product passes
# too; the point is the identity.)

# %% tags=["exercise"]
def composition_scores(
    left: Float[Tensor, "left d_model d_model"], right: Float[Tensor, "right d_model d_model"]
) -> Float[Tensor, "left right"]:
    """The composition score of every pair (left[i], right[j]): the Frobenius norm of their product over the
    product of their Frobenius norms.

    Returns a float tensor of shape [left, right] with values in [0, 1]. Must scale to many heads: no Python loop over
    pairs, and no intermediate holding all [left, right, d_model, d_model] products at once.
    """
    # ||L R||_F^2 = tr(R^T L^T L R) = sum of the entries of (L^T L) * (R R^T): two Gram matrices per head, no
    # [left, right, d_model, d_model] array.
    left_gram = left.transpose(-1, -2) @ left  # [left, d_model, d_model]
    right_gram = right @ right.transpose(-1, -2)  # [right, d_model, d_model]
    squared = torch.einsum("iab,jab->ij", left_gram, right_gram).clamp_min(0)
    return squared.sqrt() / (left.norm(dim=(-2, -1))[:, None] * right.norm(dim=(-2, -1))[None, :])


# %% [markdown]
# Is 0.1 a large score? Two random matrices in 128 dimensions already share some directions by chance, so we need a
# baseline: the same score for random matrices of the same shapes and rank, i.e. random `W_A = A1 @ A2` with `A1`
# of shape `[d_model, d_head]` and `A2` of shape `[d_head, d_model]`, and the same for `W_B`. The score does not
# change when a matrix is scaled, so standard normal entries will do.
#
# **Exercise.** Estimate the baseline from seeded random matrices. Draw exactly as the docstring says (same order,
# same shapes, same generator), so that your number is reproducible and gradable.

# %% tags=["exercise"]
def random_composition_baseline(d_model: int, d_head: int, n_samples: int, generator: torch.Generator) -> float:
    """Mean composition score of n_samples pairs of random rank-d_head matrices of shape [d_model, d_model].

    Draws, in this order and each with `torch.randn(..., generator=generator)`: A1 [n_samples, d_model, d_head],
    A2 [n_samples, d_head, d_model], B1 [n_samples, d_model, d_head], B2 [n_samples, d_head, d_model]; pair i is
    (the product of A1's and A2's i-th matrices, the product of B1's and B2's i-th matrices), scored in that order.
    Returns the mean of the n_samples composition scores, as a Python float.
    """
    a1 = torch.randn(n_samples, d_model, d_head, generator=generator)
    a2 = torch.randn(n_samples, d_head, d_model, generator=generator)
    b1 = torch.randn(n_samples, d_model, d_head, generator=generator)
    b2 = torch.randn(n_samples, d_head, d_model, generator=generator)
    left, right = a1 @ a2, b1 @ b2
    paired = torch.einsum("nab,nbc->nac", left, right).norm(dim=(-2, -1))
    return (paired / (left.norm(dim=(-2, -1)) * right.norm(dim=(-2, -1)))).mean().item()


# %%
if MAIN:
    with torch.no_grad():
        ov_writers = model.W_V[0] @ model.W_O[0]  # [head, d_model, d_model]
        qk_readers = model.W_Q[1] @ model.W_K[1].transpose(-1, -2)
        ov_readers = model.W_V[1] @ model.W_O[1]
        composition = torch.stack([
            composition_scores(ov_writers, qk_readers),
            composition_scores(ov_writers, qk_readers.transpose(-1, -2)),
            composition_scores(ov_writers, ov_readers),
        ])  # [kind (Q, K, V), layer-0 head, layer-1 head]
    baseline = random_composition_baseline(cfg.d_model, cfg.d_head, 200, torch.Generator().manual_seed(0))
    for kind, scores in zip("QKV", composition):
        print(f"{kind}-composition (rows L0H0..L0H3, columns L1H0..L1H3):")
        print(scores)
    print(f"random baseline: {baseline:.4f}")
    plotting.show(
        plotting.imshow(
            composition,
            facet_labels=["Q-composition", "K-composition", "V-composition"],
            x_labels=[f"L1H{head}" for head in range(cfg.n_heads)],
            y_labels=[f"L0H{head}" for head in range(cfg.n_heads)],
            diverging=False,
            zrange=(0.0, float(composition.max())),
            title=f"Composition scores of layer-0 heads into layer-1 heads (random baseline {baseline:.3f})",
        )
    )

# %% [markdown]
# The K-composition score of L0H0 into L1H0 is about four times the random baseline, and every other K-composition
# score is below the baseline (not "near" it: L0H0 into L1H1, L1H2 and L1H3 scores about a third of it, less than
# two random heads would). The Q-composition scores of L0H1 and L0H3 into L1H1-L1H3 stand out as well: those are the
# layer-1 heads that attend to the previous token in stories (Day 1), a different circuit that today's induction
# story does not need. No V-composition score reaches twice the baseline: nothing in layer 1 moves what a layer-0
# head wrote.
#
# ## 9. The mechanism as a prediction
#
# If we have understood the induction circuit, we can predict L1H0's attention pattern without running the model.
# The pieces:
#
# 1. L0H0 attends by position (section 4): at key position `k` it mixes the embeddings of earlier tokens with the
#    weights of its positional pattern `P[k, :]`, mostly the token at `k - 1`;
# 2. it moves that mixture through its OV circuit into the stream, where L1H0's key weights read it (section 7);
# 3. L1H0's query reads the current token's embedding.
#
# So the predicted score of query `q` on key `k` is
# `(W_E[t_q] @ W_Q^{1.0}) . (sum_j P[k, j] W_E[t_j] @ W_V^{0.0} @ W_O^{0.0} @ W_K^{1.0}) / sqrt(d_head)`,
# followed by the causal mask and a softmax. Every other term (biases, positions in layer 1, the other heads) is
# left out: if the prediction still matches, those terms are not what makes induction work.
#
# **Exercise.** Predict the attention pattern of head (layer, head) on a batch of token sequences from the
# positional pattern of head (prev_layer, prev_head) and the two heads' weights. Use your `positional_attention`.

# %% tags=["exercise"]
def predicted_induction_pattern(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], prev_layer: int, prev_head: int, layer: int, head: int
) -> Float[Tensor, "batch query key"]:
    """Attention pattern of (layer, head) predicted from weights alone, by the K-composition story of section 9.

    The query input at each position is its token's embedding; the key input is what (prev_layer, prev_head) writes
    when it attends by its positional pattern (positional_attention over the sequence's positions) to the tokens'
    embeddings; queries, keys, scaling, causal mask and softmax as in the model, with no biases. Returns a float
    tensor of shape [batch, seq, seq] of probabilities (rows sum to 1, zero above the diagonal). Raises ValueError
    as positional_attention does (positions not shortformer, a sequence longer than n_ctx).
    """
    seq = tokens.shape[1]
    moves = positional_attention(model, prev_layer, prev_head, seq)  # [key pos, source pos]
    embeddings = model.W_E[tokens]  # [batch, seq, d_model]
    moved = torch.einsum("kj,bjm->bkm", moves, embeddings)
    keys = moved @ model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head] @ model.W_K[layer, head]
    queries = embeddings @ model.W_Q[layer, head]
    scores = queries @ keys.transpose(-1, -2) / model.cfg.d_head**0.5
    future = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


# %% [markdown]
# To compare a prediction with reality, ask the simplest question: does each query look hardest at the same key?
#
# **Exercise.** Compute the fraction of query positions (from `first_query` on, over the whole batch) whose
# arg-max key is the same in both patterns.

# %% tags=["exercise"]
def argmax_agreement(
    predicted: Float[Tensor, "batch query key"], actual: Float[Tensor, "batch query key"], first_query: int
) -> float:
    """Fraction of (sequence, query) pairs with query >= first_query whose arg-max key agrees in both patterns.

    Of tied keys, the first counts as the arg-max. Returns a Python float in [0, 1].
    Raises ValueError when the two patterns differ in shape or no query is at or after first_query.
    """
    if predicted.shape != actual.shape:
        raise ValueError(f"patterns of different shapes: {tuple(predicted.shape)} and {tuple(actual.shape)}")
    if not 0 <= first_query < predicted.shape[1]:
        raise ValueError(f"first_query must lie in 0..{predicted.shape[1] - 1}, got {first_query}")
    predicted_keys = predicted[:, first_query:].argmax(dim=-1)
    actual_keys = actual[:, first_query:].argmax(dim=-1)
    return (predicted_keys == actual_keys).float().mean().item()


# %%
if MAIN:
    PREDICTION_HALF_LEN = 40
    test_tokens = repeated_tokens(16, PREDICTION_HALF_LEN, cfg.d_vocab, torch.Generator().manual_seed(3),
                                  first_token=FIRST_WORD_TOKEN)
    with torch.no_grad():
        predicted = predicted_induction_pattern(model, test_tokens, 0, 0, 1, 0)
        _, test_cache = model.run_with_cache(test_tokens, names_filter="blocks.1.attn.hook_pattern")
    actual = test_cache["pattern", 1][:, 0]
    second_copy = PREDICTION_HALF_LEN + 1
    agreement = argmax_agreement(predicted, actual, second_copy)
    stripe_keys = torch.arange(second_copy, 2 * PREDICTION_HALF_LEN + 1) - PREDICTION_HALF_LEN + 1
    predicted_on_stripe = (predicted[:, second_copy:].argmax(-1) == stripe_keys).float().mean().item()
    actual_on_stripe = (actual[:, second_copy:].argmax(-1) == stripe_keys).float().mean().item()
    print(f"second copy: predicted and real arg-max key agree for {agreement:.3f} of queries")
    print(f"arg-max on the induction stripe: predicted {predicted_on_stripe:.3f}, real {actual_on_stripe:.3f}")
    first_copy = slice(1, PREDICTION_HALF_LEN + 1)
    print(f"first copy: arg-max at BOS for {(predicted[:, first_copy].argmax(-1) == 0).float().mean().item():.3f} "
          f"of queries predicted, {(actual[:, first_copy].argmax(-1) == 0).float().mean().item():.3f} real")
    plotting.show(
        plotting.imshow(
            torch.stack([predicted[0], actual[0]]),
            facet_labels=["predicted from weights", "real L1H0 pattern"],
            diverging=False,
            zrange=(0.0, 1.0),
            title="L1H0 on a repeated random sequence: prediction vs. reality",
            xaxis="key position",
            yaxis="query position",
        )
    )

# %% [markdown]
# In the first copy the prediction is speckled and the real pattern is not. There the current token has no earlier
# copy, so the token-matching circuit picks whichever earlier key happens to score highest by chance; the real L1H0
# rests on BOS instead (its arg-max is BOS for almost every first-copy query, the prediction's for a few percent). The
# terms the prediction leaves out (biases, positions in layer 1) are what send L1H0 to BOS when nothing matches: they
# do not make induction work, but they decide where the head rests. That is why agreement is measured on the second
# copy only.
#
# ## 10. What the weights say
#
# The cell below gathers the day's measurements on the shipped `induction-2l`.

# %%
if MAIN:
    other_top1 = torch.cat([copying_top1.flatten()[:4], copying_top1.flatten()[5:]])
    other_k = composition[1].flatten()[1:]
    print(f"full OV copying, L1H0: top-1 {copying_top1[1, 0].item():.3f}, top-5 {copying_top5[1, 0].item():.3f}, "
          f"eigenvalue score {eigenvalue_scores[1, 0].item():.3f}; other heads top-1 at most "
          f"{other_top1.max().item():.3f}, eigenvalue score at most "
          f"{torch.cat([eigenvalue_scores.flatten()[:4], eigenvalue_scores.flatten()[5:]]).max().item():.3f}")
    print(f"previous-position score from positions alone: L0H0 {positional_scores[0].item():.3f}, "
          f"other layer-0 heads at most {positional_scores[1:].max().item():.3f}")
    print(f"strongest score term on the induction stripe: {term_labels[best[0]]} (query) x "
          f"{term_labels[best[1]]} (key)")
    print(f"K-composition circuit L0H0 -> L1H0: top-1 {k_top1[0].item():.3f}")
    print(f"K-composition score L0H0 -> L1H0 {composition[1, 0, 0].item():.3f}; other K pairs "
          f"{other_k.min().item():.3f}-{other_k.max().item():.3f}; random baseline {baseline:.3f}")
    q_standing_out = composition[0][[1, 3], 1:]
    print(f"Q-composition L0H1, L0H3 -> L1H1..L1H3: {q_standing_out.min().item():.3f}-{q_standing_out.max().item():.3f}; "
          f"largest V-composition score {composition[2].max().item():.3f}")
    print(f"prediction from weights: arg-max agreement with L1H0 on the second copy {agreement:.3f}")

# %% [markdown]
# The induction circuit of `induction-2l`, read from its weights (each statement is recomputed on the shipped
# weights by `tests/days/test_day2_claims.py`, with this notebook's seeds):
#
# - **L1H0 copies.** Its full OV circuit maps over 98% of tokens to themselves (top-1) and every token into its own
#   top 5; no other head copies more than 30% of tokens. Its eigenvalue copying score is above 0.99, the highest
#   of all heads; two layer-0 heads score above 0.8 without copying (top-1 below 0.2).
# - **L0H0 looks back one position, by position alone, in the first half of the context.** Its positional QK
#   circuit puts over 0.99 of the attention on the previous position in every 16-query chunk up to position 47 and
#   about 0.9 in 48-63, but under 0.5 in every chunk after: the model's limit, in its position embeddings. Every other
#   layer-0 head puts less than 0.1 there on average, and a large share on position 0.
# - **L1H0's queries and keys split exactly into sources** (embedding, layer-0 heads, biases, positions), and of all
#   (query source, key source) pairs, *embedding x L0H0* draws the induction stripe.
#   Its contrast between stripe and elsewhere is more than twenty times that of any other pair. Unmasked, the same
#   term draws a second stripe above the diagonal (keys in the future whose previous token is the query's token).
# - **The K-composition circuit L0H0 -> L1H0 matches tokens.** For over 98% of query tokens, the highest-scoring
#   previous token at the key is the query token itself; through any other layer-0 head, for under 10%.
# - **L0H0 -> L1H0 is the one K-composition that stands out.** Its score is more than three times the random
#   baseline; every other K-composition score is below the baseline, and those of L0H0 into the other layer-1 heads
#   below half of it. The Q-composition of L0H1 and L0H3
#   into L1H1-L1H3 (more than 2.5 times the baseline) is not part of induction: those layer-1 heads attend to the
#   previous token in stories (Day 1). Every other Q-composition score is below the baseline, and every
#   V-composition score below twice it.
# - **The weights predict the behaviour.** Composing L0H0's positional pattern with the token-matching QK circuit,
#   with everything else left out, predicts the key L1H0 attends to most for about nine queries in ten (over 85%)
#   in the second copy of repeated random tokens. In the first copy, where nothing matches, the prediction is
#   noise and the real head rests on BOS: the left-out terms decide where a head rests.
#
# Tomorrow we test this story with causal scrubbing: if it is the whole story, we can replace everything it says
# does not matter with resampled inputs and lose almost nothing.
