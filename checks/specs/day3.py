"""Checks of day 3 (causal scrubbing of the induction heads, on `induction-2l`).

Inputs come from the zoo models and the course's seeded data generators (stories of induction-2l's language, random
tokens), through plain torch and TransformerLens calls. Every exercise has at least two cases, chosen so that each
parameter it reads (batch, length, seeds, layer, head, group structure, model) differs between them.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from checks.spec import (Check, Choice, Contract, GradingEnv, uniform_choice_test, with_fresh_generators,
                         with_seeded_generators)
from curriculum.data.induction_corpus import FIRST_NAME_TOKEN, INDUCTION_CANDIDATES, stories

DAY = 3
MODULE = "day3_causal_scrubbing"

MODEL = "induction-2l"
OTHER_MODEL = "array-2l1h"  # also 2 attention-only layers with shortformer positions, but 1 head and another vocabulary
GPT = "toy-gpt"

Case = Callable[[GradingEnv], dict[str, Any]]


def _check(name: str, cases: dict[str, Case], **options: Any) -> Check:
    return Check(name=name, cases=cases, **options)


def _stories(env: GradingEnv, batch: int, length: int, seed: int) -> torch.Tensor:
    return stories(batch, env.generator(seed))[:, :length].to(env.device)


def _random_tokens(env: GradingEnv, model: str, batch: int, length: int, seed: int) -> torch.Tensor:
    d_vocab = env.model(model).cfg.d_vocab_out
    return torch.randint(0, d_vocab, (batch, length), generator=env.generator(seed)).to(env.device)


def _resid_pre(env: GradingEnv, model: str, layer: int, tokens: torch.Tensor) -> torch.Tensor:
    name = f"blocks.{layer}.hook_resid_pre"
    with torch.no_grad():
        _, cache = env.model(model).run_with_cache(tokens, names_filter=lambda hook: hook == name)
    return cache[name].clone()


# ---- section 1: the dataset --------------------------------------------------------------------------------------------
def _shift_case(batch: int, length: int, seed: int) -> Case:
    return lambda env: {"tokens": _stories(env, batch, length, seed)}


def _mask_case(batch: int, length: int, seed: int, candidates: str) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        if candidates == "names":
            chosen = torch.tensor(INDUCTION_CANDIDATES)
            tokens, d_vocab = _stories(env, batch, length, seed), env.model(MODEL).cfg.d_vocab
        else:  # a random set of tokens, in the smaller (array-2l1h) or larger (toy-gpt) vocabulary of another model
            d_vocab = env.model(OTHER_MODEL if candidates == "random" else GPT).cfg.d_vocab
            tokens = torch.randint(0, d_vocab, (batch, length), generator=env.generator(seed)).to(env.device)
            chosen = torch.randperm(d_vocab, generator=env.generator(seed + 1))[: d_vocab // 4]
        return {"inputs": tokens[:, :-1], "candidates": chosen.to(env.device), "d_vocab": d_vocab}

    return inputs


def _loss_case(model: str, batch: int, length: int, seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = (_stories(env, batch, length + 1, seed) if model == MODEL
                  else _random_tokens(env, model, batch, length + 1, seed))
        return {"model": env.model(model), "inputs": tokens[:, :-1], "targets": tokens[:, 1:]}

    return inputs


def _candidate_loss_case(batch: int, length: int, seed: int, density: float) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        generator = env.generator(seed)
        losses = 5 * torch.rand(batch, length, generator=generator)
        # rows of very different densities, so that pooling all positions differs from averaging per-row means
        row_density = density * torch.linspace(0.2, 1.8, batch)[:, None]
        mask = torch.rand(batch, length, generator=generator) < row_density
        mask[0, 0] = True
        return {"losses": losses.to(env.device), "mask": mask.to(env.device)}

    return inputs


# ---- section 2: sampling groups ------------------------------------------------------------------------------------
def _groups_case(group_of: dict[str, str], group_seeds: dict[str, int], n: int) -> Case:
    return lambda env: {"group_of": dict(group_of), "group_seeds": dict(group_seeds), "n": n}


# sample_groups is judged by its contract (checks.judging.contracts), not by torch.randperm's exact draw: every variable gets a
# permutation of range(n) (int64), the variables of a group the same one, each group's drawn from its own seed alone;
# over GROUP_TRIALS seeds the permutations are uniform and independent between groups.
GROUP_TRIALS, GROUP_REPEATS = 1000, 8


def _groups_facts(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"group_of": dict(inputs["group_of"]), "group_seeds": dict(inputs["group_seeds"]), "n": inputs["n"]}


def _groups_reseed(inputs: dict[str, Any], k: int) -> dict[str, Any]:
    """Trial k < GROUP_TRIALS: new seeds for every group. The GROUP_REPEATS trials after them give the first group
    the seed it had in trial k - GROUP_TRIALS and every other group a new one."""
    groups = list(inputs["group_seeds"])
    seeds = {group: 100_003 * (k + 1) + 7 * i for i, group in enumerate(groups)}
    if k >= GROUP_TRIALS:
        seeds[groups[0]] = 100_003 * (k - GROUP_TRIALS + 1)
    return {**inputs, "group_seeds": seeds, "group_of": dict(inputs["group_of"])}


def _groups_valid(output: Any, facts: dict[str, Any]) -> str | None:
    group_of, n = facts["group_of"], facts["n"]
    if not isinstance(output, dict) or set(output) != set(group_of):
        keys = sorted(output) if isinstance(output, dict) else type(output).__name__
        return f"sample_groups must return a dict with one entry per variable {sorted(group_of)}, got {keys}"
    for variable, permutation in output.items():
        if not isinstance(permutation, torch.Tensor) or permutation.shape != (n,):
            return f"output[{variable!r}] should be a tensor of shape ({n},)"
        if permutation.dtype != torch.int64:
            return f"output[{variable!r}] has dtype {permutation.dtype}; the docstring promises int64"
        if not torch.equal(permutation.sort().values, torch.arange(n)):
            return f"output[{variable!r}] is not a permutation of range({n}): each index must appear exactly once"
    for variable, group in group_of.items():
        first = next(other for other, g in group_of.items() if g == group)
        if not torch.equal(output[variable], output[first]):
            return (f"variables {first!r} and {variable!r} are both in group {group!r} but got different "
                    "permutations: a group's variables are resampled together")
    return None


def _groups_distribution(trials: list[Any], facts: dict[str, Any], alpha: float) -> str | None:
    group_of = facts["group_of"]
    first_of = {}
    for variable, group in group_of.items():
        first_of.setdefault(group, variable)
    groups = list(first_of)
    for k, repeat in enumerate(trials[GROUP_TRIALS:]):
        if not torch.equal(repeat[first_of[groups[0]]], trials[k][first_of[groups[0]]]):
            return (f"group {groups[0]!r} got another permutation when only the other groups' seeds changed: each "
                    "group's permutation must be drawn from its own seed alone (one generator per group)")
    n = facts["n"]
    choices, draws = [], [[] for _ in trials[:GROUP_TRIALS]]
    for group in groups:
        for position in range(n):
            choices.append(Choice(f"position {position} of group {group!r}'s permutation", tuple(range(n))))
    if len(groups) > 1:
        pairs = tuple((a, b) for a in range(n) for b in range(n))
        choices.append(Choice(f"the pair (position 0 of group {groups[0]!r}, position 0 of group {groups[1]!r})",
                              pairs))
    for k, trial in enumerate(trials[:GROUP_TRIALS]):
        for group in groups:
            draws[k] += trial[first_of[group]].tolist()
        if len(groups) > 1:
            draws[k].append((int(trial[first_of[groups[0]]][0]), int(trial[first_of[groups[1]]][0])))
    found = uniform_choice_test(choices, draws, alpha)
    if found and len(groups) > 1 and "the pair" in found:
        found += " Groups with different seeds must be independent."
    return found


GROUPS_CONTRACT = Contract(valid=_groups_valid, facts=_groups_facts, fresh=lambda inputs: dict(inputs),
                           reseed=_groups_reseed, distribution=_groups_distribution,
                           trials=GROUP_TRIALS + GROUP_REPEATS,
                           distribution_cases=("two groups, n 4: permutations over 1000 seeds",))


# ---- section 3: baselines ------------------------------------------------------------------------------------------
def _scrub_all_case(batch: int, length: int, seed: int, candidates: str) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = _stories(env, batch, length, seed)
        other = torch.randperm(batch, generator=env.generator(seed + 1)).to(env.device)
        chosen = (torch.tensor(INDUCTION_CANDIDATES) if candidates == "names"
                  else torch.arange(FIRST_NAME_TOKEN - 40, FIRST_NAME_TOKEN + 8))  # some names and some words
        return {"model": env.model(MODEL), "tokens": tokens, "other": other, "candidates": chosen.to(env.device)}

    return inputs


def _recovered_case(clean: float, baseline: float, shape: tuple[int, ...], seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        scrubbed = clean + (baseline - clean) * torch.rand(shape, generator=env.generator(seed)) * 1.2 - 0.1
        return {"clean": clean, "scrubbed": scrubbed.to(env.device), "baseline": baseline}

    return inputs


# ---- section 4: splitting a head's inputs ---------------------------------------------------------------------------
def _components_case(model: str, batch: int, length: int, seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = (_stories(env, batch, length, seed) if model == MODEL
                  else _random_tokens(env, model, batch, length, seed))
        return {"model": env.model(model), "tokens": tokens}

    return inputs


def _assemble_case(n_heads: int, size: int, d_model: int, seed: int, spec: dict[str, dict[str, str]]) -> Case:
    """Random components (square batch x pos, so that permuting positions instead of sequences keeps the shape)."""
    def inputs(env: GradingEnv) -> dict[str, Any]:
        generator = env.generator(seed)
        names = ["embed", *[f"L0H{h}" for h in range(n_heads)], "b_O0"]
        components = torch.randn(len(names), size, size, d_model, generator=generator)
        components[-1] = torch.randn(d_model, generator=generator)  # a bias is the same at every position
        other = torch.randperm(size, generator=generator)
        return {"components": components.to(env.device), "names": names, "other": other.to(env.device),
                "spec": {which: dict(sources) for which, sources in spec.items()}}

    return inputs


def _run_qkv_case(model: str, layer: int, head: int, batch: int, length: int, seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        def tokens(offset: int) -> torch.Tensor:
            return (_stories(env, batch, length, seed + offset) if model == MODEL
                    else _random_tokens(env, model, batch, length, seed + offset))

        qkv = torch.stack([_resid_pre(env, model, layer, tokens(i)) for i in (1, 2, 3)])
        return {"model": env.model(model), "tokens": tokens(0), "qkv_inputs": qkv, "layer": layer, "head": head}

    return inputs


def _head_output_case(model: str, layer: int, head: int, batch: int, length: int, seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        def resid(offset: int) -> torch.Tensor:
            tokens = (_stories(env, batch, length, seed + offset) if model == MODEL
                      else _random_tokens(env, model, batch, length, seed + offset))
            return _resid_pre(env, model, layer, tokens)

        return {"model": env.model(model), "layer": layer, "head": head, "q_input": resid(0), "k_input": resid(1),
                "v_input": resid(2)}

    return inputs


# ---- section 5: the bonus path --------------------------------------------------------------------------------------
def _prev_value_case(model: str, head: int, batch: int, length: int, seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        def tokens(offset: int) -> torch.Tensor:
            return (_stories(env, batch, length, seed + offset) if model == MODEL
                    else _random_tokens(env, model, batch, length, seed + offset))

        return {"model": env.model(model), "head": head, "tokens": tokens(0), "other_tokens": tokens(1)}

    return inputs


# ---- sections 6-7: feature-matched resampling, error bars -----------------------------------------------------------
def _matched_case(kind: str, size: int, seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        if kind == "small ints":
            feature = torch.randint(0, 6, (size,), generator=env.generator(seed))
        else:  # the tokens of some stories: a few frequent values, many rare ones
            feature = stories(4, env.generator(seed))[:, : size // 4].flatten()
        return {"feature": feature.to(env.device), "generator": env.generator(seed + 1)}

    return inputs


# matched_resample is judged by its contract: int64 indices with the same feature, reproducible from the generator,
# and, over MATCHED_TRIALS generator seeds, uniform among the matching indices for every element.
MATCHED_TRIALS = 400


def _matched_distribution_case(env: GradingEnv) -> dict[str, Any]:
    """Blocks of 1 to 4 equal values, in no order: small enough that 400 draws test every option."""
    return {"feature": torch.tensor([5, 2, 5, 7, 2, 5, 7, 7, 7, 9]).to(env.device), "generator": env.generator(431)}


def _matched_valid(output: Any, facts: dict[str, Any]) -> str | None:
    feature = facts["feature"]
    n = feature.shape[0]
    if not isinstance(output, torch.Tensor) or output.shape != (n,):
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return f"matched_resample should return a tensor of shape ({n},) (one index per element), got {shape}"
    if output.dtype != torch.int64:
        return f"the output has dtype {output.dtype}; the docstring promises int64 indices"
    outside = (output < 0) | (output >= n)
    if outside.any():
        i = int(outside.nonzero()[0])
        return f"element {i} drew index {int(output[i])}, outside range({n})"
    wrong = feature[output] != feature
    if wrong.any():
        i = int(wrong.nonzero()[0])
        return (f"element {i} (feature {int(feature[i])}) drew index {int(output[i])}, whose feature is "
                f"{int(feature[output[i]])}: each element must draw among the elements with its own feature value "
                f"({int(wrong.sum())} of {n} draws cross feature values)")
    return None


def _matched_distribution(trials: list[Any], facts: dict[str, Any], alpha: float) -> str | None:
    feature = facts["feature"].tolist()
    choices = [Choice(f"the index drawn for element {i} (feature {value})",
                      tuple(j for j, other in enumerate(feature) if other == value))
               for i, value in enumerate(feature)]
    return uniform_choice_test(choices, [trial.tolist() for trial in trials], alpha)


MATCHED_CONTRACT = Contract(valid=_matched_valid, facts=lambda inputs: {"feature": inputs["feature"].cpu()},
                            fresh=with_fresh_generators, reseed=with_seeded_generators,
                            distribution=_matched_distribution, trials=MATCHED_TRIALS,
                            distribution_cases=("10 elements in blocks of 1 to 4: draws over 400 seeds",))


def _standard_error_case(n_resamplings: int, n_hypotheses: int, seed: int) -> Case:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        centres = 2 + 4 * torch.rand(n_hypotheses, generator=env.generator(seed))
        losses = centres + 0.1 * torch.randn(n_resamplings, n_hypotheses, generator=env.generator(seed + 1))
        return {"losses": losses.to(env.device)}

    return inputs


CHECKS = [
    _check(
        "inputs_and_targets",
        {"batch 4, 20 tokens": _shift_case(4, 20, 301), "batch 7, 33 tokens": _shift_case(7, 33, 302)},
        exact_types=True, hints=(
            "A language model predicts the next token: which tokens can it read, and which can it be scored on?",
            "Drop the last token to get what the model reads, and the first token to get what each position is scored"
            " on.",
            "inputs are tokens[:, :-1] (every position but the last) and targets tokens[:, 1:] (every position but "
            "the first): the prediction made at position i is scored on the token at position i + 1."),
    ),
    _check(
        "candidate_mask",
        {"names, batch 5, 40 tokens": _mask_case(5, 40, 311, "names"),
         "random candidates, other vocabulary, batch 3, 25 tokens": _mask_case(3, 25, 312, "random"),
         "random candidates, toy-gpt's 296 tokens, batch 4, 30 tokens": _mask_case(4, 30, 313, "random, larger")},
        exact_types=True, hints=(
            "Is a candidate position decided by the token the model reads there or by the token it must predict?",
            "Build a yes/no table over the vocabulary marking the candidates, and look up each input token in it.",
            "Index a table of d_vocab booleans (True at the candidates) by the *input* tokens themselves "
            "(is_candidate[inputs]), not by the targets; the mask has the inputs' shape."),
    ),
    _check(
        "per_position_loss",
        {"induction-2l, batch 3, 30 tokens": _loss_case(MODEL, 3, 30, 321),
         "toy-gpt, batch 2, 12 tokens": _loss_case(GPT, 2, 12, 322)},
        exact_types=True, hints=(
            "The targets are already aligned with the inputs: what is the loss at one position?",
            "Run the model on the inputs, turn its logits into log-probabilities and read, at every position, that of"
            " its target; negate.",
            "Run the model on the inputs, take log_softmax over the vocabulary and gather each position's target "
            "(targets are already shifted: no further [:, 1:]); negate."),
    ),
    _check(
        "loss_on_candidates",
        {"batch 6, 30 positions": _candidate_loss_case(6, 30, 331, 0.3),
         "batch 3, 50 positions": _candidate_loss_case(3, 50, 332, 0.15)},
        exact_types=True, hints=(
            "Should each candidate position count once, or each sequence?",
            "Pool the losses of all selected positions of the whole batch and average them together.",
            "losses[mask].mean(): pool all selected positions of the batch, each counting once (not the mean of "
            "per-sequence means, not the mean over all positions of the masked losses)."),
    ),
    _check(
        "sample_groups",
        {"q, k in group A; v in group B; n 50": _groups_case({"q": "A", "k": "A", "v": "B"}, {"A": 11, "B": 22}, 50),
         "four variables in three groups; n 17": _groups_case(
             {"emb": "g2", "prev": "g0", "labels": "g1", "key": "g0"}, {"g0": 5, "g1": 6, "g2": 1234}, 17),
         "two groups, n 4: permutations over 1000 seeds": _groups_case({"q": "A", "k": "A", "v": "B"},
                                                                       {"A": 3, "B": 4}, 4)},
        contract=GROUPS_CONTRACT,
        hints=(
            "What makes two variables resampled together, and what keeps two groups independent?",
            "Draw one random permutation per group from that group's own seed, and give every variable of a group its"
            " group's permutation.",
            "One fresh torch.Generator().manual_seed(group_seeds[group]) per group and one torch.randperm(n) from it;"
            " every variable of a group gets that same permutation, and each group has its own seed (independent "
            "groups)."),
    ),
    _check(
        "scrub_all_inputs_loss",
        {"names, batch 6, 128 tokens": _scrub_all_case(6, 128, 341, "names"),
         "names and words, batch 9, 96 tokens": _scrub_all_case(9, 96, 342, "mixed")},
        exact_types=True, hints=(
            "When every input is resampled, which parts of the question stay the original's?",
            "Run the model on the resampled sequences, but score it on the original sequences' targets at the "
            "original candidate positions.",
            "Run the model on whole resampled sequences, inputs[other], but keep the original targets and the "
            "candidate mask of the original inputs: the labels are not scrubbed."),
    ),
    _check(
        "percent_loss_recovered",
        {"5 hypotheses": _recovered_case(1.8, 6.1, (5,), 351), "a 3 x 4 table": _recovered_case(0.4, 2.5, (3, 4), 352)},
        hints=(
            "On a scale where the clean model scores 1 and the baseline 0, where does a scrubbed loss fall?",
            "Take how much loss the scrubbing removes from the baseline, relative to how much the clean model "
            "removes.",
            "(baseline - scrubbed) / (baseline - clean): 1 when the scrubbed loss equals the clean one, 0 when it is "
            "as bad as the baseline."),
    ),
    _check(
        "layer1_input_components",
        {"induction-2l (4 heads), batch 3, 16 tokens": _components_case(MODEL, 3, 16, 361),
         "array-2l1h (1 head), batch 4, 11 tokens": _components_case(OTHER_MODEL, 4, 11, 362)},
        exact_types=True, hints=(
            "What does layer 1 read: which outputs of layer 0 and the embedding add up to it, and what does this "
            "model leave out of the residual stream?",
            "Stack the token embedding, each layer-0 head's output and layer 0's output bias, in that order; no "
            "position embedding.",
            "Components in the order embed, L0H0..L0H{n-1}, b_O of layer 0 (expanded to every position); each head's "
            "output is z @ W_O[0, head]; no positional embedding (shortformer positions never enter the residual "
            "stream)."),
    ),
    _check(
        "assemble_qkv_inputs",
        {"6 components, q/k/v specs differ, 7 x 7": _assemble_case(
            4, 7, 16, 371, {"q": {"embed": "orig", "L0H0": "other", "L0H2": "other"},
                            "k": {"L0H0": "orig", "embed": "other", "L0H1": "other", "L0H3": "other", "b_O0": "other"},
                            "v": {"embed": "other"}}),
         "3 components, v not in the spec, 5 x 5": _assemble_case(
             1, 5, 8, 372, {"q": {"L0H0": "other"}, "k": {"embed": "other", "b_O0": "other"}})},
        hints=(
            "What does resampling a component for one of q, k or v mean for that component's values, and which axis "
            "is resampled?",
            "For each of query, key and value, add up every component, taking a component from the resampled "
            "sequences where the spec says so and from the original otherwise.",
            "For each of q, k, v: sum every component (biases included), taking components[i, other] (whole sequences"
            " resampled: index dim 1, the batch, not dim 2, the positions) where the spec says 'other', components[i]"
            " otherwise; components missing from the spec come from 'orig'."),
    ),
    _check(
        "run_with_qkv_inputs",
        {"induction-2l, L1H0, batch 3, 24 tokens": _run_qkv_case(MODEL, 1, 0, 3, 24, 381),
         "induction-2l, L0H2, batch 2, 17 tokens": _run_qkv_case(MODEL, 0, 2, 2, 17, 382)},
        exact_types=True, hints=(
            "How can one head's query, key and value inputs be set separately, and what must the model look like "
            "afterwards?",
            "Switch on the model's split inputs, hook the three input hooks of the layer to replace only that head's "
            "inputs, and switch the split off again.",
            "With model.set_use_split_qkv_input(True), hook blocks.{layer}.hook_q_input, hook_k_input and "
            "hook_v_input and replace only [:, :, head] with qkv_inputs[0], [1], [2]; don't add positions (the model "
            "adds them); turn split inputs off again afterwards."),
        atol=1e-3,
    ),
    _check(
        "head_output_from_inputs",
        {"induction-2l, L1H0, batch 2, 20 tokens": _head_output_case(MODEL, 1, 0, 2, 20, 391),
         "induction-2l, L0H3, batch 3, 13 tokens": _head_output_case(MODEL, 0, 3, 3, 13, 392),
         "array-2l1h, L1H0, batch 2, 11 tokens": _head_output_case(OTHER_MODEL, 1, 0, 2, 11, 393)},
        exact_types=True, axes=("batch", "position", "d_model"), hints=(
            "Which of a head's three inputs get the position embedding in a shortformer model, and which biases does "
            "a head add?",
            "Add positions to the query and key inputs only, compute queries, keys and values with their biases, "
            "score, mask and normalise, then mix the values and apply the output weights.",
            "Add W_pos[:pos] to the query and key inputs (not the value input: shortformer), use the biases b_Q, b_K,"
            " b_V, scale scores by sqrt(d_head), mask keys after the query, softmax over keys, then z @ W_O (no b_O)."),
    ),
    _check(
        "prev_value_path_output",
        {"induction-2l, L0H0, batch 3, 24 tokens": _prev_value_case(MODEL, 0, 3, 24, 401),
         "induction-2l, L0H2, batch 2, 31 tokens": _prev_value_case(MODEL, 2, 2, 31, 402),
         "array-2l1h, L0H0, batch 4, 11 tokens": _prev_value_case(OTHER_MODEL, 0, 4, 11, 403)},
        exact_types=True, axes=("batch", "position", "d_model"), hints=(
            "Which value does the previous-token path carry, and what happens at the first position, which has no "
            "previous one?",
            "Compute the pattern from the other sequences; use the original tokens' values only where a query reads "
            "the key right before it, and the other sequences' values elsewhere.",
            "The pattern comes from other_tokens (embedding + positions, with b_Q, b_K); the value read at key p - 1 "
            "by query p comes from tokens, every other value from other_tokens (values are W_E[t] @ W_V + b_V); "
            "position 0 has no previous position."),
    ),
    _check(
        "matched_resample",
        {"40 small integers": _matched_case("small ints", 40, 411),
         "tokens of stories, 200 positions": _matched_case("story tokens", 200, 412),
         "10 elements in blocks of 1 to 4: draws over 400 seeds": _matched_distribution_case},
        contract=MATCHED_CONTRACT,
        hints=(
            "How can you draw, for each element, a uniformly random partner with the same feature value, using only "
            "the generator you are given?",
            "Group the elements by feature value; for each element draw a uniform position inside its own group, "
            "using the given generator for every random number.",
            "Draw u = torch.rand(n, generator=generator) first, then order = torch.argsort(feature, stable=True); "
            "element i (in the original order, with u[i]) picks order[start + floor(u[i] * count)] inside the block "
            "of its own feature value."),
    ),
    _check(
        "mean_and_standard_error",
        {"4 resamplings x 6 hypotheses": _standard_error_case(4, 6, 421),
         "3 resamplings x 10 hypotheses": _standard_error_case(3, 10, 422)},
        hints=(
            "How uncertain is a mean of a few resamplings, and which standard deviation estimates it without bias?",
            "Average over the resamplings, and divide their unbiased standard deviation by the square root of their "
            "number.",
            "Mean over resamplings (dim 0); standard error = unbiased standard deviation (n - 1) over dim 0, divided "
            "by sqrt(n)."),
    ),
]
