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
# # Day 1: TransformerLens basics and induction heads
#
# Mechanistic interpretability asks how a trained network computes what it computes, in terms of its weights and
# activations. Today we take the smallest model of the course zoo, `induction-2l`, and find out which of its
# attention heads let it continue a sequence it has seen earlier in its context. By the end of the day you will
# have:
#
# 1. loaded a model, read its configuration, turned text into tokens and measured how often it predicts the next
#    token correctly;
# 2. run the model while caching every activation, and recomputed an attention pattern from its queries and keys;
# 3. written detectors for three simple kinds of attention head (current token, previous token, first token);
# 4. built the standard probe for in-context copying, a random sequence repeated twice (Olsson et al. 2022, "In-context
#    Learning and Induction Heads"), and measured per-token loss on it;
# 5. scored every head as an *induction head* with hooks, without storing a cache;
# 6. split the model's correct-token logit into the contributions of each head (direct logit attribution);
# 7. ablated every head in turn (with zeros and with means) and measured how much the loss suffers.
#
# Every function in a cell marked as an exercise is graded: run `check(function_name)` in the notebook, or
# `pytest --day 1` in a terminal. Everything else you can read, run and change freely.

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
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint

from curriculum.library import plotting

MAIN = __name__ == "__main__"
if MAIN:
    from checks import check  # noqa: F401  (check(fn) grades one exercise and prints the verdict)

# %% [markdown]
# ## 1. A model and its configuration
#
# `induction-2l` is a two-layer transformer with attention layers only: no MLPs. The **residual stream** is the
# vector of `d_model` numbers that each position carries from layer to layer: it starts as the token's embedding,
# every attention head reads from it and *adds* its output to it, and the unembedding turns its final value into
# logits (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits", the framework this course follows).
# The model uses *shortformer* positional embeddings, which means that position information is added to the queries
# and keys of each attention layer but never written into the residual stream. So the residual stream holds only
# the token embedding plus whatever the heads write into it, and every path from input to output is easy to follow.
#
# The model was trained on a synthetic language in which copying from earlier in the context pays off, so we
# expect it to have learned induction. Load it and look at its modules; `model.cfg` holds its configuration, and
# every shape you will meet today is derived from a few of its numbers.

# %%
if MAIN:
    from curriculum.models import load_model

    model = load_model("induction-2l")
    cfg = model.cfg
    print(f"attention only: {cfg.attn_only}, positional embeddings: {cfg.positional_embedding_type}, "
          f"normalisation: {cfg.normalization_type}")
    print(model)

# %% [markdown]
# The most useful fields: `n_layers` and `n_heads` (heads per layer), `d_model` (width of the residual stream),
# `d_head` (width of one head's queries, keys and values), `d_vocab` (tokens the model knows) and `n_ctx` (longest
# sequence it accepts). The weights are attributes of the model too: `model.W_Q` has shape
# `[n_layers, n_heads, d_model, d_head]`, `model.W_O` has shape `[n_layers, n_heads, d_head, d_model]`.
#
# The exercises' signatures write shapes the same way, with *jaxtyping* annotations: `Float[Tensor, "batch seq
# d_vocab"]` is a float tensor whose three dimensions are named batch, seq and d_vocab; `Int[Tensor, "1 seq"]` an
# integer tensor with a first dimension of size 1; `"seq-1"` or `"1+2*half_len"` a size computed from other names;
# `"*batch"` any number of leading dimensions. The annotations document; they are not enforced at run time.
#
# **Exercise.** Summarise the model's shape in a dictionary, and count the parameters of its attention layers (the
# query, key, value and output weights *and* their biases, in all layers). `model.named_parameters()` lists every
# parameter with its name.

# %% tags=["exercise"]
def describe_model(model: HookedTransformer) -> dict[str, int]:
    """The model's key dimensions and its number of attention parameters.

    Returns a dict with keys "n_layers", "n_heads" (per layer), "d_model", "d_head", "d_vocab", "n_ctx" (all from
    the config) and "attention_params": the number of scalar parameters in W_Q, W_K, W_V, W_O, b_Q, b_K, b_V and
    b_O, summed over all layers.
    """
    cfg = model.cfg
    attention_params = sum(param.numel() for name, param in model.named_parameters() if ".attn." in name)
    return {
        "n_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "d_model": cfg.d_model,
        "d_head": cfg.d_head,
        "d_vocab": cfg.d_vocab,
        "n_ctx": cfg.n_ctx,
        "attention_params": attention_params,
    }


# %%
if MAIN:
    summary = describe_model(model)
    total_params = sum(param.numel() for param in model.parameters())
    print(summary)
    print(f"attention holds {summary['attention_params']} of the model's {total_params} parameters")

