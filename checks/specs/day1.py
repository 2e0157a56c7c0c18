"""Checks of day 1 (TransformerLens basics and induction heads, on `induction-2l`).

Inputs are built from the zoo models and the course's seeded data generators with plain TransformerLens calls:
held-out-style stories of the model's synthetic language, and BOS + random tokens repeated twice. Every exercise is
graded on at least two cases that differ in every parameter and model dimension the exercise reads; the functions
that work on any model also meet `toy-gpt` (4 layers, LayerNorm, MLPs, n_ctx 32 != d_model 128) or `array-2l1h`
(one head per layer, d_head 128, BOS id 50, no special token below the numbers).
"""

from __future__ import annotations

from typing import Any

import torch

from checks.spec import Check, GradingEnv, Mistake, cache_complaint, watch_caching
from checks.specs.common import (ARRAY_2L1H, INDUCTION_2L, TOY_GPT, InputBuilder, array_indexing_batch, repeated_batch,
                                 story_batch)
from curriculum.data import toy_vocab
from curriculum.data.array_indexing import VOCAB as ARRAY_VOCAB
from curriculum.data.induction_corpus import decode, stories
from curriculum.data.toy_corpus import toy_gpt_batch

DAY = 1
MODULE = "day1_induction_heads"
MODEL = INDUCTION_2L
OTHER = TOY_GPT  # a second model for the functions that work on any model


def _tokens(env: GradingEnv, model: str, batch: int, length: int, seed: int) -> torch.Tensor:
    """Text the model was trained on: stories for induction-2l, rows of the training mixture for toy-gpt."""
    if model == MODEL:
        return story_batch(env, batch, length, seed)
    return toy_gpt_batch(batch, env.generator(seed))[:, :length].to(env.device)


def _model_inputs(model: str) -> InputBuilder:
    return lambda env: {"model": env.model(model)}


