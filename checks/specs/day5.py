"""Checks of day 5 (circuit discovery on `toy-gpt`: IOI and number sequences).

Inputs come from the zoo model `toy-gpt`, the course's IOI and number-sequence generators (seeded by
`env.generator`), and, for the model-generic exercises, a small randomly initialised GPT-2-style model built here
from a seeded generator (another model, so that nothing specific to toy-gpt's 4 x 4 heads can pass). Positions,
corruptions and circuits are built here with plain torch, never with solution code.

Each check has named input cases varying what the exercise reads (batch, prompts, positions, thresholds, heads,
model). Batching exercises get forward-pass budgets (`Check.forward_passes`), the random corruption a contract, and
the mistakes learners typically make are declared (`Mistake`, computed here with plain torch) so that the grader names
them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import torch

from checks.spec import (Check, Choice, Contract, GradingEnv, Mistake, Raises, uniform_choice_test,
                         with_fresh_generators, with_seeded_generators)
from checks.specs.common import TOY_GPT, InputBuilder
from curriculum.data.ioi import END_POSITION, S2_POSITION, ioi_prompts
from curriculum.data.number_sequences import number_sequences
from curriculum.data.toy_vocab import NAMES, TOKEN_ID

if TYPE_CHECKING:  # imported where inputs are built: the grading supervisor never imports transformer_lens
    from transformer_lens import HookedTransformer

DAY = 5
MODULE = "day5_circuit_discovery"

MODEL = TOY_GPT
NAME_TOKENS = [TOKEN_ID[name] for name in NAMES]


# Budgets of forward passes (checks.pipeline.budgets) for the exercises whose point is batching. head_patching_by_position's
# solution runs 7 and 6 passes, a loop over positions about 18, a loop over every (layer, position, head) 256 and 72;
# greedy_prune_batched's solution runs 14, 22 and 5 where the sequential loop runs 17, 81 and 7. The budgets leave
# room for other ways of batching; the loops fail.
PATCHING_PASSES = 24
PRUNING_PASSES = 44


# ---- inputs ------------------------------------------------------------------------------------------------------------
def _random_gpt(env: GradingEnv, seed: int) -> HookedTransformer:
    """A fresh 3-layer, 2-head GPT-2-style model (LayerNorm, MLPs) over toy-gpt's vocabulary, weights drawn from a
    seeded generator (never the global RNG: HookedTransformerConfig's seed would reseed it)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=3, n_heads=2, d_model=48, d_head=16, d_mlp=96, d_vocab=296, n_ctx=24,
                                  act_fn="gelu_new", normalization_type="LN", positional_embedding_type="standard")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    generator = env.generator(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if name.endswith(".w") and "ln" in name:
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator))
            else:
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    return model.to(env.device).eval()


def _ioi(env: GradingEnv, n: int, seed: int, order: str = "mixed") -> dict[str, Any]:
    prompts = ioi_prompts(n, env.generator(seed), order=order)
    return {"tokens": prompts.tokens.to(env.device), "io": prompts.io_tokens.to(env.device),
            "s": prompts.s_tokens.to(env.device), "end": torch.full((n,), END_POSITION, device=env.device),
            "io_pos": prompts.io_positions, "s1_pos": prompts.s1_positions}


def _abc(tokens: torch.Tensor, seed_generator: torch.Generator) -> torch.Tensor:
    """S2 replaced by a random third name (built here directly, not with the exercise)."""
    corrupted = tokens.clone()
    for b in range(tokens.shape[0]):
        used = {int(tokens[b, S2_POSITION]), *tokens[b].tolist()}
        others = [t for t in NAME_TOKENS if t not in used]
        corrupted[b, S2_POSITION] = others[int(torch.randint(len(others), (1,), generator=seed_generator))]
    return corrupted


def _numbers(env: GradingEnv, n: int, length: int, seed: int) -> dict[str, Any]:
    tokens = number_sequences(n, length, env.generator(seed)).tokens.to(env.device)
    corrupted = tokens.clone()
    corrupted[:, -1] = tokens[:, -2]
    next_token = 2 * tokens[:, -1] - tokens[:, -2]
    return {"tokens": tokens, "corrupted": corrupted, "correct": next_token, "wrong": tokens[:, -1].clone(),
            "end": torch.full((n,), length, device=env.device)}