# %% [markdown]
# ## 2. Tokens and string tokens
#
# A model sees integers, not text. Its tokenizer maps text to token ids; `model.to_tokens(text)` does this and, by
# default, *prepends a beginning-of-sequence token* (BOS), returning a `[batch, position]` tensor.
# `model.to_str_tokens(text)` gives the list of strings those ids stand for, BOS included, which is what you want as
# axis labels in a plot. The zoo models use a word-level vocabulary: one token per word, so the string tokens are
# just the words of the text after BOS.
#
# Why BOS? The model was trained with it, and heads use it as a resting place when they have nothing better to
# attend to (we will see such *first-token heads* below). Leaving it out changes the model's behaviour.
#
# **Exercise.** Return both views of a text.

# %% tags=["exercise"]
def tokenize(model: HookedTransformer, text: str) -> tuple[Int[Tensor, "1 seq"], list[str]]:
    """The token ids of `text` as a `[1, seq]` tensor, and the matching list of string tokens.

    Both start with the model's BOS token, as in training.
    """
    return model.to_tokens(text), model.to_str_tokens(text)


# %% [markdown]
# ## 3. How often is the model right?
#
# The model's output is a tensor of logits with shape `[batch, position, d_vocab]`. The logits at position `i` are
# the model's guess for the token at position `i + 1`: the model has seen tokens `0..i` and must predict what comes
# next. So predictions and targets are offset by one, and the last position has no target.
#
# **Exercise.** Compute the fraction of next-token predictions (the arg-max token) that are correct, over all
# positions that have a target and over the whole batch.

# %% tags=["exercise"]
def next_token_accuracy(model: HookedTransformer, tokens: Int[Tensor, "batch seq"]) -> float:
    """Fraction (a Python float) of positions whose arg-max prediction equals the next token, averaged over batch
    and positions.

    The logits at position i predict the token at position i + 1; the last position has no target.
    """
    logits = model(tokens)
    predictions = logits[:, :-1].argmax(dim=-1)
    return (predictions == tokens[:, 1:]).float().mean().item()


# %% [markdown]
# Let us try it on text in the model's own language: a held-out story (never seen in training), then its first 60
# words written twice in a row. If the model can copy from its context, the second copy should be much easier.

# %%
if MAIN:
    from curriculum.data.induction_corpus import FIRST_WORD_TOKEN, decode, held_out_stories

    story_words = decode(held_out_stories(1)[0, 1:61])  # skip BOS: to_tokens adds it
    tokens, str_tokens = tokenize(model, story_words)
    print(" ".join(str_tokens[:16]), "...")
    print(f"accuracy on 60 words of a held-out story:     {next_token_accuracy(model, tokens):.3f}")
    twice_tokens, _ = tokenize(model, story_words + " " + story_words)
    print(f"accuracy on the same 60 words written twice:  {next_token_accuracy(model, twice_tokens):.3f}")
    print(f"accuracy on 64 full held-out stories:         {next_token_accuracy(model, held_out_stories(64)):.3f}")

# %% [markdown]
# ## 4. Caching activations, and attention by hand
#
# `logits, cache = model.run_with_cache(tokens)` runs the model and stores every intermediate activation in an
# `ActivationCache`, keyed by hook names such as `blocks.0.attn.hook_pattern`. The cache accepts a short form:
# `cache["pattern", 0]` is layer 0's attention pattern, `cache["q", 1]` layer 1's queries. Print `cache.keys()` to
# see everything that is there.
#
# An attention head decides where to look with queries and keys. For each pair of positions it computes a score
# `q[query] . k[key] / sqrt(d_head)`, forbids looking at the future (the score of a key after the query is set to
# minus infinity: the *causal mask*), and turns each query's row of scores into probabilities with a softmax over
# the keys. That row of probabilities is the head's attention pattern.
#
# **Exercise.** Recompute one layer's attention patterns from its cached queries and keys (one sequence, no batch
# dimension). Your result should match `cache["pattern", layer][0]`.

