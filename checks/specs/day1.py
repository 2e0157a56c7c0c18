"""Checks of day 1 (TransformerLens basics and induction heads, on `induction-2l`).

Inputs are built from the zoo model and the course's seeded data generators with plain TransformerLens calls:
held-out-style stories of the model's synthetic language, and BOS + random tokens repeated twice.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformer_lens import HookedTransformer

from checks.spec import Check, GradingEnv
from curriculum.data.induction_corpus import FIRST_WORD_TOKEN, decode, stories
from curriculum.data.repeated_tokens import repeated_tokens

DAY = 1
MODULE = "day1_induction_heads"

MODEL = "induction-2l"
HALF_LEN = 20


def _stories(env: GradingEnv, batch: int, length: int, seed: int) -> torch.Tensor:
    return stories(batch, env.generator(seed))[:, :length].to(env.device)


def _repeated(env: GradingEnv, batch: int, seed: int) -> torch.Tensor:
    d_vocab = env.model(MODEL).cfg.d_vocab
    return repeated_tokens(batch, HALF_LEN, d_vocab, env.generator(seed), first_token=FIRST_WORD_TOKEN).to(env.device)


def _model_inputs(env: GradingEnv) -> dict[str, Any]:
    return {"model": env.model(MODEL)}


def _tokenize_inputs(env: GradingEnv) -> dict[str, Any]:
    story = stories(1, env.generator(101))[0, 1:30]  # words only: to_tokens adds BOS itself
    return {"model": env.model(MODEL), "text": decode(story)}


def _accuracy_inputs(env: GradingEnv) -> dict[str, Any]:
    return {"model": env.model(MODEL), "tokens": _stories(env, 8, 128, 102)}


def _qk_inputs(env: GradingEnv) -> dict[str, Any]:
    tokens = _stories(env, 1, 40, 103)
    with torch.no_grad():
        _, cache = env.model(MODEL).run_with_cache(tokens, names_filter=lambda name: name.endswith(("hook_q", "hook_k")))
    return {"q": cache["q", 1][0].clone(), "k": cache["k", 1][0].clone()}


def _detector_inputs(env: GradingEnv) -> dict[str, Any]:
    model = env.model(MODEL)
    with torch.no_grad():
        _, cache = model.run_with_cache(_stories(env, 4, 64, 104))
    return {"cache": cache, "n_layers": model.cfg.n_layers}


def _generation_inputs(env: GradingEnv) -> dict[str, Any]:
    return {
        "model": env.model(MODEL),
        "half_len": 12,
        "batch": 5,
        "generator": env.generator(105),
        "first_token": FIRST_WORD_TOKEN,
    }


def _loss_inputs(env: GradingEnv) -> dict[str, Any]:
    tokens = _repeated(env, 4, 106)
    with torch.no_grad():
        logits = env.model(MODEL)(tokens)
    return {"logits": logits, "tokens": tokens}


class _CacheWatchingModel(HookedTransformer):
    """A view of a zoo model that records every attempt to build an activation cache.

    Made by `_watch_caching`: a shallow copy whose class is switched to this one, so it shares the original's
    modules, weights and hook points (the grader's audit of hooks and weights still sees everything) and behaves
    exactly like it, except that the caching entry points note that they were called.
    """

    caching_calls: list[str]

    def run_with_cache(self, *args: Any, **kwargs: Any) -> Any:
        self.caching_calls.append("run_with_cache")
        return super().run_with_cache(*args, **kwargs)

    def get_caching_hooks(self, *args: Any, **kwargs: Any) -> Any:
        self.caching_calls.append("get_caching_hooks")
        return super().get_caching_hooks(*args, **kwargs)

    def add_caching_hooks(self, *args: Any, **kwargs: Any) -> Any:
        self.caching_calls.append("add_caching_hooks")
        return super().add_caching_hooks(*args, **kwargs)


def _watch_caching(model: HookedTransformer) -> _CacheWatchingModel:
    watched = copy.copy(model)
    watched.__class__ = _CacheWatchingModel
    watched.caching_calls = []
    return watched


def _induction_inputs(env: GradingEnv) -> dict[str, Any]:
    return {"model": _watch_caching(env.model(MODEL)), "tokens": _repeated(env, 8, 107), "half_len": HALF_LEN}


def _no_cache_built(output: Any, inputs: dict[str, Any]) -> str | None:
    calls = inputs["model"].caching_calls
    if calls:
        return (f"induction_scores gives the right scores, but it built an activation cache (it called "
                f"model.{calls[0]}). This exercise is about hooks: use model.run_with_hooks with a hook on "
                "hook_pattern that records the scores, with return_type=None.")
    return None


def _attribution_inputs(env: GradingEnv) -> dict[str, Any]:
    model = env.model(MODEL)
    tokens = _repeated(env, 1, 108)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    return {"model": model, "cache": cache, "tokens": tokens[0]}


def _ablation_inputs(seed: int):
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"model": env.model(MODEL), "tokens": _repeated(env, 4, seed)}

    return inputs


CHECKS = [
    Check(
        name="describe_model",
        cases={"graded input": _model_inputs},
        hint="Read the dimensions from model.cfg (n_heads is per layer); attention_params counts W_Q, W_K, W_V, W_O "
        "and the biases b_Q, b_K, b_V, b_O of every layer.",
    ),
    Check(
        name="tokenize",
        cases={"graded input": _tokenize_inputs},
        hint="Use model.to_tokens and model.to_str_tokens, which both prepend the BOS token.",
    ),
    Check(
        name="next_token_accuracy",
        cases={"graded input": _accuracy_inputs},
        hint="The logits at position i predict the token at position i + 1: compare logits[:, :-1].argmax(-1) "
        "with tokens[:, 1:].",
    ),
    Check(
        name="attention_pattern_from_qk",
        cases={"graded input": _qk_inputs},
        hint="Divide the scores by sqrt(d_head), set scores of keys after the query to -inf, then softmax over the "
        "key dimension (the last one).",
    ),
    Check(
        name="current_token_scores",
        cases={"graded input": _detector_inputs},
        hint="Take the main diagonal of cache['pattern', layer] (query == key), skip query position 0, and average "
        "over the batch and the remaining positions.",
    ),
    Check(
        name="previous_token_scores",
        cases={"graded input": _detector_inputs},
        hint="The previous-token entries (query q, key q - 1) lie on the diagonal below the main one: "
        "diagonal(offset=-1, dim1=-2, dim2=-1); average over the batch and those positions.",
    ),
    Check(
        name="first_token_scores",
        cases={"graded input": _detector_inputs},
        hint="Average the attention to key position 0 (pattern[:, :, 1:, 0]) over the batch and query positions "
        "1..seq-1.",
    ),
    Check(
        name="generate_repeated_tokens",
        cases={"graded input": _generation_inputs},
        hint="Call torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator) once, then "
        "concatenate a BOS column, that half, and the same half again along dim 1.",
    ),
    Check(
        name="per_token_loss",
        cases={"graded input": _loss_inputs},
        hint="Take log_softmax of logits[:, :-1] over the vocabulary, pick the entries of tokens[:, 1:] with gather, "
        "and negate.",
    ),
    Check(
        name="induction_scores",
        cases={"graded input": _induction_inputs},
        validate=_no_cache_built,
        hint="Query position q of the second copy (q = half_len+1 .. 2*half_len) should attend to key q - half_len + "
        "1, the token after the first occurrence: the diagonal with offset -(half_len - 1), last half_len entries.",
    ),
    Check(
        name="direct_logit_attribution",
        cases={"graded input": _attribution_inputs},
        hint="Position i is scored on the logit of tokens[i + 1] (model.W_U[:, tokens[1:]]); each head's output is "
        "z @ W_O[layer, head]; components are [embed, L0H0, L0H1, ..., L1H0, ...].",
    ),
    Check(
        name="zero_ablation_loss_change",
        cases={"graded input": _ablation_inputs(109)},
        hint="Zero only z[:, :, head] of one layer per forward pass, and return ablated loss minus clean loss "
        "(positive when the head helps).",
    ),
    Check(
        name="mean_ablation_loss_change",
        cases={"graded input": _ablation_inputs(110)},
        hint="Replace z[:, :, head] by its mean over the batch (dim 0, keepdim) at each position, not over positions; "
        "return ablated loss minus clean loss.",
    ),
]