def _random_task(env: GradingEnv, batch: int, seq: int, seed: int) -> dict[str, Any]:
    """Random tokens, a corrupted twin differing in its second half, varied end positions."""
    generator = env.generator(seed)
    tokens = torch.randint(1, 296, (batch, seq), generator=generator)
    corrupted = tokens.clone()
    corrupted[:, seq // 2:] = torch.randint(1, 296, (batch, seq - seq // 2), generator=generator)
    end = torch.randint(seq - 3, seq, (batch,), generator=generator)
    return {"tokens": tokens.to(env.device), "corrupted": corrupted.to(env.device), "end": end.to(env.device)}


def _task(env: GradingEnv, kind: str, seed: int, batch: int) -> tuple[HookedTransformer, dict[str, Any]]:
    """(model, data) for the generic exercises: 'ioi' on toy-gpt, 'numbers' on toy-gpt, 'random' on a random GPT."""
    if kind == "ioi":
        data = _ioi(env, batch, seed)
        data["corrupted"] = _abc(data["tokens"].cpu(), env.generator(seed + 1)).to(env.device)
        data["correct"], data["wrong"] = data["io"], data["s"]
        return env.model(MODEL), data
    if kind == "numbers":
        return env.model(MODEL), _numbers(env, batch, 6, seed)
    if kind == "short numbers":
        return env.model(MODEL), _numbers(env, batch, 4, seed)
    model, data = _random_gpt(env, seed), _random_task(env, batch, 10, seed + 1)
    # Answers the random model cares about: its own top token on the clean prompt (correct) and on the corrupted one
    # (wrong), so that the clean and corrupted logit differences are far apart and normalised effects well defined.
    rows = torch.arange(batch, device=env.device)
    with torch.no_grad():
        clean_top = model(data["tokens"])[rows, data["end"]].argmax(-1)
        corrupted_logits = model(data["corrupted"])[rows, data["end"]]
        corrupted_logits[rows, clean_top] = float("-inf")
    data["correct"], data["wrong"] = clean_top, corrupted_logits.argmax(-1)
    return model, data


def _answers(data: dict[str, Any]) -> dict[str, Any]:
    return {"correct_tokens": data["correct"], "wrong_tokens": data["wrong"], "end_positions": data["end"]}


def _means(model: HookedTransformer, tokens: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_z"))
    return torch.stack([cache["z", layer].mean(dim=0) for layer in range(model.cfg.n_layers)])


def _random_keep(model: HookedTransformer, seq: int, seed: int, fraction: float, env: GradingEnv) -> torch.Tensor:
    shape = (model.cfg.n_layers, seq, model.cfg.n_heads)
    return (torch.rand(shape, generator=env.generator(seed)) < fraction).to(env.device)


def _head_nodes(model: HookedTransformer, seq: int, layers: list[int]) -> torch.Tensor:
    heads = [(layer, head) for layer in layers for head in range(model.cfg.n_heads)]
    nodes = torch.zeros(len(heads), model.cfg.n_layers, seq, model.cfg.n_heads, dtype=torch.bool)
    for i, (layer, head) in enumerate(heads):
        nodes[i, layer, :, head] = True
    return nodes


def _position_nodes(model: HookedTransformer, seq: int, layers: list[int], positions: list[int]) -> torch.Tensor:
    triples = [(layer, head, p) for layer in layers for head in range(model.cfg.n_heads) for p in positions]
    nodes = torch.zeros(len(triples), model.cfg.n_layers, seq, model.cfg.n_heads, dtype=torch.bool)
    for i, (layer, head, position) in enumerate(triples):
        nodes[i, layer, position, head] = True
    return nodes


# ---- cases per exercise --------------------------------------------------------------------------------------------------
def _positions_case(n: int, seed: int, order: str, padding: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        data = _ioi(env, n, seed, order)
        tokens = torch.cat([data["tokens"], torch.zeros(n, padding, dtype=torch.long, device=env.device)], dim=1)
        if padding:  # prompts of different lengths: drop the last word of every other prompt, pad with <bos>
            tokens[1::2, END_POSITION:] = tokens[1::2, END_POSITION:].roll(-1, dims=1)
            tokens[1::2, -1] = 0
        return {"tokens": tokens, "io_tokens": data["io"], "s_tokens": data["s"]}

    return inputs


def _abc_case(n: int, seed: int, order: str, permute: bool) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        data = _ioi(env, n, seed, order)
        positions = torch.stack([data["io_pos"], data["s1_pos"], torch.full((n,), S2_POSITION),
                                 torch.full((n,), END_POSITION)], dim=1).to(env.device)
        names = torch.tensor(NAME_TOKENS)
        if permute:
            names = names[torch.randperm(len(names), generator=env.generator(seed + 1))]
        return {"tokens": data["tokens"], "positions": positions, "name_tokens": names.to(env.device),
                "generator": env.generator(seed + 2)}

    return inputs


# abc_corruption is judged by its contract (checks.judging.contracts), not by one dictated torch.randint call: the tokens
# unchanged except at each prompt's S2, where C is a name of name_tokens other than the prompt's IO and S; reproducible
# from the generator; over ABC_TRIALS seeds, C uniform among those names for every prompt.
ABC_TRIALS = 600
ABC_DISTRIBUTION_CASE = "3 prompts, 8 names: third names over 600 seeds"


def _abc_distribution_case(env: GradingEnv) -> dict[str, Any]:
    """Three prompts and only 8 names (theirs and a few others), so that 600 draws test every option."""
    inputs = _abc_case(3, 505, "mixed", False)(env)
    tokens, positions = inputs["tokens"], inputs["positions"]
    used = {int(tokens[b, positions[b, i]]) for b in range(3) for i in (0, 2)}
    names = sorted(used) + [t for t in NAME_TOKENS if t not in used][: 8 - len(used)]
    return {**inputs, "name_tokens": torch.tensor(names).to(env.device)}


def _abc_facts(inputs: dict[str, Any]) -> dict[str, Any]:
    return {key: inputs[key].cpu() for key in ("tokens", "positions", "name_tokens")}


def _abc_valid(output: Any, facts: dict[str, Any]) -> str | None:
    tokens, positions, names = facts["tokens"], facts["positions"], facts["name_tokens"]
    if not isinstance(output, torch.Tensor) or output.shape != tokens.shape:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        return f"abc_corruption should return a tensor of the tokens' shape {tuple(tokens.shape)}, got {shape}"
    if output.dtype != torch.int64:
        return f"the output has dtype {output.dtype}; the docstring promises int64 tokens"
    rows = torch.arange(tokens.shape[0])
    s2 = positions[:, 2]
    changed = output != tokens
    changed[rows, s2] = False
    if changed.any():
        b, p = (int(i) for i in changed.nonzero()[0])
        return (f"prompt {b} changed at position {p} ({int(changed.sum())} positions in all), but only S2 (position "
                f"{int(s2[b])}, positions[:, 2]) may change")
    io, s, c = tokens[rows, positions[:, 0]], tokens[rows, s2], output[rows, s2]
    for b in range(tokens.shape[0]):
        if int(c[b]) not in names.tolist():
            return f"prompt {b}'s S2 holds token {int(c[b])}, which is not one of name_tokens"
        if int(c[b]) in (int(io[b]), int(s[b])):
            which = "IO" if int(c[b]) == int(io[b]) else "S"
            return (f"prompt {b}'s third name C is its {which} name (token {int(c[b])}): C must be neither the "
                    "prompt's IO nor its S")
    return None


def _abc_distribution(trials: list[Any], facts: dict[str, Any], alpha: float) -> str | None:
    tokens, positions, names = facts["tokens"], facts["positions"], facts["name_tokens"].tolist()
    rows = torch.arange(tokens.shape[0])
    io, s = tokens[rows, positions[:, 0]].tolist(), tokens[rows, positions[:, 2]].tolist()
    choices = [Choice(f"prompt {b}'s third name", tuple(t for t in names if t not in (io[b], s[b])))
               for b in range(len(io))]
    return uniform_choice_test(choices, [trial[rows, positions[:, 2]].tolist() for trial in trials], alpha)


ABC_CONTRACT = Contract(valid=_abc_valid, facts=_abc_facts, fresh=with_fresh_generators,
                        reseed=with_seeded_generators, distribution=_abc_distribution, trials=ABC_TRIALS,
                        distribution_cases=(ABC_DISTRIBUTION_CASE,))


def _logit_diff_ioi(env: GradingEnv) -> dict[str, Any]:
    data = _ioi(env, 10, 511)
    with torch.no_grad():
        logits = env.model(MODEL)(data["tokens"])
    return {"logits": logits, "correct_tokens": data["io"], "wrong_tokens": data["s"], "end_positions": data["end"]}


def _logit_diff_random(env: GradingEnv) -> dict[str, Any]:
    generator = env.generator(512)
    return {"logits": torch.randn(7, 9, 296, generator=generator).to(env.device),
            "correct_tokens": torch.randint(296, (7,), generator=generator).to(env.device),
            "wrong_tokens": torch.randint(296, (7,), generator=generator).to(env.device),
            "end_positions": torch.randint(9, (7,), generator=generator).to(env.device)}


def _range_case(n: int, seed: int, coverage: float) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        values = 3 * torch.randn(n, generator=env.generator(seed)) + 5
        return {"logit_diffs": values.to(env.device), "coverage": coverage}

    return inputs


def _read_case(kind: str, seed: int, batch: int, names: list[str]) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        return {"model": model, "tokens": data["tokens"], "names": names}

    return inputs


def _replace_case(kind: str, seed: int, batch: int, names: list[str]) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        generator = env.generator(seed + 7)
        values = {name: torch.randn(batch, model.cfg.d_head, generator=generator).to(env.device) for name in names}
        return {"model": model, "tokens": data["tokens"], "replacements": values}

    return inputs


def _effects_case(kind: str, seed: int, batch: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        return {"model": model, "tokens": data["tokens"], **_answers(data)}

    return inputs


def _patching_case(kind: str, seed: int, batch: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        return {"model": model, "clean_tokens": data["tokens"], "corrupted_tokens": data["corrupted"],
                **_answers(data)}

    return inputs


def _receivers_case(kind: str, seed: int, batch: int, receivers: list[tuple[int, int]], component: str) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {**_patching_case(kind, seed, batch)(env), "receivers": receivers, "component": component}

    return inputs


def _means_case(kind: str, seed: int, batch: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        return {"model": model, "reference_tokens": data["corrupted"]}

    return inputs


def _ablation_case(kind: str, seed: int, batch: int, fraction: float) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        return {"model": model, "tokens": data["tokens"], "means": _means(model, data["corrupted"]),
                "keep": _random_keep(model, data["tokens"].shape[1], seed + 3, fraction, env)}

    return inputs


def _faithfulness_case(kind: str, seed: int, batch: int, fraction: float) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        return {"model": model, "tokens": data["tokens"], "means": _means(model, data["corrupted"]),
                "keep": _random_keep(model, data["tokens"].shape[1], seed + 3, fraction, env), **_answers(data)}

    return inputs


def _pruning_case(kind: str, seed: int, batch: int, granularity: str, threshold: float,
                  speculation: int | None = None) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        seq = data["tokens"].shape[1]
        if granularity == "heads":  # the number-sequence study's order: last layer first
            nodes = _head_nodes(model, seq, list(range(model.cfg.n_layers - 1, -1, -1)))
        else:  # (head, position) nodes at every position, first layer first
            nodes = _position_nodes(model, seq, list(range(model.cfg.n_layers)), list(range(seq)))
        case = {"model": model, "tokens": data["tokens"], "means": _means(model, data["corrupted"]),
                **_answers(data), "nodes": nodes.to(env.device), "threshold": threshold}
        if speculation is not None:
            case["speculation"] = speculation
        return case

    return inputs


def _minimality_case(kind: str, seed: int, batch: int, fraction: float) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        nodes = _head_nodes(model, data["tokens"].shape[1], list(range(model.cfg.n_layers)))
        kept = torch.rand(nodes.shape[0], generator=env.generator(seed + 5)) < fraction
        return {"model": model, "tokens": data["tokens"], "means": _means(model, data["corrupted"]),
                **_answers(data), "nodes": nodes.to(env.device), "kept": kept.to(env.device)}

    return inputs


def _number_case(n: int, length: int, seed: int) -> InputBuilder:
    return lambda env: {"tokens": _numbers(env, n, length, seed)["tokens"]}


def _name_effects_case(kind: str, seed: int, batch: int, n_names: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        if kind == "ioi":
            names = torch.tensor(NAME_TOKENS[:n_names])
        else:  # the answers among some other tokens
            others = torch.randperm(model.cfg.d_vocab, generator=env.generator(seed + 4))[:n_names]
            names = torch.cat([data["correct"].cpu(), data["wrong"].cpu(), others]).unique()
        return {"model": model, "tokens": data["tokens"], "io_tokens": data["correct"], "s_tokens": data["wrong"],
                "name_tokens": names.to(env.device), "end_positions": data["end"]}

    return inputs


def _mlp_path_case(kind: str, seed: int, batch: int, mlp_layer: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {**_patching_case(kind, seed, batch)(env), "mlp_layer": mlp_layer}

    return inputs


def _heads_and_mlps_case(kind: str, seed: int, batch: int, head_share: float, mlp_share: float) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model, data = _task(env, kind, seed, batch)
        seq = data["tokens"].shape[1]
        keep_mlps = torch.rand(model.cfg.n_layers, seq, generator=env.generator(seed + 6)) < mlp_share
        return {"model": model, "tokens": data["tokens"], "reference_tokens": data["corrupted"],
                "keep_heads": _random_keep(model, seq, seed + 3, head_share, env), "keep_mlps": keep_mlps.to(env.device)}

    return inputs


# ---- the mistakes the grader names: what each returns is solutions/oracles/day5.py's, stored with the references -----
READ_AT_LAST = ("These are the logit differences at the last position of every prompt: read each prompt at its own "
                "end position (end_positions), where its answer is predicted.")
SIGN_FLIPPED = "This is the wrong token's logit minus the correct one's: the sign is flipped."
QUANTILES_AT_COVERAGE = ("These are the quantiles at 1 - coverage and coverage: that interval holds 2 * coverage - 1 "
                         "of the values; leave (1 - coverage) / 2 out at each end.")
END_IS_LAST_COLUMN = ("Your end positions are the last column: in a right-padded prompt the end is its last token that "
                      "is not padding (id 0).")
MEANS_OVER_POSITIONS = ("Every position got the same mean: average over the prompts only, keeping positions apart (a "
                        "head's typical output depends on where it is).")
ABLATION_INVERTED = ("These are the logits with the KEPT slices ablated and the others left alone: the mask is "
                     "inverted (keep True means the slice stays as it is).")
FRACTION_NOT_PERCENT = "Your value is the ratio of the two logit differences, not a percentage: multiply by 100."
STEP_OF_ONE = ("Your next number is the last one plus 1: the step is the difference of the last two numbers, not "
               "always 1.")


# ---- the checks ------------------------------------------------------------------------------------------------------------
PATCHING_TOLERANCE = {"atol": 2e-4, "rtol": 1e-3}

CHECKS = [
    Check("ioi_positions", {
        "12 mixed prompts": _positions_case(12, 501, "mixed", 0),
        "9 BABA prompts, right-padded to 19 tokens, every other one a word shorter": _positions_case(9, 502, "BABA", 3),
    }, exact_types=True, axes=("prompt", "role (IO, S1, S2, end)"), mistakes=(Mistake(END_IS_LAST_COLUMN, "end_is_last_column"),),
        hints=(
        "In an IOI prompt, which name appears once, which twice, and where does the prompt end?",
        "Find the indirect object and the subject by their tokens: the subject's first and second occurrence, and the"
        " last real token as the end.",
        "IO, S1 = first S, S2 = second S, end = last non-zero token; ABBA and BABA swap IO and S1.")),
    Check("abc_corruption", {
        "10 mixed prompts, names in vocabulary order": _abc_case(10, 503, "mixed", False),
        "7 ABBA prompts, names shuffled": _abc_case(7, 504, "ABBA", True),
        ABC_DISTRIBUTION_CASE: _abc_distribution_case,
    }, contract=ABC_CONTRACT, hints=(
        "What must the third name be different from, and where in the prompt does it go?",
        "For each prompt draw, from the generator, one of the names that are neither its indirect object nor its "
        "subject, uniformly, and write it at the second subject position only.",
        "One draw for the whole batch, torch.randint(0, len(name_tokens) - 2, (batch,), generator=generator); draw d "
        "picks the d-th of the names left once the prompt's IO and S are removed (in the given order); write at "
        "positions[:, 2] (S2) only.")),
    Check("logit_diff", {
        "toy-gpt, 10 IOI prompts": _logit_diff_ioi,
        "random logits, 7 prompts, varied end positions": _logit_diff_random,
    }, atol=1e-5, exact_types=True, axes=("prompt",), mistakes=(Mistake(READ_AT_LAST, "logit_diff_at_last_position"),
                                     Mistake(SIGN_FLIPPED, "logit_diff_flipped")),
        hints=(
        "Where in each prompt is the answer predicted, and which two logits does the measure compare?",
        "At each prompt's own end position, subtract the wrong name's logit from the correct name's.",
        "Read each prompt's logits at its own end position: correct minus wrong, one value per prompt.")),
    Check("usual_range", {
        "50 values, coverage 0.9": _range_case(50, 513, 0.9),
        "23 values, coverage 0.5": _range_case(23, 514, 0.5),
    }, atol=1e-5, axes=("(low, high)",), mistakes=(Mistake(QUANTILES_AT_COVERAGE, "range_at_coverage"),),
        hints=(
        "Which two quantiles bound the central share of a distribution?",
        "Take the quantiles half of the left-out share from each end.",
        "torch.quantile at (1 - coverage) / 2 and (1 + coverage) / 2.")),
    Check("read_nodes", {
        "toy-gpt, 6 IOI prompts, 3 nodes": _read_case("ioi", 515, 6, ["a0.h1.t12", "a3.h2.t15", "a2.h0.t3"]),
        "random 3x2 model, 5 prompts, 2 nodes": _read_case("random", 516, 5, ["a2.h1.t4", "a1.h0.t9"]),
    }, forward_passes=1, axes=("node", "prompt", "d_head"), hints=(
        "What is a node here, and which single activation holds every node's value?",
        "Run the model once with a cache of the attention z of the layers you need, and read each node's head and "
        "position in the given order.",
        "a{L}.h{H}.t{p} is blocks.L.attn.hook_z[:, p, H]; stack the nodes in the order given.")),
    Check("run_with_nodes_replaced", {
        "toy-gpt, 5 IOI prompts, 2 nodes": _replace_case("ioi", 517, 5, ["a1.h3.t11", "a2.h2.t15"]),
        "random 3x2 model, 4 prompts, 3 nodes": _replace_case("random", 518, 4, ["a0.h1.t2", "a2.h0.t8", "a0.h0.t2"]),
    }, atol=1e-4, axes=("prompt", "position", "token"), hints=(
        "Which hook carries one head's output at one position, and what must stay untouched?",
        "Hook the attention z of each named node's layer and overwrite that node's position and head with the given "
        "value, nothing else.",
        "Replace hook_z[:, p, H] of layer L for each named node, nothing else, and return all logits.")),
    Check("direct_effects", {
        "toy-gpt, 8 IOI prompts": _effects_case("ioi", 519, 8),
        "random 3x2 model, 6 prompts, varied end positions": _effects_case("random", 520, 6),
    }, atol=1e-3, rtol=1e-3, axes=("component", "prompt"), hints=(
        "What does the final LayerNorm do to a component's contribution, and which part of it is linear once the "
        "scale is frozen?",
        "Centre each component, divide by the final LayerNorm's scale at the end position, apply its weight and "
        "project on the difference of the two answer directions.",
        "Centre each part, divide by ln_final.hook_scale at the end position, multiply by ln_final.w, project on "
        "W_U[:, correct] - W_U[:, wrong]; rows: embed, pos_embed, then per layer heads, b_O, MLP.")),
    Check("head_patching_by_position", {
        "toy-gpt, 4 IOI prompts, ABC corruption": _patching_case("ioi", 521, 4),
        "random 3x2 model, 5 prompts, second half corrupted": _patching_case("random", 522, 5),
    }, **PATCHING_TOLERANCE, timeout_s=120.0, forward_passes=PATCHING_PASSES,
        axes=("layer", "position", "head"),
        hints=(
            "Which run is patched into which, and how can you patch every head and position without a forward pass "
            "each?",
            "Patch clean head outputs into corrupted runs, many patches per batched forward pass, and normalise so "
            "that 0 is the corrupted and 1 the clean logit difference.",
            "Patch the CLEAN hook_z of one (layer, position, head) into the CORRUPTED run; 0 = corrupted, 1 = clean.")),
    Check("path_patching_to_logits", {
        "toy-gpt, 6 IOI prompts": _patching_case("ioi", 523, 6),
        "random 3x2 model, 5 prompts": _patching_case("random", 524, 5),
    }, **PATCHING_TOLERANCE, axes=("layer", "head"), hints=(
        "How do you let a head's effect reach the logits only directly, not through the heads after it?",
        "Corrupt the sender only, keep every other head's output at its clean value, let the MLPs recompute, and "
        "normalise the logit difference.",
        "Corrupt the sender's hook_z only, freeze every other head's hook_z at its clean value, let MLPs recompute; "
        "(LD - LD_clean) / (LD_clean - LD_corrupted).")),
    Check("path_patching_to_receivers", {
        "toy-gpt, 6 IOI prompts, values of L3H0 and L3H2": _receivers_case("ioi", 525, 6, [(3, 0), (3, 2)], "v"),
        "toy-gpt, 5 number prompts, queries of L2H1 and L3H3": _receivers_case("numbers", 526, 5, [(2, 1), (3, 3)], "q"),
        "random 3x2 model, 4 prompts, keys of L1H1": _receivers_case("random", 527, 4, [(1, 1)], "k"),
    }, **PATCHING_TOLERANCE, axes=("layer", "head"), hints=(
        "How can a sender's effect be restricted to what it writes into some receivers' queries, keys or values?",
        "First record the receivers' inputs in a run with the sender corrupted and every other head frozen; then "
        "patch only those inputs into a clean run.",
        "Run 1 freezes all heads but the sender and records hook_q/k/v of the receivers; run 2 is a free clean run "
        "with only those receivers' q/k/v patched.")),
    Check("reference_means", {
        "toy-gpt, 20 ABC prompts": _means_case("ioi", 528, 20),
        "random 3x2 model, 9 prompts": _means_case("random", 529, 9),
    }, atol=1e-5, axes=("layer", "position", "head", "d_head"),
        mistakes=(Mistake(MEANS_OVER_POSITIONS, "means_over_positions_too"),), hints=(
        "Over what do you average to get a head's typical output at each position?",
        "Average each layer's attention z over the prompts, keeping positions apart.",
        "Average hook_z over the prompts (dim 0), separately at every position.")),
    Check("mean_ablated_logits", {
        "toy-gpt, 6 IOI prompts, 60% kept": _ablation_case("ioi", 530, 6, 0.6),
        "random 3x2 model, 5 prompts, 30% kept": _ablation_case("random", 531, 5, 0.3),
    }, atol=1e-4, axes=("prompt", "position", "token"),
        mistakes=(Mistake(ABLATION_INVERTED, "ablation_inverted"),), hints=(
        "What does ablating a node mean here, and what replaces its output?",
        "Hook each layer's attention z and, where a node is not kept, put in the reference mean for that position and"
        " head.",
        "Where keep is False, hook_z becomes means[layer] at that position and head; where True it stays.")),
    Check("faithfulness", {
        "toy-gpt, 8 IOI prompts, 70% kept": _faithfulness_case("ioi", 532, 8, 0.7),
        "toy-gpt, 7 number prompts, 40% kept": _faithfulness_case("numbers", 533, 7, 0.4),
    }, atol=1e-2, rtol=1e-3, exact_types=True, mistakes=(Mistake(FRACTION_NOT_PERCENT, "faithfulness_as_fraction"),), hints=(
        "How do you express how much of the model's behaviour a circuit keeps, as a percentage?",
        "Compare the mean logit difference of the ablated run with the full model's, as a percentage, returned as a "
        "plain number.",
        "100 * mean LD of the ablated run / mean LD of the full model, as a float.")),
    Check("greedy_prune_sequential", {
        "toy-gpt, 8 IOI prompts, 16 heads, T = 3": _pruning_case("ioi", 534, 8, "heads", 3.0),
        "toy-gpt, 6 prompts of 4 numbers, 80 (head, position) nodes, T = 10": _pruning_case("short numbers", 535, 6, "nodes", 10.0),
        "random 3x2 model, 5 prompts, 6 heads, T = 20": _pruning_case("random", 536, 5, "heads", 20.0),
    }, axes=("node",), hints=(
        "When is it safe to remove a node, and why does the order of removals matter?",
        "Visit the nodes in the given order and remove each one whose removal keeps the faithfulness loss under the "
        "threshold, given the removals so far.",
        "Go through the nodes in the given order; remove node i when 100 - faithfulness without it < T.")),
    Check("greedy_prune_batched", {
        "toy-gpt, 8 IOI prompts, 16 heads, T = 3, speculation 4": _pruning_case("ioi", 534, 8, "heads", 3.0, 4),
        "toy-gpt, 6 prompts of 4 numbers, 80 nodes, T = 10, speculation 5": _pruning_case("short numbers", 535, 6, "nodes", 10.0,
                                                                                    5),
        "random 3x2 model, 5 prompts, 6 heads, T = 20, speculation 3": _pruning_case("random", 536, 5, "heads", 20.0,
                                                                                     3),
    }, forward_passes=PRUNING_PASSES, axes=("node",), hints=(
        "How can several removal decisions share one forward pass and still give the sequential loop's answer?",
        "Batch the candidates after the last decision, each assuming the earlier ones removed; accept up to the first"
        " failure, keep that node and start the next batch after it.",
        "Candidate j of a pass assumes the earlier candidates were removed; stop at the first failure, keep that "
        "node, and start the next pass right after it: the result must equal the sequential loop's.")),
    Check("minimality", {
        "toy-gpt, 8 IOI prompts, head circuit": _minimality_case("ioi", 537, 8, 0.6),
        "toy-gpt, 6 number prompts, head circuit": _minimality_case("numbers", 538, 6, 0.7),
    }, atol=2e-2, rtol=1e-3, exact_types=True, axes=("node",), hints=(
        "How much does each kept node matter once the rest of the circuit is in place?",
        "For every kept node, compare the circuit's faithfulness with and without it; nodes not kept get zero.",
        "For each KEPT node: faithfulness of the circuit minus faithfulness without that node (percentage points); 0 "
        "for nodes not kept.")),
    Check("number_answer_tokens", {
        "10 prompts of 5 numbers": _number_case(10, 5, 539),
        "6 prompts of 8 numbers": _number_case(6, 8, 540),
    }, axes=("prompt", "(next, repeat)"), mistakes=(Mistake(STEP_OF_ONE, "next_is_last_plus_one"),),
        hints=(
        "In a counting sequence, what comes next, and what would repeating the last number look like?",
        "Take the step between the last two numbers, add it to the last one, and use the last token itself as the "
        "repeat.",
        "The step is last - previous; next = last + step; the repeat is the last token itself.")),
    Check("repeat_last_corruption", {
        "10 prompts of 5 numbers": _number_case(10, 5, 541),
        "6 prompts of 8 numbers": _number_case(6, 8, 542),
    }, axes=("prompt", "position"), hints=(
        "Which single position changes to make the prompt ask for a repeat, and what does it take?",
        "Copy the prompt and replace only its last position by the token before it.",
        "Only the last position changes: it takes the value at the position before it.")),
    Check("name_direct_effects", {
        "toy-gpt, 8 IOI prompts, 30 names": _name_effects_case("ioi", 543, 8, len(NAME_TOKENS)),
        "toy-gpt, 6 IOI prompts, the first 24 names": _name_effects_case("ioi", 544, 6, 24),
        "random 3x2 model, 6 prompts, varied end positions, 15 tokens as names": _name_effects_case("random", 545, 6,
                                                                                                   15),
    }, atol=1e-3, rtol=1e-3, axes=("component", "prompt", "(IO, S)"), hints=(
        "A difference of two logits hides whether a component raised one name or lowered the other: how would you "
        "measure each name on its own, without rewarding a component that lifts every name alike?",
        "Reuse the direct-effect decomposition, but project each component on two directions: the IO name's "
        "unembedding and the S name's, each minus the average unembedding of the names.",
        "Same stack as direct_effects (centred, divided by the frozen scale, times the LayerNorm weight); directions "
        "W_U[:, io] - W_U[:, names].mean(1) and W_U[:, s] - the same mean; stack the two projections last.")),
    Check("path_patching_to_mlp", {
        "toy-gpt, 6 IOI prompts, MLP of layer 3": _mlp_path_case("ioi", 546, 6, 3),
        "toy-gpt, 5 number prompts, MLP of layer 2": _mlp_path_case("numbers", 547, 5, 2),
        "random 3x2 model, 4 prompts, MLP of layer 1": _mlp_path_case("random", 548, 4, 1),
        "MLP of layer 4 in a 4-layer model (ValueError)": Raises(ValueError, _mlp_path_case("ioi", 549, 3, 4)),
    }, **PATCHING_TOLERANCE, timeout_s=120.0, axes=("layer", "head"), hints=(
        "An MLP is a function of its input: how can you let one head's corruption reach an MLP, and only through "
        "it reach the logits?",
        "As for receivers: a first run with the sender corrupted and every other head frozen clean records the "
        "MLP's output; a second, free clean run has that MLP's output replaced by the recording.",
        "Run 1: hook_z of the sender from the corrupted cache, of every other head from the clean cache; record "
        "blocks.L.hook_mlp_out. Run 2: clean, with hook_mlp_out set to the recording; normalise as "
        "path_patching_to_logits.")),
    Check("ablate_heads_and_mlps", {
        "toy-gpt, 6 IOI prompts, 60% of heads and half the MLP slots kept": _heads_and_mlps_case("ioi", 550, 6, 0.6,
                                                                                                 0.5),
        "toy-gpt, 5 number prompts, every head, 70% of MLP slots kept": _heads_and_mlps_case("numbers", 551, 5, 1.0,
                                                                                              0.7),
        "random 3x2 model, 5 prompts, 40% of heads, 40% of MLP slots": _heads_and_mlps_case("random", 552, 5, 0.4,
                                                                                            0.4),
    }, atol=1e-4, axes=("prompt", "position", "token"), hints=(
        "An MLP's output at one position can be a node too: what is its typical value, and where do you put it in?",
        "Average each head's output and each MLP's output over the reference prompts, per position; in the run, "
        "replace every slice that is not kept by its average.",
        "Means of hook_z and hook_mlp_out over reference_tokens (dim 0); hooks: where keep_heads[layer] is False, "
        "z becomes its mean; where keep_mlps[layer] is False, mlp_out does.")),
]