# %% tags=["exercise"]
def attention_pattern_from_qk(
    q: Float[Tensor, "seq head d_head"], k: Float[Tensor, "seq head d_head"]
) -> Float[Tensor, "head query key"]:
    """Causal attention probabilities of every head, from its queries and keys, as the model computes them.

    Scaled dot-product attention: each query-key dot product is divided by the square root of d_head; a query never
    attends to a key after it (probability exactly 0); each query's probabilities over the keys sum to 1.
    Returns a float tensor of shape [head, query, key].
    """
    seq, _, d_head = q.shape
    scores = torch.einsum("qhd,khd->hqk", q, k) / d_head**0.5
    future = torch.triu(torch.ones(seq, seq, dtype=torch.bool, device=q.device), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(dim=-1)


# %%
if MAIN:
    logits, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        by_hand = attention_pattern_from_qk(cache["q", layer][0], cache["k", layer][0])
        difference = (by_hand - cache["pattern", layer][0]).abs().max().item()
        print(f"layer {layer}: largest difference from hook_pattern = {difference:.2e}")

# %% [markdown]
# Now look at the patterns. In each heatmap, row `i` is the query position and shows where that position looks;
# the text is 20 words of a story written twice, so you can see what the heads do on the second copy. Use the
# dropdown to switch heads.


# %%
def head_labels(model: HookedTransformer) -> list[str]:
    """Names "L{layer}H{head}" of all heads, layer by layer: the order used by every per-head figure today."""
    return [f"L{layer}H{head}" for layer in range(model.cfg.n_layers) for head in range(model.cfg.n_heads)]


def heads_above(scores: Float[Tensor, "layer head"], threshold: float, labels: list[str]) -> list[str]:
    """Labels of the heads whose score exceeds `threshold`, highest score first (labels in `head_labels` order)."""
    flat = scores.flatten()
    order = flat.argsort(descending=True).tolist()
    return [labels[i] for i in order if flat[i] > threshold]


# %%
if MAIN:
    short_words = decode(held_out_stories(1)[0, 1:21])
    short_tokens, short_str_tokens = tokenize(model, short_words + " " + short_words)
    _, short_cache = model.run_with_cache(short_tokens)
    n_heads = model.cfg.n_heads
    for layer in range(model.cfg.n_layers):
        plotting.show(
            plotting.attention_patterns(
                short_cache["pattern", layer][0],
                short_str_tokens,
                head_labels=head_labels(model)[layer * n_heads : (layer + 1) * n_heads],
                title=f"Layer {layer} attention on a sequence written twice",
            )
        )

# %% [markdown]
# ## 5. Detecting simple kinds of head
#
# Looking at heatmaps is how one forms hypotheses; a number per head is how one tests them on many sequences.
# Three kinds of head are easy to spot:
#
# - a **current-token head** attends mostly to the query's own position (the diagonal of the pattern);
# - a **previous-token head** attends mostly to the position just before (the diagonal one step below);
# - a **first-token head** attends mostly to position 0, the BOS token; heads often do this when the feature they
#   look for is absent.
#
# For each, average the relevant attention probability over query positions and over the batch. Skip query
# position 0: it can only attend to itself, so it says nothing about the head. `Tensor.diagonal(offset, dim1,
# dim2)` extracts diagonals; check which sign of `offset` gives the diagonal *below* the main one.
#
# **Exercise.** Write the three detectors. Each returns a `[n_layers, n_heads]` tensor of scores in `[0, 1]`.

# %% tags=["exercise"]
def current_token_scores(cache: ActivationCache, n_layers: int) -> Float[Tensor, "layer head"]:
    """Mean attention from each query position to itself, per head.

    Averaged over query positions 1..seq-1 (position 0 can only attend to itself) and over the batch.
    """
    scores = []
    for layer in range(n_layers):
        pattern = cache["pattern", layer]  # [batch, head, query, key]
        self_attention = pattern.diagonal(offset=0, dim1=-2, dim2=-1)[..., 1:]
        scores.append(self_attention.mean(dim=(0, 2)))
    return torch.stack(scores)


def previous_token_scores(cache: ActivationCache, n_layers: int) -> Float[Tensor, "layer head"]:
    """Mean attention from each query position to the position just before it, per head.

    Averaged over query positions 1..seq-1 and over the batch.
    """
    scores = []
    for layer in range(n_layers):
        pattern = cache["pattern", layer]
        to_previous = pattern.diagonal(offset=-1, dim1=-2, dim2=-1)  # entries (q, q - 1) for q = 1..seq-1
        scores.append(to_previous.mean(dim=(0, 2)))
    return torch.stack(scores)


def first_token_scores(cache: ActivationCache, n_layers: int) -> Float[Tensor, "layer head"]:
    """Mean attention from each query position to position 0 (the BOS token), per head.

    Averaged over query positions 1..seq-1 and over the batch.
    """
    scores = []
    for layer in range(n_layers):
        pattern = cache["pattern", layer]
        scores.append(pattern[:, :, 1:, 0].mean(dim=(0, 2)))
    return torch.stack(scores)


# %% [markdown]
# Score every head on 16 held-out stories of the model's language. In the next section you write a generator of
# a second kind of input, random sequences repeated twice, and score the heads on it too: a head's behaviour can
# depend on its input, so we will compare the two.


# %%
def detector_scores(cache: ActivationCache, n_layers: int) -> Float[Tensor, "kind layer head"]:
    """Current-token, previous-token and first-token scores of every head, stacked in that order."""
    return torch.stack(
        [
            current_token_scores(cache, n_layers),
            previous_token_scores(cache, n_layers),
            first_token_scores(cache, n_layers),
        ]
    )


# %%
def show_detector_scores(model: HookedTransformer, tokens: Int[Tensor, "batch seq"], input_name: str) -> Tensor:
    """Plot and print the three detector scores of every head on `tokens`; returns them as [kind, layer, head]."""
    _, input_cache = model.run_with_cache(tokens)
    scores = detector_scores(input_cache, model.cfg.n_layers)
    plotting.show(
        plotting.imshow(
            scores,
            facet_labels=["current token", "previous token", "first token"],
            x_labels=[f"H{h}" for h in range(model.cfg.n_heads)],
            y_labels=[f"L{layer}" for layer in range(model.cfg.n_layers)],
            diverging=False,
            zrange=(0.0, 1.0),
            title=f"Head detector scores on {input_name}",
        )
    )
    for kind, kind_scores in zip(["current-token", "previous-token", "first-token"], scores):
        shown = ", ".join(f"{label} {value:.2f}" for label, value in zip(head_labels(model), kind_scores.flatten()))
        print(f"{input_name}, {kind} scores: {shown}")
    return scores


# %%
if MAIN:
    n_layers = model.cfg.n_layers
    scores_by_input = {"held-out stories": show_detector_scores(model, held_out_stories(16), "held-out stories")}

# %% [markdown]
# No head of `induction-2l` is a current-token head. One head of layer 0, L0H0, attends to the previous token in
# stories; three heads of layer 1 do too. After the next exercise we score the heads on a second kind of input.

# %% [markdown]
# ## 6. Repeated random tokens
#
# A sequence of uniformly random tokens is unpredictable: no model can do better than chance on it. But write the
# same random sequence twice and the second copy becomes perfectly predictable *to a model that looks back at the
# first copy*. This is the cleanest probe for in-context copying: any improvement on the second half must come from
# the context, not from knowledge of the language.
#
# **Exercise.** Generate `batch` sequences, each a BOS token followed by `half_len` random tokens and then the same
# tokens again. Draw the tokens with exactly one call,
# `torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)`, so that your sequences are
# the same as everyone else's. `first_token` skips the special tokens at the start of the vocabulary.

# %% tags=["exercise"]
def generate_repeated_tokens(
    model: HookedTransformer, half_len: int, batch: int, generator: torch.Generator, first_token: int
) -> Int[Tensor, "batch 1+2*half_len"]:
    """`batch` sequences of BOS, then `half_len` random tokens, then the same tokens again.

    Reproducibility contract: the random tokens are one draw of
    `torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)`, row b being sequence b;
    BOS is the model's own BOS token id. Returns an int64 tensor of shape [batch, 1 + 2 * half_len].
    """
    half = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=half.dtype)
    return torch.cat([bos, half, half], dim=1)


