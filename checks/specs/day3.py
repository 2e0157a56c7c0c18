"""Checks of day 3 (causal scrubbing of the induction heads, on `induction-2l`).

Inputs come from the zoo models and the course's seeded data generators (stories of induction-2l's language, random
tokens), through plain torch and TransformerLens calls. Every exercise has at least two cases, chosen so that each
parameter it reads (batch, length, seeds, layer, head, group structure, hypotheses, model) differs between them.

Three exercises are judged by contracts (`checks.contracts`) rather than one reference: `sample_groups` and
`matched_resample` draw at random (validity, reproducibility, uniform draws over many seeds), and `capstone` (the
learner's own hypotheses) by what its hypotheses recover, within bounds set from the course's answers.
`scrub_hypotheses` gets a budget of one forward pass. Checks declare the mistakes they can name (`MISTAKES`): the
mask of the targets, the mean of per-sequence means, labels resampled too, a percentage for a fraction, a head's
query and key inputs swapped, its values read from the query input or given positions, and position 0 of the
previous-value path reading its own value.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from checks.spec import (Check, Choice, Contract, GradingEnv, Mistake, Raises, uniform_choice_test,
                         with_fresh_generators, with_seeded_generators)
from checks.specs.common import ARRAY_2L1H, INDUCTION_2L, TOY_GPT, InputBuilder, story_batch
from curriculum.data.induction_corpus import FIRST_NAME_TOKEN, INDUCTION_CANDIDATES, stories

DAY = 3
MODULE = "day3_causal_scrubbing"
MODEL = INDUCTION_2L
OTHER_MODEL = ARRAY_2L1H  # also 2 attention-only layers with shortformer positions, but 1 head and another vocabulary


def _random_tokens(env: GradingEnv, model: str, batch: int, length: int, seed: int) -> torch.Tensor:
    d_vocab = env.model(model).cfg.d_vocab_out
    return torch.randint(0, d_vocab, (batch, length), generator=env.generator(seed)).to(env.device)


def _resid_pre(env: GradingEnv, model: str, layer: int, tokens: torch.Tensor) -> torch.Tensor:
    name = f"blocks.{layer}.hook_resid_pre"
    with torch.no_grad():
        _, cache = env.model(model).run_with_cache(tokens, names_filter=lambda hook: hook == name)
    return cache[name].clone()


# ---- section 1: the dataset ------------------------------------------------------------------------------------------
def _shift_case(batch: int, length: int, seed: int) -> InputBuilder:
    return lambda env: {"tokens": story_batch(env, batch, length, seed)}


def _mask_case(batch: int, length: int, seed: int, candidates: str) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        if candidates == "names":
            chosen = torch.tensor(INDUCTION_CANDIDATES)
            tokens, d_vocab = story_batch(env, batch, length, seed), env.model(MODEL).cfg.d_vocab
        else:  # a random set of tokens, in the smaller (array-2l1h) or larger (toy-gpt) vocabulary of another model
            d_vocab = env.model(OTHER_MODEL if candidates == "random" else TOY_GPT).cfg.d_vocab
            tokens = torch.randint(0, d_vocab, (batch, length), generator=env.generator(seed)).to(env.device)
            chosen = torch.randperm(d_vocab, generator=env.generator(seed + 1))[: d_vocab // 4]
        return {"inputs": tokens[:, :-1], "candidates": chosen.to(env.device), "d_vocab": d_vocab}

    return inputs


def _loss_case(model: str, batch: int, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = (story_batch(env, batch, length + 1, seed) if model == MODEL
                  else _random_tokens(env, model, batch, length + 1, seed))
        return {"model": env.model(model), "inputs": tokens[:, :-1], "targets": tokens[:, 1:]}

    return inputs


def _candidate_loss_case(batch: int, length: int, seed: int, density: float) -> InputBuilder:
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
def _groups_case(group_of: dict[str, str], group_seeds: dict[str, int], n: int) -> InputBuilder:
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
def _scrub_all_case(batch: int, length: int, seed: int, candidates: str) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = story_batch(env, batch, length, seed)
        other = torch.randperm(batch, generator=env.generator(seed + 1)).to(env.device)
        chosen = (torch.tensor(INDUCTION_CANDIDATES) if candidates == "names"
                  else torch.arange(FIRST_NAME_TOKEN - 40, FIRST_NAME_TOKEN + 8))  # some names and some words
        return {"model": env.model(MODEL), "tokens": tokens, "other": other, "candidates": chosen.to(env.device)}

    return inputs


def _recovered_case(clean: float, baseline: float, shape: tuple[int, ...], seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        scrubbed = clean + (baseline - clean) * torch.rand(shape, generator=env.generator(seed)) * 1.2 - 0.1
        return {"clean": clean, "scrubbed": scrubbed.to(env.device), "baseline": baseline}

    return inputs


# ---- section 4: splitting a head's inputs ---------------------------------------------------------------------------
def _components_case(model: str, batch: int, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = (story_batch(env, batch, length, seed) if model == MODEL
                  else _random_tokens(env, model, batch, length, seed))
        return {"model": env.model(model), "tokens": tokens}

    return inputs


def _assemble_case(n_heads: int, size: int, d_model: int, seed: int, spec: dict[str, dict[str, str]]) -> InputBuilder:
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


def _run_qkv_case(model: str, layer: int, head: int, batch: int, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        def tokens(offset: int) -> torch.Tensor:
            return (story_batch(env, batch, length, seed + offset) if model == MODEL
                    else _random_tokens(env, model, batch, length, seed + offset))

        qkv = torch.stack([_resid_pre(env, model, layer, tokens(i)) for i in (1, 2, 3)])
        return {"model": env.model(model), "tokens": tokens(0), "qkv_inputs": qkv, "layer": layer, "head": head}

    return inputs


def _head_output_case(model: str, layer: int, head: int, batch: int, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        def resid(offset: int) -> torch.Tensor:
            tokens = (story_batch(env, batch, length, seed + offset) if model == MODEL
                      else _random_tokens(env, model, batch, length, seed + offset))
            return _resid_pre(env, model, layer, tokens)

        return {"model": env.model(model), "layer": layer, "head": head, "q_input": resid(0), "k_input": resid(1),
                "v_input": resid(2)}

    return inputs


# ---- section 5: the bonus path --------------------------------------------------------------------------------------
def _prev_value_case(model: str, head: int, batch: int, length: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        def tokens(offset: int) -> torch.Tensor:
            return (story_batch(env, batch, length, seed + offset) if model == MODEL
                    else _random_tokens(env, model, batch, length, seed + offset))

        return {"model": env.model(model), "head": head, "tokens": tokens(0), "other_tokens": tokens(1)}

    return inputs


# ---- sections 6-7: feature-matched resampling, error bars -----------------------------------------------------------
def _matched_case(kind: str, size: int, seed: int) -> InputBuilder:
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


def _standard_error_case(n_resamplings: int, n_hypotheses: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        centres = 2 + 4 * torch.rand(n_hypotheses, generator=env.generator(seed))
        losses = centres + 0.1 * torch.randn(n_resamplings, n_hypotheses, generator=env.generator(seed + 1))
        return {"losses": losses.to(env.device)}

    return inputs


# ---- section 6: hypotheses as data ----------------------------------------------------------------------------------
def _components(n_heads: int) -> list[str]:
    return ["embed", *[f"L0H{h}" for h in range(n_heads)], "b_O0"]


def _keep(kept: list[str], source: str, n_heads: int = 4) -> dict[str, str]:
    return {c: ("orig" if c in kept else source) for c in _components(n_heads)}


SCRUB_CASES: dict[str, tuple[int, int, int, int, dict[str, dict]]] = {
    # label: (stories, tokens, resamplings, seed, hypotheses)
    "4 hypotheses, 2 resamplings, 6 stories of 48 tokens": (6, 48, 2, 431, {
        "clean": {},
        "value keeps the embedding": {"v": _keep(["embed"], "A"), "groups": {"A": "sequence"}},
        "key from B, query from A": {"q": _keep([], "A"), "k": _keep([], "B")},
        "L1H0 scrubbed": {x: _keep([], "A") for x in "qkv"},
    }),
    "3 hypotheses, 3 resamplings, 5 stories of 64 tokens": (5, 64, 3, 432, {
        "query keeps L0H1 and b_O0": {"q": _keep(["L0H1", "b_O0"], "B")},
        "value from A, key's L0H0 from B": {"v": _keep([], "A"), "k": {"L0H0": "B"}},
        "everything from B": {x: _keep([], "B") for x in "qkv"},
    }),
}


def _scrub_case(label: str, names_as_candidates: bool = True, n_resamplings: int | None = None) -> InputBuilder:
    batch, length, resamplings, seed, hypotheses = SCRUB_CASES[label]

    def inputs(env: GradingEnv) -> dict[str, Any]:
        tokens = story_batch(env, batch, length, seed)
        size = batch * (length - 1)
        generator = env.generator(seed + 1)
        draws = [{source: torch.randint(0, size, (batch, length - 1), generator=generator).to(env.device)
                  for source in ("A", "B")} for _ in range(n_resamplings or resamplings)]
        chosen = (torch.tensor(INDUCTION_CANDIDATES) if names_as_candidates
                  else torch.arange(FIRST_NAME_TOKEN - 40, FIRST_NAME_TOKEN + 8))
        return {"model": env.model(MODEL), "tokens": tokens, "candidates": chosen.to(env.device),
                "hypotheses": {name: {key: dict(value) for key, value in h.items()} for name, h in hypotheses.items()},
                "resamplings": draws}

    return inputs


# ---- section 8: the capstone, judged by what the learner's hypotheses recover ----------------------------------------
GROUP_KINDS = ("sequence", "token", "previous token", "any position")
FEATURE_KINDS = ("token", "previous token")
LADDER_FLOOR = 0.90
"""Every rung of the learner's ladder must recover at least this fraction. The course's ladder recovers between
about 96% and 100% on the grading cases and in the notebook (tests/days/test_day3_problems.py asserts a margin)."""
REFUTED_CEILING = 0.50
REFINED_FLOOR = 0.85
NAIVE_CEILING = 0.25
CAPSTONE_CASES = {"40 stories, 2 resamplings, seed 0": (40, 128, 2, 0, 441),
                  "64 stories of 80 tokens, 3 resamplings, seed 10": (64, 80, 3, 10, 442)}


def _capstone_case(label: str) -> InputBuilder:
    batch, length, n_resamplings, seed, story_seed = CAPSTONE_CASES[label]

    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"model": env.model(MODEL), "tokens": story_batch(env, batch, length, story_seed),
                "candidates": torch.tensor(INDUCTION_CANDIDATES).to(env.device), "n_resamplings": n_resamplings,
                "seed": seed}

    return inputs


def _capstone_facts(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"components": _components(inputs["model"].cfg.n_heads)}


def _hypothesis_problem(name: str, entry: Any, components: list[str]) -> str | None:
    """What is malformed in one entry of the capstone's output, or None."""
    if not isinstance(entry, dict) or set(entry) != {"hypothesis", "recovered", "standard_error"}:
        return f"output[{name!r}] must be a dict with the keys 'hypothesis', 'recovered' and 'standard_error'"
    for key in ("recovered", "standard_error"):
        if type(entry[key]) is not float or not math.isfinite(entry[key]):
            return f"output[{name!r}][{key!r}] must be a finite Python float, got {entry[key]!r}"
    if entry["standard_error"] < 0:
        return f"output[{name!r}]['standard_error'] is negative"
    hypothesis = entry["hypothesis"]
    if not isinstance(hypothesis, dict) or not set(hypothesis) <= {"q", "k", "v", "groups"}:
        return f"the hypothesis {name!r} must be a dict with keys among 'q', 'k', 'v' and 'groups'"
    groups = hypothesis.get("groups", {})
    if not isinstance(groups, dict) or any(kind not in GROUP_KINDS for kind in groups.values()):
        return f"the groups of {name!r} must map group names to kinds among {GROUP_KINDS}, got {groups!r}"
    for which in "qkv":
        sources = hypothesis.get(which, {})
        if not isinstance(sources, dict) or not set(sources) <= set(components):
            return f"hypothesis {name!r}: {which!r} must map component names among {components} to sources"
        unknown = sorted({source for source in sources.values() if source != "orig" and source not in groups})
        if unknown:
            return (f"hypothesis {name!r}: the sources {unknown} of {which!r} are not in its 'groups': name the kind "
                    "of every group a hypothesis uses")
    return None


