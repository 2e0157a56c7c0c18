"""Checks of day 4 (interpreting the array-indexing model `array-2l1h`).

Inputs come from the zoo model and the course's canonical data generator, seeded by `env.generator`; corrupted
sequences for patching are built here with plain torch. `sample_array_indexing_batch` is judged by its contract for
random draws (validity, reproducibility, uniform draws over many seeds), never against one sequence of draws.
`predicted_read_positions` (the learner's own mechanism) is graded on how often it names the position layer 1 attends
to most (its reference is the model's behaviour, not the solution's output). Checks declare the mistakes they can name
(`Mistake`): reading the logits one position late, returning positions for tokens. Every exercise is graded on at
least two cases that differ in what it reads (batch sizes, layers, list lengths, matrix sizes, seeds), and where its
docstring promises a `ValueError`, on a case that must raise it.
"""

from __future__ import annotations

from typing import Any

import torch

from checks.spec import (Check, Choice, Contract, GradingEnv, Mistake, Raises, uniform_choice_test,
                         with_fresh_generators, with_seeded_generators)
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
from checks.specs import common
from checks.specs.common import array_indexing_batch

DAY = 4
MODULE = "day4_array_indexing"
MODEL = common.ARRAY_2L1H


def _tokens(env: GradingEnv, batch: int, seed: int) -> torch.Tensor:
    return array_indexing_batch(batch, env.generator(seed)).to(env.device)


def _sample_inputs(batch_size: int, seed: int) -> common.InputBuilder:
    return lambda env: {"batch_size": batch_size, "generator": env.generator(seed)}