# %% [markdown]
# Score the heads again, on 16 repeated random sequences from your generator, and compare with the stories.

# %%
if MAIN:
    DETECTOR_HALF_LEN = 30
    detector_repeats = generate_repeated_tokens(
        model, DETECTOR_HALF_LEN, 16, torch.Generator().manual_seed(1), first_token=FIRST_WORD_TOKEN
    )
    scores_by_input["repeated random tokens"] = show_detector_scores(model, detector_repeats, "repeated random tokens")

# %% [markdown]
# On random tokens L0H0 stays a previous-token head, but L1H1, L1H2 and L1H3 do not: they rest on BOS instead, as
# first-token heads. They are not the only heads above the first-token bar of 0.5 here: L0H2 (about 0.75) and L1H0
# (about 0.6) pass it too, and L0H1 sits right at it (0.48 to 0.51, depending on the random sequences). L1H0 rests on
# BOS in the first copy, where there is nothing yet to copy. A detector score describes a head *on some data*, and a
# threshold says little about a head close to it: always say which data, and give the score.
#
# The loss of a language model is the average, over positions, of minus the log-probability it gave to the token
# that actually came next. With natural logarithms its unit is the **nat**: a loss of `log(n)` nats is what a
# uniform guess among `n` tokens scores, and each nat less means the model put `e` (about 2.7) times more
# probability on the right token. Looking at the loss position by position shows *where* the model is confident.
#
# **Exercise.** Compute the per-token loss from the logits: at each position `i` (except the last), minus the
# log-probability that the logits at `i` give to the token at `i + 1`. Remember that log-probabilities come from a
# log-softmax over the vocabulary, not from the logits themselves.

# %% tags=["exercise"]
def per_token_loss(
    logits: Float[Tensor, "batch seq d_vocab"], tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "batch seq-1"]:
    """Cross-entropy (nats) of each next-token prediction: minus the natural log of the probability that the
    logits at position i give to the token at position i + 1, for every position i but the last.

    Returns a float tensor of shape [batch, seq - 1].
    """
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    next_tokens = tokens[:, 1:]
    return -log_probs.gather(dim=-1, index=next_tokens[..., None])[..., 0]