def _resampled(hypothesis: dict) -> set[tuple[str, str]]:
    return {(which, component) for which in "qkv" for component, source in hypothesis.get(which, {}).items()
            if source != "orig"}


def _kinds(hypothesis: dict) -> set[str]:
    used = {source for which in "qkv" for source in hypothesis.get(which, {}).values() if source != "orig"}
    return {hypothesis["groups"][source] for source in used}


def _capstone_valid(output: Any, facts: dict[str, Any]) -> str | None:
    components = facts["components"]
    if not isinstance(output, dict):
        return f"capstone must return a dict: hypothesis name -> its result, got {type(output).__name__}"
    rungs = [f"ladder {i}" for i in range(1, len(output) + 1) if f"ladder {i}" in output]
    missing = [name for name in ("ladder 1", "ladder 2", "ladder 3", "ladder 4", "refuted", "naive", "refined")
               if name not in output]
    if missing:
        return f"capstone's output has no {missing}: it needs at least four ladder rungs, 'refuted', 'naive', 'refined'"
    for name, entry in output.items():
        problem = _hypothesis_problem(str(name), entry, components)
        if problem:
            return problem
    hypotheses = {name: entry["hypothesis"] for name, entry in output.items()}
    recovered = {name: entry["recovered"] for name, entry in output.items()}
    for lower, higher in zip(rungs, rungs[1:]):
        if not _resampled(hypotheses[lower]) < _resampled(hypotheses[higher]):
            return (f"{higher!r} is not more specific than {lower!r}: it must resample every component {lower!r} "
                    "resamples, and at least one more")
    top = hypotheses[rungs[-1]]
    for which in "qkv":
        kept = len(components) - sum(1 for w, _ in _resampled(top) if w == which)
        if kept > 1:
            return (f"the top rung {rungs[-1]!r} keeps {kept} components of L1H0's {which!r} input from the original: "
                    "the top of the ladder keeps at most one component of each input")
    for name in rungs:
        if recovered[name] < LADDER_FLOOR:
            return (f"{name!r} recovers {recovered[name]:.1%} of the loss, below the {LADDER_FLOOR:.0%} every rung "
                    "must reach: is a component it resamples one L1H0 needs, or is it resampled from the wrong kind "
                    "of group?")
    if recovered["refuted"] >= REFUTED_CEILING:
        return (f"'refuted' recovers {recovered['refuted']:.1%}, at least {REFUTED_CEILING:.0%}: the data do not "
                "refute it. "
                "Write a claim that contradicts the induction mechanism (what would L1H0 read if it were another kind "
                "of head?)")
    naive, refined = hypotheses["naive"], hypotheses["refined"]
    if not _resampled(naive) or _resampled(naive) != _resampled(refined):
        return "'naive' and 'refined' must resample the same components of the same inputs (and at least one)"
    if _kinds(naive) != {"any position"} or not _kinds(refined) <= set(FEATURE_KINDS):
        return ("'naive' must resample from groups of kind 'any position', 'refined' from groups that keep a feature "
                f"({' or '.join(repr(kind) for kind in FEATURE_KINDS)})")
    if recovered["refined"] < REFINED_FLOOR:
        return (f"'refined' recovers {recovered['refined']:.1%}, below {REFINED_FLOOR:.0%}: does its feature match "
                "what "
                "that input really reads?")
    if recovered["naive"] > NAIVE_CEILING:
        return (f"'naive' recovers {recovered['naive']:.1%}, above {NAIVE_CEILING:.0%}: resample an input L1H0 "
                "needs, so "
                "that keeping its feature makes the difference")
    return None


