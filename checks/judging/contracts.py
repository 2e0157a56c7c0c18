"""Contracts for random draws: judging a stochastic exercise by properties instead of one exact reference.

An exercise that draws at random (resampling indices, a permutation, a third name) has many correct outputs: any
correct way of drawing must pass, so its docstring can say *what* is drawn and leave *how* to the learner. Its check
sets `contract=Contract(...)`, and each case is then judged on three properties, never against the solution's draw:

- validity: every output the exercise returns satisfies `valid(output, facts)` (e.g. every drawn index has the same
  feature; a permutation is a permutation; C is neither IO nor S);
- reproducibility: two calls with generators in the same state return the same output, and a call leaves torch's
  global RNG as it found it (all randomness comes from the generator or seeds it is given);
- distribution (on the cases named in `distribution_cases`): `trials` calls, the k-th on `reseed(inputs, k)` (fresh
  generators or seeds), pass `distribution(outputs, facts, alpha)`, a statistical test whose probability of
  rejecting a correct implementation is at most `alpha` (the check states it: `false_rejection`).

`facts(inputs)` is the plain data the judge needs about the inputs (e.g. the feature). The worker computes it on
pristine inputs before any learner code runs and sends it with the inputs' fingerprints; the supervisor judges the
plain outputs against it, so no reference and no judging code ever runs where learner code does.

`uniform_choice_test` is the statistical test the course's contracts use: Hoeffding's inequality with a union bound,
exact for any number of trials (no asymptotic approximation), so the stated false-rejection probability holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

Facts = dict[str, Any]
OUTPUT, AGAIN, TRIALS, GLOBAL_RNG = "output", "again", "trials", "global_rng_changed"


@dataclass(frozen=True)
class Contract:
    """How a stochastic exercise is judged (see the module docstring).

    valid: (one output, facts) -> a message saying what is invalid, or None.
    facts: inputs -> plain data (tensors, numbers, dicts, lists) the judge needs.
    fresh: inputs -> the same inputs with their randomness reset to its initial state (a generator cloned at its
        state; seeds are plain and stay): called twice, it gives two calls that must return the same output.
    reseed: (inputs, k) -> the inputs of the k-th trial, each with its own fresh generator or seeds.
    distribution: (trial outputs, facts, alpha) -> a message when the draws are not distributed as the docstring
        says, or None; rejects a correct implementation with probability at most alpha.
    trials: how many trials each distribution case runs.
    distribution_cases: the labels of the cases the trials run on (small inputs, so that the test has power).
    false_rejection: alpha, the probability that a correct implementation fails the distribution test.
    """

    valid: Callable[[Any, Facts], "str | None"]
    facts: Callable[[dict[str, Any]], Facts]
    fresh: Callable[[dict[str, Any]], dict[str, Any]]
    reseed: Callable[[dict[str, Any], int], dict[str, Any]]
    distribution: Callable[[list[Any], Facts, float], "str | None"]
    trials: int
    distribution_cases: tuple[str, ...]
    false_rejection: float = 1e-6


def clone_generator(generator: torch.Generator) -> torch.Generator:
    """A new generator in `generator`'s current state (on its device)."""
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy


def with_fresh_generators(inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` with every torch.Generator replaced by a clone at its current state (`Contract.fresh`)."""
    return {key: clone_generator(value) if isinstance(value, torch.Generator) else value
            for key, value in inputs.items()}


def with_seeded_generators(inputs: dict[str, Any], k: int) -> dict[str, Any]:
    """`inputs` with every torch.Generator replaced by a new one seeded with 1_000_003 * (k + 1) (`Contract.reseed`)."""
    return {key: torch.Generator(device=value.device).manual_seed(1_000_003 * (k + 1))
            if isinstance(value, torch.Generator) else value for key, value in inputs.items()}


def run_contract(function: Callable[..., Any], contract: Contract, inputs: dict[str, Any], case: str) -> dict:
    """Call the learner's `function` as the contract asks, on one case: twice on the inputs in their initial state
    (the output, and the same call again), then, on a distribution case, once per trial. Returns plain data for the
    judge: {"output", "again", "trials" (on distribution cases), "global_rng_changed"}. The global RNG's state is
    compared around every call, in course code: using it is a reproducibility failure, not a crash."""
    before = torch.get_rng_state()
    output = function(**contract.fresh(inputs))
    again = function(**contract.fresh(inputs))
    trials = ([function(**contract.reseed(inputs, k)) for k in range(contract.trials)]
              if case in contract.distribution_cases else None)
    changed = not torch.equal(before, torch.get_rng_state())
    if changed:
        torch.set_rng_state(before)  # the exercise fails on it here; no audit needs to see it again
    result = {OUTPUT: output, AGAIN: again, GLOBAL_RNG: changed}
    if trials is not None:
        result[TRIALS] = trials
    return result


def contract_runner(function: Callable[..., Any], contract: Contract, case: str) -> Callable[..., dict]:
    """`function` wrapped for `call_learner`: called with the case's inputs, it runs the contract's calls."""

    def run(**inputs: Any) -> dict:
        return run_contract(function, contract, inputs, case)

    run.__name__ = getattr(function, "__name__", "exercise")
    run.__wrapped__ = function  # type: ignore[attr-defined]
    return run


def contract_verdict(contract: Contract, result: Any, facts: Facts, case: str, name: str) -> str | None:
    """What breaks the contract in `result` (from `run_contract`, as plain data), or None when it holds."""
    if not isinstance(result, dict) or OUTPUT not in result or AGAIN not in result:
        return f"grading {name} produced no result to judge (was the contract's runner bypassed?)"
    if result.get(GLOBAL_RNG):
        return (f"{name} used torch's global random number generator (torch.rand, torch.randint... without "
                "generator=): draw every random number from the generator (or seeds) it is given, so that a draw can "
                "be reproduced.")
    invalid = contract.valid(result[OUTPUT], facts)
    if invalid:
        return invalid
    if not _same(result[OUTPUT], result[AGAIN]):
        return (f"{name} is not reproducible: two calls with generators in the same state (the same seeds) returned "
                "different outputs. Draw every random number from the generator you are given, never from a new "
                "unseeded one, the clock or Python's random module.")
    trials = result.get(TRIALS)
    if case in contract.distribution_cases:
        if not isinstance(trials, list) or len(trials) != contract.trials:
            return f"grading {name} produced no trials to judge"
        for k, trial in enumerate(trials):
            invalid = contract.valid(trial, facts)
            if invalid:
                return f"with another generator seed (trial {k}): {invalid}"
        return contract.distribution(trials, facts, contract.false_rejection)
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and a.dtype == b.dtype and bool(torch.equal(a, b)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


# ---- the statistical test ----------------------------------------------------------------------------------------------
def hoeffding_radius(trials: int, cells: int, alpha: float) -> float:
    """The largest deviation of an observed frequency from its probability that, over `cells` frequencies of
    `trials` independent draws each, is exceeded anywhere with probability at most `alpha` (Hoeffding:
    P(|f - p| >= eps) <= 2 exp(-2 trials eps^2); a union bound over the cells)."""
    return math.sqrt(math.log(2 * cells / alpha) / (2 * trials))


@dataclass(frozen=True)
class Choice:
    """One random choice made in every trial: which of `options` (hashable values) it took, to be uniform among them.
    `what` names it in a message (e.g. "the index drawn for element 3")."""

    what: str
    options: tuple[Any, ...]


def uniform_choice_test(choices: Sequence[Choice], draws: Sequence[Sequence[Any]], alpha: float) -> str | None:
    """Whether each choice is uniform among its options over the trials: `draws[k][c]` is the option choice c took
    in trial k. Rejects (returns a message naming the choice, the option, its frequency and the expected one) when
    some option's frequency deviates from 1/len(options) by more than the Hoeffding radius; the probability of
    rejecting draws that are uniform and independent across trials is at most `alpha` (exactly, by Hoeffding's
    inequality and a union bound over every (choice, option) cell). A choice with one option is not tested."""
    tested = [(c, choice) for c, choice in enumerate(choices) if len(choice.options) > 1]
    cells = sum(len(choice.options) for _, choice in tested)
    if not tested:
        return None
    trials = len(draws)
    radius = hoeffding_radius(trials, cells, alpha)
    worst: tuple[float, str] | None = None
    for c, choice in tested:
        counts = {option: 0 for option in choice.options}
        for trial in draws:
            taken = trial[c]
            if taken in counts:
                counts[taken] += 1
        p = 1 / len(choice.options)
        for option, count in counts.items():
            deviation = abs(count / trials - p)
            if deviation > radius and (worst is None or deviation > worst[0]):
                worst = (deviation, f"{choice.what} took {option!r} in {count} of {trials} draws with different "
                                    f"generator seeds ({count / trials:.1%}), where a uniform draw among its "
                                    f"{len(choice.options)} options gives {p:.1%}")
    if worst is None:
        return None
    return (f"the draws are not uniform: {worst[1]}. (A correct implementation fails this test with probability at "
            f"most {alpha:g}.) Is every option reachable, and equally likely, whatever the seed?")