# %%
if MAIN:
    HALF_LEN = 30
    rep_tokens = generate_repeated_tokens(
        model, HALF_LEN, 16, torch.Generator().manual_seed(2), first_token=FIRST_WORD_TOKEN
    )
    rep_logits = model(rep_tokens)
    rep_loss = per_token_loss(rep_logits, rep_tokens)  # [batch, 2 * HALF_LEN]
    first_half_loss = rep_loss[:, :HALF_LEN].mean().item()
    second_half_loss = rep_loss[:, HALF_LEN + 1 :].mean().item()
    chance_loss = torch.log(torch.tensor(model.cfg.d_vocab - FIRST_WORD_TOKEN, dtype=torch.float)).item()
    print(f"loss predicting the first half:  {first_half_loss:.3f} (uniform guessing: {chance_loss:.3f})")
    print(f"loss predicting the second half: {second_half_loss:.3f}")
    plotting.show(
        plotting.line(
            rep_loss.mean(dim=0),
            title="Per-token loss on repeated random tokens (mean over 16 sequences)",
            xaxis="position of the prediction",
            yaxis="loss (nats)",
        )
    )

# %% [markdown]
# On the first copy the loss is no better than uniform guessing among the tokens the generator draws: the cell above
# computes it as `log(d_vocab - FIRST_WORD_TOKEN)`, the log of the 192 tokens other than BOS, 5.26 nats (the model
# does a little worse, in fact: it expects the word statistics of its stories, and random words break them). On the second copy it falls to a
# fraction of a nat, except at the first repeated token (the prediction made at position `half_len`, whose target
# is the start of the copy: nothing in the context says the sequence is about to repeat).
#
# ## 7. Induction heads, scored with hooks
#
# How does a model copy? Elhage et al. (2021) found the *induction circuit* in two-layer attention-only models, and
# Olsson et al. (2022, "In-context Learning and Induction Heads") found the same mechanism in large language models:
# at a token `A`, an **induction head** looks for an earlier occurrence of `A`, attends to the token that came *right
# after* it (call it `B`) and copies it, predicting `B` again. To find "the token after an earlier `A`", the
# induction head relies on an earlier **previous-token head** which, at every position, writes into the residual
# stream "the token before me was `A`". The induction head's query ("I am `A`") then matches the key of `B` ("my
# previous token was `A`"). One head reading what an earlier head wrote is called **composition**; here the earlier
# head changes the later head's *keys* (K-composition; Day 2 reads it off the weights). It needs two layers, which
# is why a one-layer attention-only model cannot do it.
#
# Before you write the score, work out on paper where the induction head should look on `BOS, t_1 .. t_n, t_1 ..
# t_n`: for a query in the second copy, which key position holds the token that followed the first occurrence of
# the query's token? All those (query, key) pairs draw one straight stripe in the attention pattern.
#
# Caches are convenient but store everything. A **hook** is a function that TransformerLens calls on one
# activation during the forward pass: `model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(name_filter,
# hook_fn)])` calls `hook_fn(activation, hook)` for each hook point whose name passes the filter; `hook.layer()`
# tells you the layer. A hook can record what it sees (return nothing) or replace the activation (return the new
# value). `return_type=None` skips computing the logits.
#
# **Exercise.** Score every head as an induction head, using a hook on the attention patterns rather than a cache:
# the mean attention from each query in the second copy to the position just after that token's first
# occurrence, averaged over the batch.

# %% tags=["exercise"]
def induction_scores(
    model: HookedTransformer, tokens: Int[Tensor, "batch 1+2*half_len"], half_len: int
) -> Float[Tensor, "layer head"]:
    """Each head's induction score: its mean attention from each token of the second copy to the position just
    after that token's first occurrence, averaged over every query of the second copy and over the batch.

    tokens: BOS, then half_len random tokens, then the same tokens again (as from generate_repeated_tokens).
    Returns a float tensor of shape [n_layers, n_heads]. Records the patterns with hooks during one forward pass
    (`model.run_with_hooks`); builds no activation cache.
    """
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=tokens.device)

    def record_induction_stripe(pattern: Float[Tensor, "batch head query key"], hook: HookPoint) -> None:
        stripe = pattern.diagonal(offset=-(half_len - 1), dim1=-2, dim2=-1)  # queries half_len-1 .. 2*half_len
        scores[hook.layer()] = stripe[..., -half_len:].mean(dim=(0, 2))

    model.run_with_hooks(
        tokens,
        return_type=None,
        fwd_hooks=[(lambda name: name.endswith("hook_pattern"), record_induction_stripe)],
    )
    return scores


# %%
if MAIN:
    induction = induction_scores(model, rep_tokens, HALF_LEN)
    previous = scores_by_input["repeated random tokens"][1]
    plotting.show(
        plotting.imshow(
            torch.stack([previous, induction]),
            facet_labels=["previous-token score (repeated tokens)", "induction score"],
            x_labels=[f"H{h}" for h in range(model.cfg.n_heads)],
            y_labels=[f"L{layer}" for layer in range(n_layers)],
            diverging=False,
            zrange=(0.0, 1.0),
            title="Previous-token and induction scores per head",
        )
    )