CAPSTONE_CONTRACT = Contract(valid=_capstone_valid, facts=_capstone_facts, fresh=lambda inputs: dict(inputs),
                             reseed=lambda inputs, k: dict(inputs), distribution=lambda trials, facts, alpha: None,
                             trials=0, distribution_cases=())


# ---- the mistakes the grader names: what each returns is solutions/oracles/day3.py's, stored with the references -----
MISTAKES = {
    "candidate_mask": Mistake("This is the mask of the token after each position (the target): a candidate position "
                              "is one whose own input token is a candidate.", "mask_of_targets"),
    "loss_on_candidates": Mistake("This is the mean of the per-sequence means: pool every selected position of the "
                                  "batch, each counting once.", "per_sequence_means"),
    "scrub_all_inputs_loss": Mistake("This is the loss with the labels resampled too (the other sequences' targets "
                                     "and candidate positions): keep the original's, only what the model reads is "
                                     "another sequence.", "labels_scrubbed"),
    "percent_loss_recovered": Mistake("This is the fraction times 100: return a fraction (1.0 when everything is "
                                      "recovered), not a percentage.", "percent"),
    "head q and k swapped": Mistake("This is the head with its query and key inputs swapped: queries are read from "
                                    "q_input, keys from k_input.",
                                    "head_q_and_k_swapped"),
    "head value from the query": Mistake("This is the head reading its values from q_input: values come from "
                                         "v_input.", "head_value_from_the_query"),
    "head positions in the value": Mistake("This is the head with positions added to its value input too: with "
                                           "shortformer positions, only the query and key inputs get them.",
                                           "head_positions_in_the_value"),
    "prev path position 0": Mistake("This reads, at position 0, the value of `tokens` at position 0 itself: position 0 "
                                    "has no previous position, so it reads values of other_tokens only.",
                                    "prev_path_position_0_own"),
}