def _logits(env: GradingEnv, tokens: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """The model's logits, plus Gaussian noise of `noise` times their std (0: the model's own logits). Noise makes
    losses large and accuracies fractional, so that a wrong position or axis changes them a lot."""
    with torch.no_grad():
        logits = env.model(MODEL)(tokens)
    if noise:
        logits = logits + noise * logits.std() * torch.randn(logits.shape, generator=env.generator(seed)).to(env.device)
    return logits


def _logits_inputs(batch: int, seed: int, noise: float) -> common.InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = _tokens(env, batch, seed)
        return {"logits": _logits(env, tokens, noise, seed + 1), "tokens": tokens}

    return inputs


def _model_and_tokens(batch: int, seed: int) -> common.InputBuilder:
    return lambda env: {"model": env.model(MODEL), "tokens": _tokens(env, batch, seed)}


def _one_idx_only(env: GradingEnv) -> dict[str, Any]:
    tokens = _tokens(env, 6, 414)
    tokens[:, IDX_POSITION] = 0  # no example has idx == 1 or idx == 2
    return {"model": env.model(MODEL), "tokens": tokens}


def _ov_inputs(layer: int, head: int | None = None) -> common.InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        arguments: dict[str, Any] = {"model": env.model(MODEL), "layer": layer}
        if head is not None:
            arguments["head"] = head
        return arguments

    return inputs


def _copying_inputs(size: int, seed: int, columns: int | None = None) -> common.InputBuilder:
    # A non-symmetric matrix where about half the rows peak on the diagonal: row- and column-wise argmax disagree.
    def inputs(env: GradingEnv) -> dict[str, Any]:
        matrix = torch.randn(size, columns or size, generator=env.generator(seed))
        matrix[:, :size] += 1.5 * torch.eye(size)[:, : columns or size]
        return {"ov_circuit": matrix.to(env.device)}

    return inputs


def _patching_inputs(batch: int, seed: int, corrupt: str = "idx",
                     corrupted_batch: int | None = None) -> common.InputBuilder:
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


def _prediction_inputs(batch: int, seed: int, layer: int) -> common.InputBuilder:
    return lambda env: {"model": env.model(MODEL), "tokens": _tokens(env, batch, seed), "layer": layer}


def _with_idx(tokens: torch.Tensor, value: int) -> torch.Tensor:
    """The same lists and elements with every idx set to `value`, answers rewritten to match (a consistent task)."""
    tokens = tokens.clone()
    tokens[:, IDX_POSITION] = value
    answers = tokens[:, 1 : 1 + LIST_LEN].clone()
    answers[:, value] = tokens[:, ELT_POSITION]
    tokens[:, LABEL_POSITIONS[0] :] = answers
    return tokens


def _tokens_inputs(batch: int, seed: int, idx: int | None = None) -> common.InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = _tokens(env, batch, seed)
        return {"tokens": tokens if idx is None else _with_idx(tokens, idx)}

    return inputs


def _idx_patch_inputs(batch: int, seed: int, layer: int, position: int, bad_idx: bool = False) -> common.InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = _tokens(env, batch, seed)
        shift = torch.randint(1, LIST_LEN, (batch,), generator=env.generator(seed + 1)).to(env.device)
        new_idx = (tokens[:, IDX_POSITION] + shift) % LIST_LEN
        if bad_idx:
            new_idx[0] = LIST_LEN
        return {"model": env.model(MODEL), "tokens": tokens, "new_idx": new_idx, "layer": layer, "position": position}

    return inputs


def _cut_inputs(batch: int, seed: int, layer: int, query: int, key: int) -> common.InputBuilder:
    return lambda env: {"model": env.model(MODEL), "tokens": _tokens(env, batch, seed), "layer": layer,
                        "query_position": query, "key_position": key}


# ---- the mistakes the grader names: what each returns is solutions/oracles/day4.py's, stored with the references -----
_READ_LATE = ("This is what the logits one position late give (at the answers' own positions {labels}): the logits "
              "that predict a token sit one position before it, so b_j is predicted at {answers}.").format(
    labels=", ".join(map(str, LABEL_POSITIONS)), answers=", ".join(map(str, ANSWER_POSITIONS)))


# ---- the learner's mechanism, judged against the model --------------------------------------------------------------
MIN_AGREEMENT = 0.9
"""`predicted_read_positions` passes when, at every answer position, it names layer 1's most-attended key position
on at least this fraction of the examples. The course's rule scores 1.0, 1.0 and about 0.98 at b2 on the shipped
model (about 0.96 when every idx is 0, where layer 1 at b2 reads the idx position most often); a rule that ignores
idx, or gets one of its cases wrong, scores at most about 0.7 at some answer."""


# sample_array_indexing_batch is judged by its contract (checks.judging.contracts), not by one dictated order of
# draws: a valid batch (layout, ranges, b = a with a[idx] = elt), reproducible from the generator, and over
# SAMPLE_TRIALS seeds each example's a_j, elt, and the pair of the two examples' idx, uniform (the pair catches one idx
# shared by a batch).
# With 1000 trials over 409 cells the test catches gross bias (an idx or value drawn far too often or never among
# few options), not one missing value among MAX_NUM.
SAMPLE_TRIALS = 1000
SAMPLE_DISTRIBUTION_CASE = "batch 2: a, idx and elt over 1000 seeds"
SEQ_LEN = 2 * LIST_LEN + 5


def _sample_facts(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"batch_size": inputs["batch_size"]}


def _sample_valid(output: Any, facts: dict[str, Any]) -> str | None:
    batch = facts["batch_size"]
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != (batch, SEQ_LEN):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return f"expected a tensor of shape ({batch}, {SEQ_LEN}) (batch_size, 2 * LIST_LEN + 5), got {shape}"
    if output.dtype != torch.int64:
        return f"the output has dtype {output.dtype}; the docstring promises int64 tokens"
    tokens = output.cpu()
    for column, token, name in ((0, BOS_TOKEN, "BOS"), (LIST_LEN + 1, NL_TOKEN, "NL"), (LIST_LEN + 4, NL_TOKEN, "NL")):
        if not (tokens[:, column] == token).all():
            return f"position {column} must hold {name} (token {token}) in every example"
    lists, idx, elt = tokens[:, 1:LIST_LEN + 1], tokens[:, IDX_POSITION], tokens[:, ELT_POSITION]
    for what, values, high in (("a list entry", lists, MAX_NUM), ("idx", idx, LIST_LEN), ("elt", elt, MAX_NUM)):
        if ((values < 0) | (values >= high)).any():
            return f"{what} outside [0, {high}): {int(values[(values < 0) | (values >= high)][0])}"
    expected = lists.clone()
    expected[torch.arange(batch), idx] = elt
    wrong = (tokens[:, LIST_LEN + 5:] != expected).nonzero()
    if len(wrong):
        b, j = (int(i) for i in wrong[0])
        return (f"example {b}: b{j} is {int(tokens[b, LIST_LEN + 5 + j])}, but a with a[idx] = elt has "
                f"{int(expected[b, j])} there (a = {lists[b].tolist()}, idx = {int(idx[b])}, elt = {int(elt[b])})")
    return None


def _sample_distribution(trials: list[Any], facts: dict[str, Any], alpha: float) -> str | None:
    numbers = tuple(range(MAX_NUM))
    choices, draws = [], [[] for _ in trials]
    for b in range(facts["batch_size"]):
        for j in range(LIST_LEN):
            choices.append(Choice(f"example {b}'s a{j}", numbers))
        choices.append(Choice(f"example {b}'s elt", numbers))
    choices.append(Choice("the pair (idx of example 0, idx of example 1)",
                          tuple((i, k) for i in range(LIST_LEN) for k in range(LIST_LEN))))
    for k, trial in enumerate(trials):
        tokens = trial.cpu()
        for b in range(facts["batch_size"]):
            draws[k] += [int(t) for t in tokens[b, 1:LIST_LEN + 1]] + [int(tokens[b, ELT_POSITION])]
        draws[k].append((int(tokens[0, IDX_POSITION]), int(tokens[1, IDX_POSITION])))
    return uniform_choice_test(choices, draws, alpha)


SAMPLE_CONTRACT = Contract(valid=_sample_valid, facts=_sample_facts, fresh=with_fresh_generators,
                           reseed=with_seeded_generators, distribution=_sample_distribution, trials=SAMPLE_TRIALS,
                           distribution_cases=(SAMPLE_DISTRIBUTION_CASE,))


CHECKS = [
    Check(
        name="sample_array_indexing_batch",
        cases={
            "batch 64": _sample_inputs(64, 400),
            "batch 5, another seed": _sample_inputs(5, 1400),
            "batch_size 0 (raises ValueError)": Raises(ValueError, _sample_inputs(0, 2400)),
            SAMPLE_DISTRIBUTION_CASE: _sample_inputs(2, 3400),
        },
        exact_types=True,
        contract=SAMPLE_CONTRACT,
        hints=(
            "Which parts of a sequence are random, and which follow from the others? Only a, idx and elt are drawn.",
            "Draw the three random parts from the generator, whole tensors at a time, each example its own; build b "
            "as a copy of a with one entry per example overwritten; then put BOS, a, NL, idx, elt, NL, b side by side.",
            "lists = randint(0, MAX_NUM, (batch, LIST_LEN)), idx = randint(0, LIST_LEN, (batch,)), "
            "elt = randint(0, MAX_NUM, (batch,)), all with generator=generator; answers = lists.clone(); "
            "answers[arange(batch), idx] = elt; torch.cat the columns along dim 1.",
        ),
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
        hints=(
            "A causal language model's logits at position p predict the token at which position?",
            "Take the logits at the three positions that predict b0, b1, b2, in float64, and the cross-entropy of "
            "each against its answer token; average over examples and answers.",
            "logits[:, ANSWER_POSITIONS] in float64, log_softmax over the vocabulary, gather the entries of "
            "tokens[:, LABEL_POSITIONS], negate and take the mean.",
        ),
        mistakes=(Mistake(_READ_LATE, "loss_read_late"),),
    ),
    Check(
        name="position_labels",
        cases={
            "list_len 3": lambda env: {"list_len": LIST_LEN},
            "list_len 5": lambda env: {"list_len": 5},
            "list_len 1": lambda env: {"list_len": 1},
            "list_len 0 (raises ValueError)": Raises(ValueError, lambda env: {"list_len": 0}),
        },
        hints=(
            "Write out a sequence with one-entry lists by hand: how many positions are there, and what is each one?",
            "Five fixed roles (BOS, NL, idx, elt, NL) plus list_len entries of a and list_len of b, numbered from 0.",
            "[\"BOS\", *[f\"a{i}\" for i in range(n)], \"NL\", \"idx\", \"elt\", \"NL\", *[f\"b{i}\" for i in range(n)]]",
        ),
    ),
    Check(
        name="answer_accuracy",
        cases={
            "noisy logits, batch 300": _logits_inputs(300, 402, noise=3.0),
            "noisy logits, batch 40": _logits_inputs(40, 1402, noise=2.0),
        },
        atol=1e-9,
        rtol=1e-6,
        hints=(
            "Which positions' logits predict the answers, and over which dimension do you average to get one "
            "number per answer?",
            "Take the top prediction at each answer position, compare it with the answer token, and average the "
            "matches over the batch only.",
            "(logits[:, ANSWER_POSITIONS].argmax(-1) == tokens[:, LABEL_POSITIONS]).float().mean(0)",
        ),
        mistakes=(Mistake(_READ_LATE, "accuracy_read_late"),),
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
        hints=(
            "Which row of an attention pattern belongs to the answer position j: the query or the key?",
            "Cache every layer's pattern; for each layer and answer j, select the examples with idx == j (or not) "
            "and average the pattern row of answer position j over them.",
            "pattern = cache['pattern', L][:, 0]; rows = pattern[(idx == j) == bool(m), ANSWER_POSITIONS[j]]; "
            "result[L, j, m] = rows.mean(0); raise ValueError when the selection is empty.",
        ),
    ),
    Check(
        name="attention_to_answer_source",
        cases={
            "batch 200": _model_and_tokens(200, 405),
            "batch 17, another seed": _model_and_tokens(17, 1405),
        },
        atol=1e-6,
        rtol=1e-4,
        hints=(
            "For one example and answer j, which position holds the right answer? It depends on that example's idx.",
            "Per example, pick the source position (a_j's or elt's) and read the attention from answer position j "
            "to it; average over examples, for each layer and answer.",
            "source = torch.where(idx == j, ELT_POSITION, 1 + j); pattern[arange(batch), ANSWER_POSITIONS[j], "
            "source].mean()",
        ),
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
        hints=(
            "What does a mean ablation keep that a zero ablation throws away, and over which dimension is the mean?",
            "For each method and layer, run the model with a hook that replaces the layer's attention output, then "
            "compute per-answer loss (float64) and accuracy, averaged over the batch.",
            "hook blocks.{L}.hook_attn_out with zeros_like(x) or x.mean(0, keepdim=True).expand_as(x); cross-"
            "entropy of logits[:, ANSWER_POSITIONS] against tokens[:, LABEL_POSITIONS], mean over dim 0, .float().",
        ),
    ),
    Check(
        name="predictions_with_layer_zeroed",
        cases={
            "layer 1, batch 200": _prediction_inputs(200, 419, 1),
            "layer 0, batch 40": _prediction_inputs(40, 1419, 0),
            "layer 2 (raises ValueError)": Raises(ValueError, _prediction_inputs(4, 2419, 2)),
        },
        exact_types=True,
        hints=(
            "Zeroing a layer's output is an intervention on one activation: which hook point holds what the layer "
            "adds to the residual stream?",
            "Run the model with a hook that replaces that layer's attention output by zeros, then take the top "
            "prediction at each answer position. Check the layer first.",
            "model.run_with_hooks(tokens, fwd_hooks=[(f'blocks.{layer}.hook_attn_out', lambda x, hook: "
            "torch.zeros_like(x))]), then logits[:, ANSWER_POSITIONS].argmax(-1)",
        ),
    ),
    Check(
        name="answer_logit_attribution",
        cases={
            "batch 200": _model_and_tokens(200, 407),
            "batch 9, another seed": _model_and_tokens(9, 1407),
        },
        atol=1e-4,
        rtol=1e-4,
        hints=(
            "Under shortformer, what do the positional embeddings add to the residual stream? Predict before you "
            "compute.",
            "Cache the run; stack the components at the answer positions; project each on the unembedding "
            "direction of that example's right answer (a dot product, no bias).",
            "components = [hook_embed, blocks.0.hook_resid_pre - hook_embed, attn_out of each layer] at "
            "ANSWER_POSITIONS; (stacked * W_U.T[tokens[:, LABEL_POSITIONS]]).sum(-1)",
        ),
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
        hints=(
            "Follow one number token from its embedding, through what the head reads and writes, to the logits: "
            "which matrices does it pass, in which order?",
            "Embed the number tokens only, apply the head's value then output weights, then unembed: one row per "
            "input token. Check the layer first.",
            "W_E[:d_vocab_out] @ W_V[layer, head] @ W_O[layer, head] @ W_U",
        ),
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
        hints=(
            "In an OV circuit, is a row an input token or an output token?",
            "For each row, find the output token with the largest value and count how often it is the row's own "
            "token; return the fraction as a Python float.",
            "(ov.argmax(dim=-1) == torch.arange(n)).float().mean().item(), after checking ov is square",
        ),
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
        hints=(
            "What should the metric be for the clean run, and for the corrupted one? A normalised effect runs from "
            "one to the other.",
            "Compute each run's answers from its own a, idx, elt; the logit difference over the answers that differ; "
            "then for every point and position, the clean run with that one residual vector from the corrupted run.",
            "effect[point, p] = (LD(patched) - LD(clean)) / (LD(corrupted) - LD(clean)); patched logits from "
            "circuits.logits_with_residual_patch(model, clean_cache, point, p, corrupted_cache[name][:, p], answers).",
        ),
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
        hints=(
            "The docstring asks for a token. Where the head attends most is a position: what turns a position into "
            "a token?",
            "Read the pattern rows of the answer positions, find the key each attends to most, then look up the "
            "token at that key in each example.",
            "tokens.gather(1, cache['pattern', layer][:, 0, ANSWER_POSITIONS].argmax(-1))",
        ),
        mistakes=(Mistake("This looks like positions, not tokens: your values are the key positions the head attends "
                          "to most; return the token at each of them.", "top_key_positions"),),
    ),
    Check(
        name="predicted_read_positions",
        cases={
            "batch 300": _tokens_inputs(300, 416),
            "batch 150, every idx 2": _tokens_inputs(150, 1416, idx=2),
            "batch 300, every idx 0": _tokens_inputs(300, 2416, idx=0),
        },
        exact_types=True,
        expected_from="layer1_top_positions",
        min_agreement=MIN_AGREEMENT,
        hints=(
            "In section 2, which key held most of layer 1's attention at an answer whose entry is overwritten, and "
            "which at one whose entry is kept?",
            "The rule depends on each example's idx and on j only: one position when idx == j, another (that "
            "depends on j) otherwise. Build it for the whole batch at once.",
            "torch.where(tokens[:, IDX_POSITION, None] == arange(LIST_LEN), ELT_POSITION, 1 + arange(LIST_LEN)), "
            "expanded to [batch, LIST_LEN], int64",
        ),
    ),
    Check(
        name="predictions_with_idx_patched",
        cases={
            "layer 1 at elt, batch 120": _idx_patch_inputs(120, 417, 1, ELT_POSITION),
            "layer 1 at idx, batch 40": _idx_patch_inputs(40, 1417, 1, IDX_POSITION),
            "layer 0 at idx, batch 25": _idx_patch_inputs(25, 2417, 0, IDX_POSITION),
            "new_idx out of range (raises ValueError)": Raises(ValueError, _idx_patch_inputs(6, 3417, 1, 6, True)),
            "position 11 (raises ValueError)": Raises(ValueError, _idx_patch_inputs(6, 4417, 1, 11)),
        },
        exact_types=True,
        hints=(
            "Patching needs two runs: which one is the model's output read from, and which one only supplies the "
            "activation?",
            "Build the tokens with idx replaced, run them with a cache of the residual stream entering the layer; "
            "then run the original tokens with a hook that overwrites that residual stream at the one position.",
            "hook blocks.{layer}.hook_resid_pre: resid = resid.clone(); resid[:, position] = "
            "moved_cache[name][:, position]; then logits[:, ANSWER_POSITIONS].argmax(-1)",
        ),
    ),
    Check(
        name="predictions_with_attention_cut",
        cases={
            "layer 1, b2 from idx, batch 300": _cut_inputs(300, 418, 1, ANSWER_POSITIONS[-1], IDX_POSITION),
            "layer 1, b2 from a2, batch 60": _cut_inputs(60, 1418, 1, ANSWER_POSITIONS[-1], LIST_LEN),
            "layer 0, elt from idx, batch 80": _cut_inputs(80, 2418, 0, ELT_POSITION, IDX_POSITION),
            "key after query (raises ValueError)": Raises(ValueError, _cut_inputs(5, 3418, 1, IDX_POSITION, 9)),
            "layer 2 (raises ValueError)": Raises(ValueError, _cut_inputs(5, 4418, 2, 9, 5)),
        },
        exact_types=True,
        hints=(
            "Which activation holds the weights a head gives each key, after the softmax?",
            "Run the model with a hook on that layer's attention pattern that zeroes the one (query, key) entry of "
            "head 0 and leaves the rest; read the top prediction at each answer position.",
            "hook blocks.{layer}.attn.hook_pattern: p = p.clone(); p[:, 0, query_position, key_position] = 0; "
            "logits[:, ANSWER_POSITIONS].argmax(-1)",
        ),
    ),
]