# %% [markdown]
# Every sequence so far was 61 tokens long, half the model's context of 128. A head can work in one part of the
# context and not in another (its positional embeddings differ at every position), and a mean over positions hides
# that. So look across the whole context: 127-token sequences (BOS + 63 tokens + the same 63), with L0H0's
# attention to the previous position at every query and the loss at every prediction of the second copy, in
# chunks of 16 positions.


# %%
def chunk_means(values: Float[Tensor, "position"], first_position: int, size: int = 16) -> dict[str, float]:
    """Means of `values` (one per position, from `first_position` on) over chunks of `size` positions aligned to
    multiples of `size`: {"16-31": mean, ...}."""
    positions = torch.arange(first_position, first_position + len(values))
    chunks = {}
    for start in range(first_position // size * size, int(positions[-1]) + 1, size):
        inside = (positions >= start) & (positions < start + size)
        chunks[f"{int(positions[inside][0])}-{int(positions[inside][-1])}"] = values[inside].mean().item()
    return chunks


# %%
if MAIN:
    LONG_HALF_LEN = (model.cfg.n_ctx - 1) // 2  # 63: BOS + 63 + 63 = 127 tokens
    long_tokens = generate_repeated_tokens(model, LONG_HALF_LEN, 16, torch.Generator().manual_seed(4), FIRST_WORD_TOKEN)
    long_logits, long_cache = model.run_with_cache(long_tokens, names_filter="blocks.0.attn.hook_pattern")
    to_previous = long_cache["pattern", 0][:, 0].diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=0)  # queries 1..126
    long_loss = per_token_loss(long_logits, long_tokens).mean(dim=0)  # entry i: predicting the token at i + 1
    second_copy_loss = long_loss[LONG_HALF_LEN + 1 :]  # predicting positions 65..126, from the copy's second token
    previous_by_chunk = chunk_means(to_previous, first_position=1)
    loss_by_chunk = chunk_means(second_copy_loss, first_position=LONG_HALF_LEN + 2)
    print("L0H0 attention to the previous position, by query chunk:",
          ", ".join(f"{span}: {value:.2f}" for span, value in previous_by_chunk.items()))
    print("second-copy loss (nats), by the predicted token's chunk:",
          ", ".join(f"{span}: {value:.2f}" for span, value in loss_by_chunk.items()))
    plotting.show(
        plotting.line(
            to_previous,
            x=list(range(1, 2 * LONG_HALF_LEN + 1)),
            title="L0H0's attention to the previous position across the context (mean over 16 sequences)",
            xaxis="query position",
            yaxis="attention to query - 1",
        )
    )

# %% [markdown]
# **L0H0 is a previous-token head in the first half of the context only.** Up to position 47 it puts more than 0.99
# of its attention on the previous position, about 0.9 in positions 48-63, and from position 64 on less than half
# (0.33-0.49 per chunk). The second-copy loss follows it with a lag: below 0.6 nats per token up to position 111, then
# 1.7 to 2 nats in the last chunk, whose queries look for keys 49-63 of the first copy, where L0H0 already weakens.
# The cause is in the training data: every first copy of a repeated passage lay in the first 64 positions, so
# induction never needed a previous-token head after them (the model card says more, including two retraining
# attempts that did not fix it). Everything below uses 61-token sequences, inside the part of the context where the
# circuit works; keep in mind that `induction-2l` copies reliably only there.
#
# ## 8. Direct logit attribution
#
# Because the model has no MLPs, its residual stream at the last layer is a plain sum: the token embedding plus
# what each head wrote (plus the output biases of the attention layers). The logits are that sum multiplied by the
# unembedding `W_U` (after the final normalisation, if the model has one). So the logit of any token splits into one
# term per component: that component's output dotted with the token's column of `W_U`. This is **direct logit
# attribution**: which component pushed up the logit of the correct next token, and by how much? It measures only
# *direct* effects: a layer-0 head that helps by changing what layer-1 heads do gets no credit here.
#
# A head's output is its `z` (the attention-weighted sum of values, `cache["z", layer]`, shape
# `[batch, pos, head, d_head]`) multiplied by its output matrix `W_O[layer, head]`. With shortformer positional
# embeddings, positions never enter the residual stream, so the "direct path" is the token embedding alone
# (`cache["embed"]`).
#
# **Exercise.** For one sequence, compute at every position that has a target the direct contribution of the
# embedding and of each head to the logit of the correct next token. If the model has a final normalisation,
# apply it to each component as the model applies it to the whole: subtract the component's mean over `d_model`
# (for LayerNorm) and divide by the cached scale `cache["ln_final.hook_scale"]`.