CHECKS = [
    Check(
        name="inputs_and_targets",
        cases={"batch 4, 20 tokens": _shift_case(4, 20, 301), "batch 7, 33 tokens": _shift_case(7, 33, 302)},
        exact_types=True, hints=(
            "A language model predicts the next token: which tokens can it read, and which can it be scored on?",
            "Drop the last token to get what the model reads, and the first token to get what each position is scored"
            " on.",
            "inputs are tokens[:, :-1] (every position but the last) and targets tokens[:, 1:] (every position but "
            "the first): the prediction made at position i is scored on the token at position i + 1."),
    ),
    Check(
        name="candidate_mask",
        cases={"names, batch 5, 40 tokens": _mask_case(5, 40, 311, "names"),
         "random candidates, other vocabulary, batch 3, 25 tokens": _mask_case(3, 25, 312, "random"),
         "random candidates, toy-gpt's 296 tokens, batch 4, 30 tokens": _mask_case(4, 30, 313, "random, larger")},
        exact_types=True, hints=(
            "Is a candidate position decided by the token the model reads there or by the token it must predict?",
            "Build a yes/no table over the vocabulary marking the candidates, and look up each input token in it.",
            "Index a table of d_vocab booleans (True at the candidates) by the *input* tokens themselves "
            "(is_candidate[inputs]), not by the targets; the mask has the inputs' shape."),
        mistakes=(MISTAKES["candidate_mask"],),
    ),
    Check(
        name="per_position_loss",
        cases={"induction-2l, batch 3, 30 tokens": _loss_case(MODEL, 3, 30, 321),
         "toy-gpt, batch 2, 12 tokens": _loss_case(TOY_GPT, 2, 12, 322)},
        exact_types=True, hints=(
            "The targets are already aligned with the inputs: what is the loss at one position?",
            "Run the model on the inputs, turn its logits into log-probabilities and read, at every position, that of"
            " its target; negate.",
            "Run the model on the inputs, take log_softmax over the vocabulary and gather each position's target "
            "(targets are already shifted: no further [:, 1:]); negate."),
    ),
    Check(
        name="loss_on_candidates",
        cases={"batch 6, 30 positions": _candidate_loss_case(6, 30, 331, 0.3),
         "batch 3, 50 positions": _candidate_loss_case(3, 50, 332, 0.15)},
        exact_types=True, hints=(
            "Should each candidate position count once, or each sequence?",
            "Pool the losses of all selected positions of the whole batch and average them together.",
            "losses[mask].mean(): pool all selected positions of the batch, each counting once (not the mean of "
            "per-sequence means, not the mean over all positions of the masked losses)."),
        mistakes=(MISTAKES["loss_on_candidates"],),
    ),
    Check(
        name="sample_groups",
        cases={"q, k in group A; v in group B; n 50": _groups_case({"q": "A", "k": "A", "v": "B"}, {"A": 11, "B": 22},
                                                                   50),
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
    Check(
        name="scrub_all_inputs_loss",
        cases={"names, batch 6, 128 tokens": _scrub_all_case(6, 128, 341, "names"),
         "names and words, batch 9, 96 tokens": _scrub_all_case(9, 96, 342, "mixed")},
        exact_types=True, hints=(
            "When every input is resampled, which parts of the question stay the original's?",
            "Run the model on the resampled sequences, but score it on the original sequences' targets at the "
            "original candidate positions.",
            "Run the model on whole resampled sequences, inputs[other], but keep the original targets and the "
            "candidate mask of the original inputs: the labels are not scrubbed."),
        mistakes=(MISTAKES["scrub_all_inputs_loss"],),
    ),
    Check(
        name="percent_loss_recovered",
        cases={"5 hypotheses": _recovered_case(1.8, 6.1, (5,), 351),
               "a 3 x 4 table": _recovered_case(0.4, 2.5, (3, 4), 352)},
        hints=(
            "On a scale where the clean model scores 1 and the baseline 0, where does a scrubbed loss fall?",
            "Take how much loss the scrubbing removes from the baseline, relative to how much the clean model "
            "removes.",
            "(baseline - scrubbed) / (baseline - clean): 1 when the scrubbed loss equals the clean one, 0 when it is "
            "as bad as the baseline."),
        mistakes=(MISTAKES["percent_loss_recovered"],),
    ),
    Check(
        name="layer1_input_components",
        cases={"induction-2l (4 heads), batch 3, 16 tokens": _components_case(MODEL, 3, 16, 361),
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
    Check(
        name="assemble_qkv_inputs",
        cases={"6 components, q/k/v specs differ, 7 x 7": _assemble_case(
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
    Check(
        name="run_with_qkv_inputs",
        cases={"induction-2l, L1H0, batch 3, 24 tokens": _run_qkv_case(MODEL, 1, 0, 3, 24, 381),
         "induction-2l, L0H2, batch 2, 17 tokens": _run_qkv_case(MODEL, 0, 2, 2, 17, 382)},
        exact_types=True, hints=(
            "How can one head's query, key and value inputs be set separately, and what must the model look like "
            "afterwards?",
            "Switch on the model's split inputs, hook the three input hooks of the layer to replace only that head's "
            "inputs, and switch the split off again.",
            "With model.set_use_split_qkv_input(True), hook blocks.{layer}.hook_q_input, hook_k_input and "
            "hook_v_input and replace only [:, :, head] with qkv_inputs[0], [1], [2]; don't add positions (the model "
            "adds them); turn split inputs off again in a finally block, so that a failing run leaves the model as it "
            "was."),
        atol=1e-3,
    ),
    Check(
        name="head_output_from_inputs",
        cases={"induction-2l, L1H0, batch 2, 20 tokens": _head_output_case(MODEL, 1, 0, 2, 20, 391),
         "induction-2l, L0H3, batch 3, 13 tokens": _head_output_case(MODEL, 0, 3, 3, 13, 392),
         "array-2l1h, L1H0, batch 2, 11 tokens": _head_output_case(OTHER_MODEL, 1, 0, 2, 11, 393)},
        exact_types=True, axes=("batch", "position", "d_model"), hints=(
            "Which of a head's three inputs get the position embedding in a shortformer model, and which biases does "
            "a head add?",
            "Add positions to the query and key inputs only, compute queries, keys and values with their biases, "
            "score, mask and normalise, then mix the values and apply the output weights.",
            "Add W_pos[:pos] to the query and key inputs (not the value input: shortformer), use the biases b_Q, b_K,"
            " b_V, scale scores by sqrt(d_head), mask keys after the query, softmax over keys, then z @ W_O (no b_O)."),
        mistakes=(MISTAKES["head q and k swapped"], MISTAKES["head value from the query"],
                  MISTAKES["head positions in the value"]),
    ),
    Check(
        name="matched_resample",
        cases={"40 small integers": _matched_case("small ints", 40, 411),
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
    Check(
        name="mean_and_standard_error",
        cases={"4 resamplings x 6 hypotheses": _standard_error_case(4, 6, 421),
         "3 resamplings x 10 hypotheses": _standard_error_case(3, 10, 422)},
        hints=(
            "How uncertain is a mean of a few resamplings, and which standard deviation estimates it without bias?",
            "Average over the resamplings, and divide their unbiased standard deviation by the square root of their "
            "number.",
            "Mean over resamplings (dim 0); standard error = unbiased standard deviation (n - 1) over dim 0, divided "
            "by sqrt(n)."),
    ),
    Check(
        name="scrub_hypotheses",
        cases={label: _scrub_case(label) for label in SCRUB_CASES} | {
            "names and words as candidates, 2 resamplings": _scrub_case(
                "3 hypotheses, 3 resamplings, 5 stories of 64 tokens", names_as_candidates=False, n_resamplings=2),
            "one resampling (raises ValueError)": Raises(ValueError, _scrub_case(
                "4 hypotheses, 2 resamplings, 6 stories of 48 tokens", n_resamplings=1))},
        exact_types=True, forward_passes=1, hints=(
            "What stays the same from one hypothesis to the next, and what is the only part of the model that "
            "changes?",
            "Run the model once and keep what every hypothesis shares: the layer-0 components, and the final residual "
            "stream without L1H0's output. Then for each hypothesis and resampling, assemble L1H0's three inputs "
            "from the components (gathered through the source's flat indices where the hypothesis names a source), "
            "compute the head by hand, add its output back, and score the candidates.",
            "One run_with_cache of the inputs (hook_embed, blocks.0.attn.hook_z, blocks.1.attn.hook_z, "
            "blocks.1.hook_resid_post); components[i].flatten(0, 1)[sources[name]] for a resampled component; "
            "head_output_from_inputs(model, 1, 0, q, k, v); logits = (resid_post - clean L1H0 output + new output) "
            "@ W_U + b_U at the candidate positions; mean_and_standard_error over the resamplings' losses."),
    ),
    Check(
        name="prev_value_path_output",
        cases={"induction-2l, L0H0, batch 3, 24 tokens": _prev_value_case(MODEL, 0, 3, 24, 401),
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
        mistakes=(MISTAKES["prev path position 0"],),
    ),
    Check(
        name="capstone",
        cases={label: _capstone_case(label) for label in CAPSTONE_CASES},
        contract=CAPSTONE_CONTRACT, timeout_s=120.0, hints=(
            "Which component of each of L1H0's inputs does the induction mechanism say it needs, and which feature "
            "of the input does each kept component carry?",
            "Start the ladder from one claim (the value needs only the embedding), add the query, then the key, then "
            "replace a kept component by a resampling that keeps only its feature; for the pair, resample one whole "
            "input from any position, then from positions that agree on the feature it reads; for the refuted one, "
            "claim that an input reads the wrong component. Measure them all with one call of scrub_hypotheses.",
            "keep(kept, group) = {c: 'orig' if c in kept else group}; rungs {'v': keep(['embed'])}, + 'q': "
            "keep(['embed']), + 'k': keep(['L0H0']), then the key's L0H0 from a 'previous token' group; naive "
            "'k': keep([], 'any') with kind 'any position', refined with kind 'previous token'; recovered = "
            "(baseline - loss) / (baseline - clean), standard error = s.e. / (baseline - clean)."),
    ),
]
