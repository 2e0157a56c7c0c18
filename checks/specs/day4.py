"""Checks of day 4 (interpreting the array-indexing model `array-2l1h`).

Inputs come from the zoo model and the course's canonical data generator, seeded by `env.generator`; corrupted
sequences for patching are built here with plain torch. Every exercise is graded on at least two cases that differ
in what it reads (batch sizes, layers, list lengths, matrix sizes, seeds), and where its docstring promises a
`ValueError`, on a case that must raise it.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from checks.spec import Check, GradingEnv, Raises
from curriculum.data.array_indexing import ELT_POSITION, IDX_POSITION, LIST_LEN, MAX_NUM, array_indexing_batch

DAY = 4

MODEL = "array-2l1h"
Builder = Callable[[GradingEnv], dict[str, Any]]


def _tokens(env: GradingEnv, batch: int, seed: int) -> torch.Tensor:
    return array_indexing_batch(batch, env.generator(seed)).to(env.device)


def _sample_inputs(batch_size: int, seed: int) -> Builder:
    return lambda env: {"batch_size": batch_size, "generator": env.generator(seed)}


def _logits(env: GradingEnv, tokens: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """The model's logits, plus Gaussian noise of `noise` times their std (0: the model's own logits). Noise makes
    losses large and accuracies fractional, so that a wrong position or axis changes them a lot."""
    with torch.no_grad():
        logits = env.model(MODEL)(tokens)
    if noise:
        logits = logits + noise * logits.std() * torch.randn(logits.shape, generator=env.generator(seed)).to(env.device)
    return logits


def _logits_inputs(batch: int, seed: int, noise: float) -> Builder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = _tokens(env, batch, seed)
        return {"logits": _logits(env, tokens, noise, seed + 1), "tokens": tokens}

    return inputs


def _model_and_tokens(batch: int, seed: int) -> Builder:
    return lambda env: {"model": env.model(MODEL), "tokens": _tokens(env, batch, seed)}


def _one_idx_only(env: GradingEnv) -> dict[str, Any]:
    tokens = _tokens(env, 6, 414)
    tokens[:, IDX_POSITION] = 0  # no example has idx == 1 or idx == 2
    return {"model": env.model(MODEL), "tokens": tokens}


def _ov_inputs(layer: int, head: int | None = None) -> Builder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": env.model(MODEL), "layer": layer}
        if head is not None:
            arguments["head"] = head
        return arguments

    return inputs


def _copying_inputs(size: int, seed: int, columns: int | None = None) -> Builder:
    # A non-symmetric matrix where about half the rows peak on the diagonal: row- and column-wise argmax disagree.
    def inputs(env: GradingEnv) -> dict[str, Any]:
        matrix = torch.randn(size, columns or size, generator=env.generator(seed))
        matrix[:, :size] += 1.5 * torch.eye(size)[:, : columns or size]
        return {"ov_circuit": matrix.to(env.device)}

    return inputs


def _patching_inputs(batch: int, seed: int, corrupt: str = "idx", corrupted_batch: int | None = None) -> Builder:
    """Clean sequences and twins with another idx (or elt); `corrupted_batch` makes the shapes differ on purpose."""
    def inputs(env: GradingEnv) -> dict[str, Any]:
        clean = _tokens(env, batch, seed)
        position, modulus = (IDX_POSITION, LIST_LEN) if corrupt == "idx" else (ELT_POSITION, MAX_NUM)
        shift = torch.randint(1, modulus, (batch,), generator=env.generator(seed + 1)).to(env.device)
        corrupted = clean.clone()
        corrupted[:, position] = (clean[:, position] + shift) % modulus
        if corrupted_batch is not None:
            corrupted = corrupted[:corrupted_batch]
        return {"model": env.model(MODEL), "clean_tokens": clean, "corrupted_tokens": corrupted}

    return inputs


def _prediction_inputs(batch: int, seed: int, layer: int) -> Builder:
    return lambda env: {"model": env.model(MODEL), "tokens": _tokens(env, batch, seed), "layer": layer}


CHECKS = [
    Check(
        name="sample_array_indexing_batch",
        cases={
            "batch 64": _sample_inputs(64, 400),
            "batch 5, another seed": _sample_inputs(5, 1400),
            "batch_size 0 (raises ValueError)": Raises(ValueError, _sample_inputs(0, 2400)),
        },
        exact_types=True,
        hint="Draw the lists, then idx, then elt, each with the generator, and set b[idx] = elt per example.",
    ),
    Check(
        name="answer_loss",
        cases={
            "the model's logits, batch 200 (loss about 2e-4)": _logits_inputs(200, 401, noise=0.0),
            "noisy logits, batch 31 (loss about 3)": _logits_inputs(31, 1401, noise=2.0),
        },
        exact_types=True,
        atol=1e-9,
        rtol=1e-4,
        hint="The answer b_j is predicted one position before it: logits at positions 7, 8, 9 against tokens 8, 9, 10.",
    ),
    Check(
        name="position_labels",
        cases={
            "list_len 3": lambda env: {"list_len": LIST_LEN},
            "list_len 5": lambda env: {"list_len": 5},
            "list_len 1": lambda env: {"list_len": 1},
            "list_len 0 (raises ValueError)": Raises(ValueError, lambda env: {"list_len": 0}),
        },
        hint="2 * list_len + 5 labels: BOS, a0.., NL, idx, elt, NL, b0.., numbered from 0.",
    ),
    Check(
        name="answer_accuracy",
        cases={
            "noisy logits, batch 300": _logits_inputs(300, 402, noise=3.0),
            "noisy logits, batch 40": _logits_inputs(40, 1402, noise=2.0),
        },
        atol=1e-9,
        rtol=1e-6,
        hint="Compare the argmax at positions 7, 8, 9 with the tokens at 8, 9, 10, and average over the batch only.",
    ),
    Check(
        name="attention_by_idx_match",
        cases={
            "batch 200": _model_and_tokens(200, 404),
            "batch 30, another seed": _model_and_tokens(30, 1404),
            "every idx 0 (raises ValueError)": Raises(ValueError, _one_idx_only),
        },
        atol=1e-6,
        rtol=1e-4,
        hint="The query row is the answer position (7 + j), not the answer token's position; match 1 means idx == j.",
    ),
    Check(
        name="attention_to_answer_source",
        cases={
            "batch 200": _model_and_tokens(200, 405),
            "batch 17, another seed": _model_and_tokens(17, 1405),
        },
        atol=1e-6,
        rtol=1e-4,
        hint="Read row 7 + j of each pattern, at key 1 + j (a_j) or key 6 (elt) depending on each example's idx.",
    ),
    Check(
        name="attention_ablation_effects",
        cases={
            "batch 200": _model_and_tokens(200, 406),
            "batch 25, another seed": _model_and_tokens(25, 1406),
        },
        exact_types=True,
        atol=1e-6,
        rtol=1e-4,
        hint="Hook blocks.{L}.hook_attn_out; the mean is over the batch only, one mean per position.",
    ),
    Check(
        name="answer_logit_attribution",
        cases={
            "batch 200": _model_and_tokens(200, 407),
            "batch 9, another seed": _model_and_tokens(9, 1407),
        },
        atol=1e-4,
        rtol=1e-4,
        hint="Under shortformer the positions add nothing to the residual stream; project on W_U[:, correct answer].",
    ),
    Check(
        name="full_ov_circuit",
        cases={
            "layer 1": _ov_inputs(1),
            "layer 0, head 0 given": _ov_inputs(0, head=0),
            "layer 2 (raises ValueError)": Raises(ValueError, _ov_inputs(2)),
            "layer -1 (raises ValueError)": Raises(ValueError, _ov_inputs(-1)),
        },
        atol=1e-4,
        rtol=1e-4,
        hint="Rows are input number tokens: W_E[:d_vocab_out] @ W_V[layer, head] @ W_O[layer, head] @ W_U.",
    ),
    Check(
        name="copying_score",
        cases={
            "50 x 50": _copying_inputs(50, 408),
            "20 x 20": _copying_inputs(20, 1408),
            "7 x 9, not square (raises ValueError)": Raises(ValueError, _copying_inputs(7, 2408, columns=9)),
        },
        exact_types=True,
        atol=1e-9,
        rtol=1e-6,
        hint="Take the argmax of each row (over output tokens) and count how often it is the row's own token.",
    ),
    Check(
        name="residual_patching_effect",
        cases={
            "idx corrupted, batch 60": _patching_inputs(60, 409),
            "elt corrupted, batch 23": _patching_inputs(23, 1409, corrupt="elt"),
            "shapes differ (raises ValueError)": Raises(ValueError, _patching_inputs(8, 2409, corrupted_batch=7)),
        },
        atol=1e-4,
        rtol=1e-3,
        hint="Patch one (point, position) at a time; answers come from a, idx, elt; normalise by LD_corrupt - LD_clean.",
        timeout_s=120.0,
    ),
    Check(
        name="predict_from_attention",
        cases={
            "layer 1, batch 200": _prediction_inputs(200, 411, 1),
            "layer 0, batch 13": _prediction_inputs(13, 1411, 0),
            "layer 2 (raises ValueError)": Raises(ValueError, _prediction_inputs(4, 2411, 2)),
        },
        exact_types=True,
        hint="Argmax over key positions of the pattern row of each answer position (7, 8, 9), then read that token.",
    ),
]