# %% tags=["exercise"]
def direct_logit_attribution(
    model: HookedTransformer, cache: ActivationCache, tokens: Int[Tensor, "seq"]
) -> Float[Tensor, "seq-1 component"]:
    """Direct contribution of each component to the logit of the correct next token, at positions 0..seq-2.

    cache: the model's activations on `tokens` run as a batch of one sequence.
    Components, in order: the token embedding, then every head layer by layer (L0H0, L0H1, ..., L1H0, ...). A model
    with a final LayerNorm divides each component by the scale the whole residual stream had (after centring it, for
    LayerNorm), as direct logit attribution usually does. Returns a float tensor of shape [seq - 1, 1 + n_layers *
    n_heads].
    """
    n_targets = tokens.shape[0] - 1
    correct_directions = model.W_U[:, tokens[1:]]  # [d_model, seq-1]
    components = [cache["embed"][0, :n_targets, None]]  # [seq-1, 1, d_model]
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer][0, :n_targets]  # [seq-1, head, d_head]
        components.append(torch.einsum("phd,hdm->phm", z, model.W_O[layer]))
    stack = torch.cat(components, dim=1)  # [seq-1, component, d_model]
    if model.cfg.normalization_type in ("LN", "LNPre"):
        stack = stack - stack.mean(dim=-1, keepdim=True)
    if model.cfg.normalization_type is not None:
        stack = stack / cache["ln_final.hook_scale"][0, :n_targets, None]
    return torch.einsum("pcm,mp->pc", stack, correct_directions)


# %% [markdown]
# Let us check the decomposition before trusting it: the attributions plus the terms we left out (the attention
# output biases and the unembedding bias) must add up to the correct-token logits themselves.

# %%
if MAIN:
    one_sequence = rep_tokens[0]
    dla_logits, dla_cache = model.run_with_cache(one_sequence[None])
    attribution = direct_logit_attribution(model, dla_cache, one_sequence)
    correct_logits = dla_logits[0, :-1].gather(-1, one_sequence[1:, None])[:, 0]
    print(f"attribution has shape {tuple(attribution.shape)}: positions x (embedding + {attribution.shape[1] - 1} heads)")
    if model.cfg.normalization_type is None:
        left_out = model.b_O.sum(dim=0) @ model.W_U[:, one_sequence[1:]] + model.b_U[one_sequence[1:]]
        gap = (attribution.sum(dim=-1) + left_out - correct_logits).abs().max().item()
        print(f"largest gap between the summed attributions and the true logits: {gap:.2e}")
    component_labels = ["embed", *head_labels(model)]
    mean_first_half = attribution[:HALF_LEN].mean(dim=0)
    mean_second_half = attribution[HALF_LEN + 1 :].mean(dim=0)
    plotting.show(
        plotting.line(
            torch.stack([mean_first_half, mean_second_half]),
            names=["first copy (unpredictable)", "second copy (predictable)"],
            x_labels=component_labels,
            title="Direct logit attribution to the correct next token, averaged over positions",
            xaxis="component",
            yaxis="contribution to the correct logit",
        )
    )

# %% [markdown]
# ## 9. Ablation: what breaks when a head is removed?
#
# Attribution shows direct effects; to measure a head's *total* effect, remove it and see how much worse the model
# gets. "Removing" a head means replacing its output with something uninformative. Two common choices:
#
# - **zero ablation**: set the head's `z` to zero, as if it wrote nothing;
# - **mean ablation**: replace the head's `z` at each position by its mean over the batch at that position. This
#   keeps whatever the head writes on every input (often a constant offset that later layers rely on) and removes
#   only what depends on the particular input, so it usually disturbs the model less than zeros do.
#
# Do it with a hook on `hook_z` that *returns* the modified activation (a hook that returns a tensor replaces the
# activation). Measure the loss with `model.run_with_hooks(tokens, return_type="loss", fwd_hooks=...)`, which
# averages the next-token loss over batch and positions, and report ablated loss minus clean loss: positive means
# the head was helping.
#
# **Exercise.** Write both ablations. Each returns a `[n_layers, n_heads]` tensor of loss increases, one forward
# pass per head.

# %% tags=["exercise"]
def zero_ablation_loss_change(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "layer head"]:
    """Loss with one head's z set to zero, minus the clean loss, for every head (mean next-token loss)."""
    clean_loss = model(tokens, return_type="loss")
    changes = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=tokens.device)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):

            def zero_head(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint) -> Tensor:
                z = z.clone()
                z[:, :, head] = 0.0
                return z

            ablated_loss = model.run_with_hooks(
                tokens, return_type="loss", fwd_hooks=[(f"blocks.{layer}.attn.hook_z", zero_head)]
            )
            changes[layer, head] = ablated_loss - clean_loss
    return changes


