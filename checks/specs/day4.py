"""Checks of day 4 (interpreting the array-indexing model `array-2l1h`).

Inputs come from the zoo model and the course's canonical data generator, seeded by `env.generator`; corrupted
sequences for patching are built here with plain torch.
"""

from __future__ import annotations

from typing import Any

import torch

from checks.spec import Check, GradingEnv
from curriculum.data.array_indexing import IDX_POSITION, LIST_LEN, MAX_NUM, array_indexing_batch

DAY = 4
MODULE = "day4_array_indexing"

MODEL = "array-2l1h"


def _tokens(env: GradingEnv, batch: int, seed: int) -> torch.Tensor:
    return array_indexing_batch(batch, env.generator(seed)).to(env.device)


def _sample_inputs(env: GradingEnv) -> dict[str, Any]:
    return {"batch_size": 64, "generator": env.generator(400)}


def _loss_inputs(env: GradingEnv) -> dict[str, Any]:
    tokens = _tokens(env, 200, 401)
    with torch.no_grad():
        logits = env.model(MODEL)(tokens)
    return {"logits": logits, "tokens": tokens}


def _accuracy_inputs(env: GradingEnv) -> dict[str, Any]:
    # Noise on the logits makes the accuracies fractional, so that mixing up positions or axes shows.
    tokens = _tokens(env, 300, 402)
    with torch.no_grad():
        logits = env.model(MODEL)(tokens)
    noise = torch.randn(logits.shape, generator=env.generator(403)).to(env.device)
    return {"logits": logits + 3.0 * logits.std() * noise, "tokens": tokens}


def _model_and_tokens(seed: int, batch: int = 200):
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"model": env.model(MODEL), "tokens": _tokens(env, batch, seed)}

    return inputs


def _ov_inputs(env: GradingEnv) -> dict[str, Any]:
    return {"model": env.model(MODEL), "layer": 1}


def _copying_inputs(env: GradingEnv) -> dict[str, Any]:
    # A non-symmetric matrix where about half the rows peak on the diagonal: row- and column-wise argmax disagree.
    generator = env.generator(408)
    matrix = torch.randn(MAX_NUM, MAX_NUM, generator=generator) + 1.5 * torch.eye(MAX_NUM)
    return {"ov_circuit": matrix.to(env.device)}


def _patching_inputs(env: GradingEnv) -> dict[str, Any]:
    clean = _tokens(env, 100, 409)
    shift = torch.randint(1, LIST_LEN, (clean.shape[0],), generator=env.generator(410)).to(env.device)
    corrupted = clean.clone()
    corrupted[:, IDX_POSITION] = (clean[:, IDX_POSITION] + shift) % LIST_LEN
    return {"model": env.model(MODEL), "clean_tokens": clean, "corrupted_tokens": corrupted}


def _prediction_inputs(env: GradingEnv) -> dict[str, Any]:
    return {"model": env.model(MODEL), "tokens": _tokens(env, 200, 411), "layer": 1}


CHECKS = [
    Check(
        name="sample_array_indexing_batch",
        cases={"graded input": _sample_inputs},
        hint="Draw the lists, then idx, then elt, each with the generator, and set b[idx] = elt per example.",
    ),
    Check(
        name="answer_loss",
        cases={"graded input": _loss_inputs},
        atol=1e-5,
        rtol=1e-3,
        hint="The answer b_j is predicted one position before it: logits at positions 7, 8, 9 against tokens 8, 9, 10.",
    ),
    Check(
        name="position_labels",
        cases={"graded input": lambda env: {"list_len": LIST_LEN}},
        hint="Eleven labels: BOS, a0..a2, NL, idx, elt, NL, b0..b2, numbered from 0.",
    ),
    Check(
        name="answer_accuracy",
        cases={"graded input": _accuracy_inputs},
        hint="Compare the argmax at positions 7, 8, 9 with the tokens at 8, 9, 10, and average over the batch only.",
    ),
    Check(
        name="attention_by_idx_match",
        cases={"graded input": _model_and_tokens(404)},
        hint="The query row is the answer position (7 + j), not the answer token's position; match 1 means idx == j.",
    ),
    Check(
        name="attention_to_answer_source",
        cases={"graded input": _model_and_tokens(405)},
        hint="Read row 7 + j of each pattern, at key 1 + j (a_j) or key 6 (elt) depending on each example's idx.",
    ),
    Check(
        name="attention_ablation_effects",
        cases={"graded input": _model_and_tokens(406)},
        atol=1e-4,
        rtol=1e-3,
        hint="Hook blocks.{L}.hook_attn_out; the mean is over the batch only, one mean per position.",
    ),
    Check(
        name="answer_logit_attribution",
        cases={"graded input": _model_and_tokens(407, batch=200)},
        atol=1e-3,
        rtol=1e-3,
        hint="Under shortformer the positions add nothing to the residual stream; project on W_U[:, correct answer].",
    ),
    Check(
        name="full_ov_circuit",
        cases={"graded input": _ov_inputs},
        atol=1e-3,
        rtol=1e-3,
        hint="Rows are input number tokens: W_E[:d_vocab_out] @ W_V[layer, head] @ W_O[layer, head] @ W_U.",
    ),
    Check(
        name="copying_score",
        cases={"graded input": _copying_inputs},
        hint="Take the argmax of each row (over output tokens) and count how often it is the row's own token.",
    ),
    Check(
        name="residual_patching_effect",
        cases={"graded input": _patching_inputs},
        atol=2e-3,
        rtol=1e-2,
        hint="Patch one (point, position) at a time; answers come from a, idx, elt; normalise by LD_corrupt - LD_clean.",
        timeout_s=120.0,
    ),
    Check(
        name="predict_from_attention",
        cases={"graded input": _prediction_inputs},
        hint="Argmax over key positions of the pattern row of each answer position (7, 8, 9), then read that token.",
    ),
]