def _tokenize_inputs(model: str, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        if model == MODEL:
            text = decode(stories(1, env.generator(seed))[0, 1 : 1 + length])  # words only: to_tokens adds BOS
        elif model == ARRAY_2L1H:
            row = array_indexing_batch(1, env.generator(seed))[0, 1 : 1 + length]
            text = " ".join(ARRAY_VOCAB[t] for t in row.tolist())
        else:
            row = toy_gpt_batch(1, env.generator(seed))[0].tolist()
            text = toy_vocab.decode([t for t in row if t != toy_vocab.BOS_TOKEN][:length])
        return {"model": env.model(model), "text": text}

    return inputs


def _accuracy_inputs(model: str, batch: int, length: int, seed: int) -> InputBuilder:
    return lambda env: {"model": env.model(model), "tokens": _tokens(env, model, batch, length, seed)}


def _qk_inputs(model: str, layer: int, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        if model == ARRAY_2L1H:
            tokens = array_indexing_batch(1, env.generator(seed))[:, :length].to(env.device)
        else:
            tokens = _tokens(env, model, 1, length, seed)
        wanted = (f"blocks.{layer}.attn.hook_q", f"blocks.{layer}.attn.hook_k")
        with torch.no_grad():
            _, cache = env.model(model).run_with_cache(tokens, names_filter=lambda name: name in wanted)
        return {"q": cache["q", layer][0].clone(), "k": cache["k", layer][0].clone()}

    return inputs


def _detector_inputs(model: str, batch: int, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        with torch.no_grad():
            _, cache = env.model(model).run_with_cache(_tokens(env, model, batch, length, seed),
                                                       names_filter=lambda name: name.endswith("hook_pattern"))
        return {"cache": cache, "n_layers": env.model(model).cfg.n_layers}

    return inputs


def _generation_inputs(model: str, half_len: int, batch: int, seed: int, first_token: int) -> InputBuilder:
    return lambda env: {"model": env.model(model), "half_len": half_len, "batch": batch,
                        "generator": env.generator(seed), "first_token": first_token}


def _loss_inputs(model: str, batch: int, half_len: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = repeated_batch(env, model, batch, half_len, seed)
        with torch.no_grad():
            logits = env.model(model)(tokens)
        return {"logits": logits, "tokens": tokens}

    return inputs


def _induction_inputs(model: str, batch: int, half_len: int, seed: int) -> InputBuilder:
    return lambda env: {"model": watch_caching(env.model(model)),
                        "tokens": repeated_batch(env, model, batch, half_len, seed), "half_len": half_len}


def _no_cache_built(output: Any, inputs: dict[str, Any]) -> str | None:
    return cache_complaint(inputs["model"], "induction_scores", "This exercise is about hooks: use "
                           "model.run_with_hooks with a hook on hook_pattern that records only the scores, with "
                           "return_type=None.")


def _attribution_inputs(model: str, half_len: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = repeated_batch(env, model, 1, half_len, seed)
        with torch.no_grad():
            _, cache = env.model(model).run_with_cache(tokens)
        return {"model": env.model(model), "cache": cache, "tokens": tokens[0]}

    return inputs


def _ablation_inputs(model: str, batch: int, half_len: int, seed: int) -> InputBuilder:
    return lambda env: {"model": env.model(model), "tokens": repeated_batch(env, model, batch, half_len, seed)}


# ---- the mistakes the grader names: what each returns is solutions/oracles/day1.py's, stored with the references -----
_BY_D_HEAD = ("This is the pattern with the scores divided by d_head itself: the scale is the square root of d_head "
              "(dot products of d_head-dimensional vectors grow like sqrt(d_head)).")
_UNSCALED = "This is the pattern with no scale at all: the scores are divided by the square root of d_head."


_STRIPE_AT_THE_TOKEN = ("This is the attention to the earlier occurrence of the query's own token, one key before the "
                        "induction stripe: an induction head looks at the token that came just after it.")
_STRIPE_TOO_LATE = ("This is the attention to the key two positions after the earlier occurrence of the query's token,"
                    " one key after the induction stripe: the token that came just after it is one position earlier.")


_CURRENT_TOKEN_TARGET = ("This is each component's contribution to the logit of the token at the same position: the "
                         "logits at position i predict the token at position i + 1, so score them on that one.")


CHECKS = [
    Check(
        name="describe_model",
        cases={
            "induction-2l (n_ctx == d_model == 128)": _model_inputs(MODEL),
            "toy-gpt (4 layers, n_ctx 32, d_mlp 512, LayerNorm)": _model_inputs(OTHER),
            "array-2l1h (1 head, d_head 128, d_vocab 52)": _model_inputs(ARRAY_2L1H),
        },
        exact_types=True,
        hints=(
            "Which object of a HookedTransformer holds its sizes, and which weight matrices and biases make up one "
            "attention layer?",
            "Read every dimension from the model's config; count the parameters of the query, key, value and output "
            "weights and their four biases, in every layer.",
            "Read the dimensions from model.cfg (n_heads is per layer); attention_params counts W_Q, W_K, W_V, W_O "
            "and the biases b_Q, b_K, b_V, b_O of every layer."),
    ),
    Check(
        name="tokenize",
        cases={
            "induction-2l, 29 words": _tokenize_inputs(MODEL, 29, 101),
            "toy-gpt, 11 words": _tokenize_inputs(OTHER, 11, 201),
            "array-2l1h (BOS id 50), 9 tokens": _tokenize_inputs(ARRAY_2L1H, 9, 301),
        },
        hints=(
            "What does the model put in front of every text before its first word, and does your count include it?",
            "Use the model's own tokenizing helpers for both the ids and the strings, so both start with the same "
            "beginning-of-sequence token.",
            "Use model.to_tokens and model.to_str_tokens, which both prepend the BOS token."),
    ),
    Check(
        name="next_token_accuracy",
        cases={
            "induction-2l, batch 6 x 64 tokens": _accuracy_inputs(MODEL, 6, 64, 102),
            "toy-gpt, batch 3 x 17 tokens": _accuracy_inputs(OTHER, 3, 17, 202),
        },
        exact_types=True,
        atol=1e-9,
        rtol=1e-6,
        hints=(
            "Which token does the prediction made at a position try to guess: the token at that position, or the next"
            " one?",
            "Take the most likely token at every position but the last, and compare it with the tokens one position "
            "later; average the matches.",
            "The logits at position i predict the token at position i + 1: compare logits[:, :-1].argmax(-1) with "
            "tokens[:, 1:]."),
    ),
    Check(
        name="attention_pattern_from_qk",
        cases={
            "induction-2l layer 1, 40 positions, 4 heads of d_head 32": _qk_inputs(MODEL, 1, 40, 103),
            "toy-gpt layer 2, 13 positions": _qk_inputs(OTHER, 2, 13, 203),
            "array-2l1h layer 0, 11 positions, 1 head of d_head 128": _qk_inputs(ARRAY_2L1H, 0, 11, 303),
        },
        atol=1e-5,
        rtol=1e-4,
        hints=(
            "Which three things turn raw query-key dot products into attention probabilities, and in which order?",
            "Scale the scores by the square root of the head dimension, forbid every key after its query, then "
            "normalise over the keys.",
            "Divide the scores by sqrt(d_head), set scores of keys after the query to -inf, then softmax over the key"
            " dimension (the last one)."),
        mistakes=(Mistake(_BY_D_HEAD, "pattern_scaled_by_d_head"),
                  Mistake(_UNSCALED, "pattern_unscaled")),
    ),
    Check(
        name="current_token_scores",
        cases={
            "induction-2l (2 layers), batch 4 x 48 tokens": _detector_inputs(MODEL, 4, 48, 104),
            "toy-gpt (4 layers), batch 3 x 13 tokens": _detector_inputs(OTHER, 3, 13, 204),
        },
        atol=1e-6,
        rtol=1e-4,
        hints=(
            "Where in an attention pattern does a query attend to its own position, and which position has no choice "
            "at all?",
            "Read the entries where query and key positions are equal, leave out the first query (it can only attend "
            "to itself), and average the rest over batch and positions.",
            "Take the main diagonal of cache['pattern', layer] (query == key), skip query position 0, and average "
            "over the batch and the remaining positions."),
    ),
    Check(
        name="previous_token_scores",
        cases={
            "induction-2l (2 layers), batch 4 x 48 tokens": _detector_inputs(MODEL, 4, 48, 104),
            "toy-gpt (4 layers), batch 3 x 13 tokens": _detector_inputs(OTHER, 3, 13, 204),
        },
        atol=1e-6,
        rtol=1e-4,
        hints=(
            "Where in an attention pattern does each query look one position back?",
            "Read the diagonal just below the main one (key one before the query) and average it over the batch and "
            "those query positions.",
            "The previous-token entries (query q, key q - 1) lie on the diagonal below the main one: "
            "diagonal(offset=-1, dim1=-2, dim2=-1); average over the batch and those positions."),
    ),
    Check(
        name="first_token_scores",
        cases={
            "induction-2l (2 layers), batch 4 x 48 tokens": _detector_inputs(MODEL, 4, 48, 104),
            "toy-gpt (4 layers), batch 3 x 13 tokens": _detector_inputs(OTHER, 3, 13, 204),
        },
        atol=1e-6,
        rtol=1e-4,
        hints=(
            "How much does each query attend to the very first position, and which query has no other choice?",
            "Read the attention to key position 0 for every query except the first one, and average over batch and "
            "queries.",
            "Average the attention to key position 0 (pattern[:, :, 1:, 0]) over the batch and query positions "
            "1..seq-1."),
    ),
    Check(
        name="generate_repeated_tokens",
        cases={
            "induction-2l (BOS 0), half_len 12, batch 5, first_token 1": _generation_inputs(MODEL, 12, 5, 105, 1),
            "array-2l1h (BOS 50), half_len 4, batch 3, first_token 0": _generation_inputs(ARRAY_2L1H, 4, 3, 205, 0),
            "toy-gpt (d_vocab 296), half_len 9, batch 2, first_token 100": _generation_inputs(OTHER, 9, 2, 305, 100),
        },
        exact_types=True,
        hints=(
            "What makes a sequence one that only an induction head can predict, and where does the sequence start?",
            "Draw one random half from the generator in a single draw, then build beginning token, that half, and the"
            " same half again, side by side along the sequence.",
            "Call torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator) once, then "
            "concatenate a BOS column (model.tokenizer.bos_token_id), that half, and the same half again along dim 1."),
    ),
    Check(
        name="per_token_loss",
        cases={
            "induction-2l, batch 4, half_len 20": _loss_inputs(MODEL, 4, 20, 106),
            "toy-gpt (d_vocab 296), batch 2, half_len 7": _loss_inputs(OTHER, 2, 7, 206),
        },
        atol=1e-5,
        rtol=1e-4,
        hints=(
            "Which logits are scored against which token, and what is the loss of one prediction in terms of "
            "probabilities?",
            "Turn the logits of every position but the last into log-probabilities, pick the log-probability of the "
            "token that follows each position, and negate it.",
            "Take log_softmax of logits[:, :-1] over the vocabulary, pick the entries of tokens[:, 1:] with gather, "
            "and negate."),
    ),
    Check(
        name="induction_scores",
        cases={
            "induction-2l, batch 8, half_len 20": _induction_inputs(MODEL, 8, 20, 107),
            "induction-2l, batch 3, half_len 7": _induction_inputs(MODEL, 3, 7, 207),
            "toy-gpt (4 layers), batch 2, half_len 11": _induction_inputs(OTHER, 2, 11, 307),
        },
        validate=_no_cache_built,
        atol=1e-6,
        rtol=1e-4,
        hints=(
            "Write out a repeated sequence of three tokens by hand, with BOS first: for each token of the second "
            "copy, which earlier position holds the token that came after its first occurrence?",
            "Those (query, key) pairs lie on one diagonal of the pattern, a fixed distance below the main one; record "
            "that diagonal in a hook on every layer's pattern, keep only its entries whose query is in the second "
            "copy, and average them over those queries and the batch.",
            "Query position q of the second copy (q = half_len+1 .. 2*half_len) should attend to key q - half_len + "
            "1, the token after the first occurrence: the diagonal with offset -(half_len - 1), last half_len "
            "entries."),
        mistakes=(Mistake(_STRIPE_AT_THE_TOKEN, "stripe_at_the_token"),
                  Mistake(_STRIPE_TOO_LATE, "stripe_too_late")),
    ),
    Check(
        name="direct_logit_attribution",
        cases={
            "induction-2l (no LayerNorm), half_len 20": _attribution_inputs(MODEL, 20, 108),
            "toy-gpt (LayerNorm, 16 heads), half_len 8": _attribution_inputs(OTHER, 8, 208),
        },
        atol=1e-4,
        rtol=1e-4,
        hints=(
            "How does a single component's output reach the logit of the next token without any later layer?",
            "Project the embedding and every head's output (its z through its output weights) on the unembedding "
            "direction of the token that comes next, position by position.",
            "Position i is scored on the logit of tokens[i + 1] (model.W_U[:, tokens[1:]]); each head's output is z @"
            " W_O[layer, head]; components are [embed, L0H0, L0H1, ..., L1H0, ...]."),
        mistakes=(Mistake(_CURRENT_TOKEN_TARGET, "attribution_to_the_current_token"),),
    ),
    Check(
        name="zero_ablation_loss_change",
        cases={
            "induction-2l, batch 4, half_len 20": _ablation_inputs(MODEL, 4, 20, 109),
            "toy-gpt (4 layers), batch 3, half_len 6": _ablation_inputs(OTHER, 3, 6, 209),
        },
        atol=1e-4,
        rtol=1e-4,
        hints=(
            "If a head stopped writing anything, how would you measure how much the model misses it?",
            "Run the model with one head's z set to zero by a hook, one head at a time, and subtract the clean loss "
            "from each ablated loss.",
            "Zero only z[:, :, head] of one layer per forward pass, and return ablated loss minus clean loss "
            "(positive when the head helps)."),
    ),
    Check(
        name="mean_ablation_loss_change",
        cases={
            "induction-2l, batch 4, half_len 20": _ablation_inputs(MODEL, 4, 20, 110),
            "toy-gpt (4 layers), batch 3, half_len 6": _ablation_inputs(OTHER, 3, 6, 210),
        },
        atol=1e-4,
        rtol=1e-4,
        hints=(
            "What is a head's typical output at a given position, and how does replacing its output by that differ "
            "from zeroing it?",
            "Replace one head's z by its average over the batch, kept separate per position, and report ablated minus"
            " clean loss for every head.",
            "Replace z[:, :, head] by its mean over the batch (dim 0, keepdim) at each position, not over positions; "
            "return ablated loss minus clean loss."),
    ),
]