def mean_ablation_loss_change(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"]
) -> Float[Tensor, "layer head"]:
    """Loss with one head's z replaced by its batch mean (per position), minus the clean loss, for every head."""
    clean_loss = model(tokens, return_type="loss")
    changes = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=tokens.device)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):

            def mean_head(z: Float[Tensor, "batch pos head d_head"], hook: HookPoint) -> Tensor:
                z = z.clone()
                z[:, :, head] = z[:, :, head].mean(dim=0, keepdim=True)
                return z

            ablated_loss = model.run_with_hooks(
                tokens, return_type="loss", fwd_hooks=[(f"blocks.{layer}.attn.hook_z", mean_head)]
            )
            changes[layer, head] = ablated_loss - clean_loss
    return changes


# %%
if MAIN:
    zero_changes = zero_ablation_loss_change(model, rep_tokens)
    mean_changes = mean_ablation_loss_change(model, rep_tokens)
    plotting.show(
        plotting.imshow(
            torch.stack([zero_changes, mean_changes]),
            facet_labels=["zero ablation", "mean ablation"],
            x_labels=[f"H{h}" for h in range(model.cfg.n_heads)],
            y_labels=[f"L{layer}" for layer in range(n_layers)],
            title="Loss increase on repeated tokens when one head is ablated",
            value_name="loss increase",
        )
    )


# %% [markdown]
# ## 10. What we found
#
# The cell below gathers the measurements: which heads pass each detector, and how much each head matters.

# %%
if MAIN:
    labels = head_labels(model)
    on_stories, on_repeats = scores_by_input["held-out stories"], scores_by_input["repeated random tokens"]
    print("previous-token heads (score > 0.5), stories:        ", heads_above(on_stories[1], 0.5, labels))
    print("previous-token heads (score > 0.5), repeated tokens:", heads_above(on_repeats[1], 0.5, labels))
    print("first-token heads (score > 0.5), repeated tokens:   ", heads_above(on_repeats[2], 0.5, labels))
    print("induction heads (score > 0.5):                      ", heads_above(induction, 0.5, labels))
    second_copy_attribution = dict(zip(component_labels, mean_second_half.tolist()))
    print("direct contribution to the correct logit on the second copy:",
          ", ".join(f"{name} {value:+.2f}" for name, value in second_copy_attribution.items()))
    print("loss increase when mean-ablated, largest first:")
    for index in mean_changes.flatten().argsort(descending=True).tolist():
        print(f"  {labels[index]}: {mean_changes.flatten()[index]:+.3f} (zero ablation {zero_changes.flatten()[index]:+.3f})")

# %% [markdown]
# The story of `induction-2l` (every statement here is recomputed on the shipped weights by
# `tests/days/test_day1_claims.py`, with this notebook's seeds):
#
# - **L0H0 is the previous-token head, in the first half of the context.** It is the only head whose
#   previous-token score passes 0.5 on repeated random tokens, and it passes 0.5 on stories too. Across the whole
#   context of 127-token sequences its attention to the previous position is above 0.99 in every 16-position chunk
#   up to position 47, about 0.9 in 48-63, and below 0.5 in every chunk after (the model's limit, not a detail).
# - **L1H0 is the induction head.** It is the only head whose induction score passes 0.5; every other head scores
#   below 0.1.
# - **L1H1, L1H2 and L1H3 are previous-token heads only in stories.** On stories their previous-token scores pass
#   0.5; on random tokens they fall below 0.2 and the heads park on BOS (first-token scores above 0.5). On random
#   tokens L0H2 and L1H0 pass the first-token bar as well, and L0H1 sits within 0.05 of it.
# - **The model copies.** Loss on the first copy of a random sequence is within 15% of uniform guessing; on the
#   second copy of 30 tokens it is below 0.5 nats per token, on every seed the tests try. Text written twice is
#   predicted more accurately the second time. On 127-token sequences the second copy stays below 0.6 nats
#   per 16-position chunk up to position 111, and is above 1.5 in the last chunk.
# - **L1H0 writes the answer.** On the second copy, L1H0's direct contribution to the correct logit is several
#   logits, and every other component's is below 0.5 in size.
# - **Removing either head of the circuit breaks copying.** Mean-ablating L0H0 or L1H0 raises the loss on repeated
#   tokens by about two nats per token (more than 1.5 on every seed the tests try), zero ablation alike; ablating any
#   other head changes it by at most about a tenth of that (under 0.25 on every seed; 0.20 at worst, so "under 0.2"
#   would not hold).
#
# Notice what the two methods disagree on: direct logit attribution gives L0H0 no credit, yet ablating it hurts as
# much as ablating L1H0. Its effect is *indirect*: it writes "my previous token was A" into each position, which
# is what L1H0's keys look for. Tomorrow we open up the weights and show this composition directly, through the
# QK (query-key: where a head looks) and OV (output-value: what it moves) circuits of these two heads.
