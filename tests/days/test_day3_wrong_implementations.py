"""Day 3 grading rejects plausible wrong answers with a message that points at the mistake, by a clear margin, and
accepts correct answers written differently from the reference solution, with room to spare.

Each wrong implementation is a mistake learners make, several of them specific to causal scrubbing (labels
resampled too, one permutation for independent groups, positions scrubbed instead of sequences, biases or shortformer
positions forgotten). Grading must say "failed", the message (with the check's hint) must contain the phrase, and
the failing case's margin (error over tolerance) must be at least 10 (or at most 1 where a budget or a contract is
broken on right values). Each correct alternative (other ops, a loop,
an equivalent formula, float64 cast back, TransformerLens conveniences) must pass every case with a margin of at
most 0.1.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformer_lens.hook_points import HookPoint

from margins import CORRECT_MARGIN, all_hints, case_margin, grade, is_clear_rejection, margins

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _explained(outcome) -> str:
    """Everything grading said: the case that failed, the diagnosis and the course's hint."""
    return f"{outcome.case}\n{outcome.message}\n{all_hints(outcome)}"


def _loss(logits, targets):
    return -logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0]


# ---- inputs_and_targets -----------------------------------------------------------------------------------------------
def shift_the_wrong_way(tokens):
    return tokens[:, 1:], tokens[:, :-1]


def targets_not_shifted(tokens):
    return tokens[:, :-1], tokens[:, :-1]


def inputs_keep_the_last_position(tokens):
    return tokens, tokens[:, 1:]


def shift_along_the_batch(tokens):
    return tokens[:-1], tokens[1:]


# ---- candidate_mask ---------------------------------------------------------------------------------------------------
def _table(candidates, d_vocab, device):
    table = torch.zeros(d_vocab, dtype=torch.bool, device=device)
    table[candidates] = True
    return table


def mask_of_the_next_token(inputs, candidates, d_vocab):
    mask = torch.zeros_like(inputs, dtype=torch.bool)
    mask[:, :-1] = _table(candidates, d_vocab, inputs.device)[inputs[:, 1:]]
    return mask


def mask_of_the_non_candidates(inputs, candidates, d_vocab):
    return ~_table(candidates, d_vocab, inputs.device)[inputs]


def mask_of_tokens_from_the_first_name_on(inputs, candidates, d_vocab):
    return inputs >= candidates.min()  # right for the names of induction-2l, wrong for any other candidate set


def mask_of_the_previous_token(inputs, candidates, d_vocab):
    mask = torch.zeros_like(inputs, dtype=torch.bool)
    mask[:, 1:] = _table(candidates, d_vocab, inputs.device)[inputs[:, :-1]]
    return mask


def mask_as_floats(inputs, candidates, d_vocab):
    return _table(candidates, d_vocab, inputs.device)[inputs].float()


# ---- per_position_loss ------------------------------------------------------------------------------------------------
def loss_from_raw_logits(model, inputs, targets):
    return -model(inputs).gather(-1, targets[..., None])[..., 0]


def loss_shifted_again(model, inputs, targets):
    logits = model(inputs)
    return _loss(logits[:, :-1], targets[:, 1:])


def log_probs_not_negated(model, inputs, targets):
    return -_loss(model(inputs), targets)


def loss_with_softmax_not_log(model, inputs, targets):
    return -model(inputs).softmax(-1).gather(-1, targets[..., None])[..., 0]


# ---- loss_on_candidates -----------------------------------------------------------------------------------------------
def mean_of_per_sequence_means(losses, mask):
    per_sequence = (losses * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_sequence.mean().item()


def mean_over_all_positions(losses, mask):
    return (losses * mask).mean().item()


def mean_over_the_non_candidates(losses, mask):
    return losses[~mask].mean().item()


def sum_instead_of_mean(losses, mask):
    return losses[mask].sum().item()


# ---- sample_groups ----------------------------------------------------------------------------------------------------
def one_generator_for_every_variable(group_of, group_seeds, n):
    generator = torch.Generator().manual_seed(next(iter(group_seeds.values())))
    return {variable: torch.randperm(n, generator=generator) for variable in group_of}


def the_same_permutation_for_independent_groups(group_of, group_seeds, n):
    permutation = torch.randperm(n, generator=torch.Generator().manual_seed(min(group_seeds.values())))
    return {variable: permutation for variable in group_of}


def one_generator_shared_by_the_groups(group_of, group_seeds, n):
    generator = torch.Generator().manual_seed(sum(group_seeds.values()))
    permutations = {group: torch.randperm(n, generator=generator) for group in group_seeds}
    return {variable: permutations[group] for variable, group in group_of.items()}


def permutations_always_the_identity(group_of, group_seeds, n):
    return {variable: torch.arange(n) for variable in group_of}


def sampling_with_replacement(group_of, group_seeds, n):
    draws = {group: torch.randint(0, n, (n,), generator=torch.Generator().manual_seed(seed))
             for group, seed in group_seeds.items()}
    return {variable: draws[group] for variable, group in group_of.items()}


# ---- scrub_all_inputs_loss --------------------------------------------------------------------------------------------
def _candidate_losses(model, model_inputs, targets, mask_inputs, candidates):
    table = _table(candidates, model.cfg.d_vocab, model_inputs.device)
    return _loss(model(model_inputs), targets)[table[mask_inputs]].mean().item()


def scrub_the_labels_too(model, tokens, other, candidates):
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    return _candidate_losses(model, inputs[other], targets[other], inputs[other], candidates)


def mask_from_the_other_input(model, tokens, other, candidates):
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    return _candidate_losses(model, inputs[other], targets, inputs[other], candidates)


def scrub_positions_instead_of_sequences(model, tokens, other, candidates):
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    shuffled = inputs[:, torch.randperm(inputs.shape[1], generator=torch.Generator().manual_seed(0))]
    return _candidate_losses(model, shuffled, targets, inputs, candidates)


def no_scrubbing_at_all(model, tokens, other, candidates):
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    return _candidate_losses(model, inputs, targets, inputs, candidates)


# ---- percent_loss_recovered -------------------------------------------------------------------------------------------
def recovered_relative_to_clean(clean, scrubbed, baseline):
    return (scrubbed - clean) / (baseline - clean)


def recovered_as_a_loss_ratio(clean, scrubbed, baseline):
    return clean / scrubbed


def recovered_in_percent(clean, scrubbed, baseline):
    return 100 * (baseline - scrubbed) / (baseline - clean)


def recovered_over_the_baseline(clean, scrubbed, baseline):
    return (baseline - scrubbed) / baseline


# ---- layer1_input_components ------------------------------------------------------------------------------------------
def _components(model, tokens, bias=True, positions=False, order="heads"):
    _, cache = model.run_with_cache(tokens)
    embed = cache["hook_embed"] + (cache["hook_pos_embed"] if positions else 0)
    heads = torch.einsum("bphd,hdm->hbpm", cache["z", 0], model.W_O[0])
    parts = [embed[None], heads]
    if bias:
        parts.append(model.b_O[0].expand_as(embed)[None])
    if order == "bias first":
        parts = [parts[2], parts[0], parts[1]]
    return torch.cat(parts)


def components_without_the_bias(model, tokens):
    return _components(model, tokens, bias=False)


def components_with_positions_in_the_embedding(model, tokens):
    return _components(model, tokens, positions=True)


def components_with_the_bias_first(model, tokens):
    return _components(model, tokens, order="bias first")


def components_of_z_without_w_o(model, tokens):
    _, cache = model.run_with_cache(tokens)
    z = cache["z", 0]  # d_head wide: padded to d_model so only the values can be wrong
    heads = torch.zeros(z.shape[2], *cache["hook_embed"].shape)
    heads[..., : z.shape[-1]] = z.permute(2, 0, 1, 3)
    return torch.cat([cache["hook_embed"][None], heads, model.b_O[0].expand_as(cache["hook_embed"])[None]])


# ---- assemble_qkv_inputs ----------------------------------------------------------------------------------------------
def _assemble(components, names, other, spec, pick, skip_bias=False):
    out = []
    for which in "qkv":
        sources = spec.get(which, {})
        total = torch.zeros_like(components[0])
        for i, name in enumerate(names):
            if skip_bias and name.startswith("b_"):
                continue
            total = total + (pick(components[i], other) if sources.get(name, "orig") == "other" else components[i])
        out.append(total)
    return torch.stack(out)


def assemble_positions_instead_of_sequences(components, names, other, spec):
    return _assemble(components, names, other, spec, lambda c, o: c[:, o])


def assemble_forgetting_the_bias(components, names, other, spec):
    return _assemble(components, names, other, spec, lambda c, o: c[o], skip_bias=True)


def assemble_with_the_inverse_permutation(components, names, other, spec):
    return _assemble(components, names, other, spec, lambda c, o: c[o.argsort()])


def assemble_every_input_from_the_query_spec(components, names, other, spec):
    return _assemble(components, names, other, {x: spec.get("q", {}) for x in "qkv"}, lambda c, o: c[o])


def assemble_missing_entries_from_other(components, names, other, spec):
    full = {x: {name: spec.get(x, {}).get(name, "other") for name in names} for x in "qkv"}
    return _assemble(components, names, other, full, lambda c, o: c[o])


# ---- run_with_qkv_inputs ----------------------------------------------------------------------------------------------
def _run(model, tokens, qkv_inputs, layer, head, replace, split=True):
    def hook_for(i):
        def hook(activation, hook: HookPoint):
            return replace(activation.clone(), qkv_inputs[i], head, model, hook)

        return hook

    hooks = [(f"blocks.{layer}.hook_{x}_input", hook_for(i)) for i, x in enumerate("qkv")]
    if split:
        model.set_use_split_qkv_input(True)
    try:
        return model.run_with_hooks(tokens, fwd_hooks=hooks)
    finally:
        model.set_use_split_qkv_input(False)


def _one_head(activation, new, head, model, hook):
    activation[:, :, head] = new
    return activation


def run_replacing_every_head(model, tokens, qkv_inputs, layer, head):
    return _run(model, tokens, qkv_inputs, layer, head, lambda a, new, h, m, hook: new[:, :, None].expand_as(a))


def run_adding_positions_again(model, tokens, qkv_inputs, layer, head):
    def replace(activation, new, h, model, hook):
        activation[:, :, h] = new + (model.W_pos[: new.shape[1]] if not hook.name.endswith("v_input") else 0)
        return activation

    return _run(model, tokens, qkv_inputs, layer, head, replace)


def run_without_split_inputs(model, tokens, qkv_inputs, layer, head):
    return _run(model, tokens, qkv_inputs, layer, head, _one_head, split=False)


def run_with_q_and_k_swapped(model, tokens, qkv_inputs, layer, head):
    return _run(model, tokens, qkv_inputs[[1, 0, 2]], layer, head, _one_head)


# ---- head_output_from_inputs ------------------------------------------------------------------------------------------
def _head(model, layer, head, q_input, k_input, v_input, positions="qk", biases=True, mask=True, scale=True):
    pos = model.W_pos[: q_input.shape[1]]
    q_in = q_input + (pos if "q" in positions else 0)
    k_in = k_input + (pos if "k" in positions else 0)
    v_in = v_input + (pos if "v" in positions else 0)
    q = q_in @ model.W_Q[layer, head] + (model.b_Q[layer, head] if biases else 0)
    k = k_in @ model.W_K[layer, head] + (model.b_K[layer, head] if biases else 0)
    v = v_in @ model.W_V[layer, head] + (model.b_V[layer, head] if biases else 0)
    scores = q @ k.transpose(-1, -2) / (math.sqrt(model.cfg.d_head) if scale else 1)
    if mask:
        future = torch.triu(torch.ones(scores.shape[-2:], dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(-1) @ v @ model.W_O[layer, head]


def head_forgetting_the_positions(model, layer, head, q_input, k_input, v_input):
    return _head(model, layer, head, q_input, k_input, v_input, positions="")


def head_with_positions_in_the_value(model, layer, head, q_input, k_input, v_input):
    return _head(model, layer, head, q_input, k_input, v_input, positions="qkv")


def head_forgetting_the_biases(model, layer, head, q_input, k_input, v_input):
    return _head(model, layer, head, q_input, k_input, v_input, biases=False)


def head_without_the_causal_mask(model, layer, head, q_input, k_input, v_input):
    return _head(model, layer, head, q_input, k_input, v_input, mask=False)


def head_with_b_o(model, layer, head, q_input, k_input, v_input):
    return _head(model, layer, head, q_input, k_input, v_input) + model.b_O[layer]


def head_with_query_and_key_inputs_swapped(model, layer, head, q_input, k_input, v_input):
    return _head(model, layer, head, k_input, q_input, v_input)


def head_reading_values_from_the_query_input(model, layer, head, q_input, k_input, v_input):
    return _head(model, layer, head, q_input, k_input, q_input)


# ---- prev_value_path_output -------------------------------------------------------------------------------------------
def _prev_path(model, head, tokens, other_tokens, pattern_from="other", previous_from="orig", offset=1, b_v=True,
               positions=True):
    seq = tokens.shape[1]
    pattern_tokens = other_tokens if pattern_from == "other" else tokens
    qk_input = model.W_E[pattern_tokens] + (model.W_pos[:seq] if positions else 0)
    q = qk_input @ model.W_Q[0, head] + model.b_Q[0, head]
    k = qk_input @ model.W_K[0, head] + model.b_K[0, head]
    scores = q @ k.transpose(-1, -2) / math.sqrt(model.cfg.d_head)
    scores = scores.masked_fill(torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1), float("-inf"))
    pattern = scores.softmax(-1)
    bias = model.b_V[0, head] if b_v else 0
    other_v = model.W_E[other_tokens] @ model.W_V[0, head] + bias
    orig_v = model.W_E[tokens] @ model.W_V[0, head] + bias
    if previous_from == "all orig":
        return pattern @ orig_v @ model.W_O[0, head]
    # value at key p - offset from the original tokens, for every query p >= offset
    values = other_v[:, None].expand(-1, seq, -1, -1).clone()  # [batch, query, key, d_head]
    for p in range(offset, seq):
        values[:, p, p - offset] = orig_v[:, p - offset]
    z = torch.einsum("bqk,bqkd->bqd", pattern, values)
    return z @ model.W_O[0, head]


def prev_path_clamping_position_0(model, head, tokens, other_tokens):  # key p - 1 clamped to 0: position 0 reads its own
    out = _prev_path(model, head, tokens, other_tokens)
    return torch.cat([_prev_path(model, head, tokens, other_tokens, offset=0)[:, :1], out[:, 1:]], dim=1)


def prev_path_with_the_original_pattern(model, head, tokens, other_tokens):
    return _prev_path(model, head, tokens, other_tokens, pattern_from="orig")


def prev_path_keeping_the_current_value(model, head, tokens, other_tokens):
    return _prev_path(model, head, tokens, other_tokens, offset=0)


def prev_path_keeping_every_value(model, head, tokens, other_tokens):
    return _prev_path(model, head, tokens, other_tokens, previous_from="all orig")


def prev_path_forgetting_b_v(model, head, tokens, other_tokens):
    return _prev_path(model, head, tokens, other_tokens, b_v=False)


def prev_path_forgetting_the_positions(model, head, tokens, other_tokens):
    return _prev_path(model, head, tokens, other_tokens, positions=False)


# ---- matched_resample -------------------------------------------------------------------------------------------------
def _matched(feature, u, order):
    values, counts = torch.unique_consecutive(feature[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    block = torch.searchsorted(values, feature)
    return order[starts[block] + (u * counts[block]).long().clamp(max=counts[block] - 1)]


def matched_ignoring_the_feature(feature, generator):
    u = torch.rand(feature.shape[0], generator=generator)
    return (u * feature.shape[0]).long()


def matched_always_the_first_of_the_block(feature, generator):
    return _matched(feature, torch.zeros(feature.shape[0]), torch.argsort(feature, stable=True))


def matched_never_the_last_of_the_block(feature, generator):  # floor(u * (count - 1)): the last match is unreachable
    u = torch.rand(feature.shape[0], generator=generator)
    order = torch.argsort(feature, stable=True)
    values, counts = torch.unique_consecutive(feature[order], return_counts=True)
    return _matched(feature, u * (counts[torch.searchsorted(values, feature)] - 1) / counts[
        torch.searchsorted(values, feature)], order)


def matched_with_the_global_rng(feature, generator):
    return _matched(feature, torch.rand(feature.shape[0]), torch.argsort(feature, stable=True))


def matched_as_int32(feature, generator):
    u = torch.rand(feature.shape[0], generator=generator)
    return _matched(feature, u, torch.argsort(feature, stable=True)).int()


def matched_returning_positions_in_the_block(feature, generator):
    u = torch.rand(feature.shape[0], generator=generator)
    order = torch.argsort(feature, stable=True)
    values, counts = torch.unique_consecutive(feature[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    block = torch.searchsorted(values, feature)
    return starts[block] + (u * counts[block]).long()


# ---- mean_and_standard_error ------------------------------------------------------------------------------------------
def standard_error_with_the_population_std(losses):
    return losses.mean(0), losses.std(0, unbiased=False) / math.sqrt(losses.shape[0])


def standard_deviation_instead_of_error(losses):
    return losses.mean(0), losses.std(0)


def statistics_over_hypotheses(losses):
    return losses.mean(1), losses.std(1) / math.sqrt(losses.shape[1])


def variance_over_n(losses):
    return losses.mean(0), losses.var(0) / losses.shape[0]


# ---- scrub_hypotheses -------------------------------------------------------------------------------------------------
_COMPONENTS = ["embed", "L0H0", "L0H1", "L0H2", "L0H3", "b_O0"]


def _scrub(model, tokens, candidates, hypotheses, resamplings, *, unbiased=True, heads=(0,), all_positions=False,
           two_passes=False, require_two=True):
    """scrub_hypotheses, with one mistake switched on by each keyword."""
    if require_two and len(resamplings) < 2:
        raise ValueError("at least two resamplings")
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    if two_passes:
        model(inputs)
    _, cache = model.run_with_cache(inputs)
    embed = cache["hook_embed"]
    parts = torch.cat([embed[None], torch.einsum("bphd,hdm->hbpm", cache["z", 0], model.W_O[0]),
                       model.b_O[0].expand_as(embed)[None]])
    flat = parts.flatten(1, 2)
    resid = cache["blocks.1.hook_resid_post"]
    for h in heads:
        resid = resid - cache["z", 1][:, :, h] @ model.W_O[1, h]
    mask = torch.isin(inputs, candidates)
    if all_positions:
        mask = torch.ones_like(mask)
    results = {}
    for name, hypothesis in hypotheses.items():
        losses = []
        for sources in resamplings:
            qkv = []
            for which in "qkv":
                total = torch.zeros_like(embed)
                for i, component in enumerate(_COMPONENTS):
                    source = hypothesis.get(which, {}).get(component, "orig")
                    if source == "orig":
                        total = total + parts[i]
                    else:
                        total = total + flat[i][sources[source]]
                qkv.append(total)
            out = sum(_head(model, 1, h, *qkv) for h in heads)
            logits = (resid + out)[mask] @ model.W_U + model.b_U
            losses.append(F.cross_entropy(logits, targets[mask]))
        losses = torch.stack(losses)
        results[name] = (losses.mean().item(), (losses.std(unbiased=unbiased) / len(resamplings) ** 0.5).item())
    return results


def scrub_with_the_population_standard_error(model, tokens, candidates, hypotheses, resamplings):
    return _scrub(model, tokens, candidates, hypotheses, resamplings, unbiased=False)


def scrub_giving_every_layer1_head_the_inputs(model, tokens, candidates, hypotheses, resamplings):
    return _scrub(model, tokens, candidates, hypotheses, resamplings, heads=(0, 1, 2, 3))


def scrub_scoring_every_position(model, tokens, candidates, hypotheses, resamplings):
    return _scrub(model, tokens, candidates, hypotheses, resamplings, all_positions=True)


def scrub_with_an_extra_forward_pass(model, tokens, candidates, hypotheses, resamplings):
    return _scrub(model, tokens, candidates, hypotheses, resamplings, two_passes=True)


def scrub_accepting_one_resampling(model, tokens, candidates, hypotheses, resamplings):
    return _scrub(model, tokens, candidates, hypotheses, resamplings, require_two=False)


# ---- capstone -----------------------------------------------------------------------------------------------------------
def _keep(kept, group="other"):
    return {c: ("orig" if c in kept else group) for c in _COMPONENTS}


STORY = {"other": "sequence"}
LADDER = {
    "ladder 1": {"v": _keep(["embed"]), "groups": STORY},
    "ladder 2": {"v": _keep(["embed"]), "q": _keep(["embed"]), "groups": STORY},
    "ladder 3": {"v": _keep(["embed"]), "q": _keep(["embed"]), "k": _keep(["L0H0"]), "groups": STORY},
    "ladder 4": {"v": _keep(["embed"]), "q": _keep(["embed"]), "k": {**_keep([]), "L0H0": "previous"},
                 "groups": {"other": "sequence", "previous": "previous token"}},
}
PAIR = {"naive": {"k": _keep([], "anywhere"), "groups": {"anywhere": "any position"}},
        "refined": {"k": _keep([], "previous"), "groups": {"previous": "previous token"}}}
REFUTED = {"refuted": {"v": _keep(["L0H0"]), "groups": STORY}}


def _capstone(model, tokens, candidates, n_resamplings, seed, hypotheses):
    """The capstone's measurement, for any hypotheses (the learner's scrubber and draws: the solution's)."""
    from solutions import day3_causal_scrubbing as day3

    baseline = {x: _keep([]) for x in "qkv"} | {"groups": STORY}
    groups = {g: kind for h in (*hypotheses.values(), baseline) for g, kind in h["groups"].items()}
    resamplings = [day3.draw_sources(tokens[:, :-1], groups, seed + r) for r in range(n_resamplings)]
    losses = day3.scrub_hypotheses(model, tokens, candidates, {"clean": {}, "baseline": baseline, **hypotheses},
                                   resamplings)
    clean, base = losses["clean"][0], losses["baseline"][0]
    return {name: {"hypothesis": h, "recovered": (base - losses[name][0]) / (base - clean),
                   "standard_error": losses[name][1] / (base - clean)} for name, h in hypotheses.items()}


def capstone_with_a_refuted_hypothesis_that_holds(model, tokens, candidates, n_resamplings, seed):
    holds = {"refuted": {"q": _keep(["embed"]), "groups": STORY}}  # the query does need only the embedding
    return _capstone(model, tokens, candidates, n_resamplings, seed, LADDER | holds | PAIR)


def capstone_with_a_ladder_that_drops_a_claim(model, tokens, candidates, n_resamplings, seed):
    ladder = dict(LADDER)
    ladder["ladder 3"] = {"q": _keep(["embed"]), "k": _keep(["L0H0"]), "groups": STORY}  # the value claim dropped
    return _capstone(model, tokens, candidates, n_resamplings, seed, ladder | REFUTED | PAIR)


def capstone_with_a_rung_keeping_the_wrong_feature(model, tokens, candidates, n_resamplings, seed):
    ladder = dict(LADDER)
    ladder["ladder 4"] = {"v": _keep(["embed"]), "q": _keep(["embed"]), "k": {**_keep([]), "L0H0": "same"},
                          "groups": {"other": "sequence", "same": "token"}}  # L0H0 carries the previous token
    return _capstone(model, tokens, candidates, n_resamplings, seed, ladder | REFUTED | PAIR)


def capstone_with_a_pair_on_different_inputs(model, tokens, candidates, n_resamplings, seed):
    pair = {"naive": {"q": _keep([], "anywhere"), "groups": {"anywhere": "any position"}}, "refined": PAIR["refined"]}
    return _capstone(model, tokens, candidates, n_resamplings, seed, LADDER | REFUTED | pair)


def capstone_refining_the_key_on_the_wrong_feature(model, tokens, candidates, n_resamplings, seed):
    pair = {"naive": PAIR["naive"], "refined": {"k": _keep([], "same"), "groups": {"same": "token"}}}
    return _capstone(model, tokens, candidates, n_resamplings, seed, LADDER | REFUTED | pair)


def capstone_with_three_rungs(model, tokens, candidates, n_resamplings, seed):
    ladder = {name: h for name, h in LADDER.items() if name != "ladder 4"}
    return _capstone(model, tokens, candidates, n_resamplings, seed, ladder | REFUTED | PAIR)


WRONG_IMPLEMENTATIONS = [
    ("inputs_and_targets", shift_the_wrong_way, "position i + 1"),
    ("inputs_and_targets", targets_not_shifted, "tokens[:, 1:]"),
    ("inputs_and_targets", inputs_keep_the_last_position, "wrong shape"),
    ("inputs_and_targets", shift_along_the_batch, "wrong shape"),
    ("candidate_mask", mask_of_the_next_token, "not by the targets"),
    ("candidate_mask", mask_of_the_non_candidates, "True at the candidates"),
    ("candidate_mask", mask_of_the_previous_token, "is_candidate[inputs]"),
    ("candidate_mask", mask_as_floats, "wrong dtype"),
    ("candidate_mask", mask_of_tokens_from_the_first_name_on, "random candidates"),
    ("per_position_loss", loss_from_raw_logits, "log_softmax"),
    ("per_position_loss", loss_shifted_again, "wrong shape"),
    ("per_position_loss", log_probs_not_negated, "sign flipped"),
    ("per_position_loss", loss_with_softmax_not_log, "log_softmax"),
    ("loss_on_candidates", mean_of_per_sequence_means, "not the mean of per-sequence means"),
    ("loss_on_candidates", mean_over_all_positions, "below the reference"),
    ("loss_on_candidates", mean_over_the_non_candidates, "losses[mask].mean()"),
    ("loss_on_candidates", sum_instead_of_mean, "constant factor"),
    ("sample_groups", one_generator_for_every_variable, "resampled together"),
    ("sample_groups", the_same_permutation_for_independent_groups, "must be independent"),
    ("sample_groups", one_generator_shared_by_the_groups, "its own seed alone"),
    ("sample_groups", sampling_with_replacement, "not a permutation"),
    ("sample_groups", permutations_always_the_identity, "not uniform"),
    ("scrub_all_inputs_loss", scrub_the_labels_too, "the labels are not scrubbed"),
    ("scrub_all_inputs_loss", mask_from_the_other_input, "candidate mask of the original"),
    ("scrub_all_inputs_loss", scrub_positions_instead_of_sequences, "whole resampled sequences"),
    ("scrub_all_inputs_loss", no_scrubbing_at_all, "inputs[other]"),
    ("percent_loss_recovered", recovered_relative_to_clean, "(baseline - scrubbed)"),
    ("percent_loss_recovered", recovered_as_a_loss_ratio, "(baseline - clean)"),
    ("percent_loss_recovered", recovered_in_percent, "constant factor"),
    ("percent_loss_recovered", recovered_over_the_baseline, "(baseline - clean)"),
    ("layer1_input_components", components_without_the_bias, "wrong shape"),
    ("layer1_input_components", components_with_positions_in_the_embedding, "no positional embedding"),
    ("layer1_input_components", components_with_the_bias_first, "in the order embed"),
    ("layer1_input_components", components_of_z_without_w_o, "z @ W_O[0, head]"),
    ("assemble_qkv_inputs", assemble_positions_instead_of_sequences, "not dim 2, the positions"),
    ("assemble_qkv_inputs", assemble_forgetting_the_bias, "biases included"),
    ("assemble_qkv_inputs", assemble_with_the_inverse_permutation, "components[i, other]"),
    ("assemble_qkv_inputs", assemble_every_input_from_the_query_spec, "For each of q, k, v"),
    ("assemble_qkv_inputs", assemble_missing_entries_from_other, "missing from the spec come from 'orig'"),
    ("run_with_qkv_inputs", run_replacing_every_head, "replace only [:, :, head]"),
    ("run_with_qkv_inputs", run_adding_positions_again, "don't add positions"),
    ("run_with_qkv_inputs", run_without_split_inputs, "set_use_split_qkv_input(True)"),
    ("run_with_qkv_inputs", run_with_q_and_k_swapped, "qkv_inputs[0], [1], [2]"),
    ("head_output_from_inputs", head_forgetting_the_positions, "Add W_pos[:pos] to the query and key"),
    ("head_output_from_inputs", head_with_positions_in_the_value, "not the value input"),
    ("head_output_from_inputs", head_forgetting_the_biases, "b_Q, b_K"),
    ("head_output_from_inputs", head_without_the_causal_mask, "mask keys after the query"),
    ("head_output_from_inputs", head_with_b_o, "no b_O"),
    ("prev_value_path_output", prev_path_with_the_original_pattern, "pattern comes from other_tokens"),
    ("prev_value_path_output", prev_path_keeping_the_current_value, "key p - 1"),
    ("prev_value_path_output", prev_path_keeping_every_value, "every other value from other_tokens"),
    ("prev_value_path_output", prev_path_forgetting_b_v, "+ b_V"),
    ("prev_value_path_output", prev_path_forgetting_the_positions, "embedding + positions"),
    ("prev_value_path_output", prev_path_clamping_position_0, "every difference is at position 0"),
    ("matched_resample", matched_ignoring_the_feature, "among the elements with its own feature value"),
    ("matched_resample", matched_always_the_first_of_the_block, "not uniform"),
    ("matched_resample", matched_never_the_last_of_the_block, "not uniform"),
    ("matched_resample", matched_returning_positions_in_the_block, "cross feature values"),
    ("matched_resample", matched_with_the_global_rng, "global random number generator"),
    ("matched_resample", matched_as_int32, "promises int64"),
    ("mean_and_standard_error", standard_error_with_the_population_std, "unbiased"),
    ("mean_and_standard_error", standard_deviation_instead_of_error, "divided by sqrt(n)"),
    ("mean_and_standard_error", statistics_over_hypotheses, "wrong shape"),
    ("mean_and_standard_error", variance_over_n, "standard deviation"),
    ("head_output_from_inputs", head_with_query_and_key_inputs_swapped, "query and key inputs swapped"),
    ("head_output_from_inputs", head_reading_values_from_the_query_input, "values come from v_input"),
    ("scrub_hypotheses", scrub_with_the_population_standard_error, "mean_and_standard_error"),
    ("scrub_hypotheses", scrub_giving_every_layer1_head_the_inputs, "without L1H0's output"),
    ("scrub_hypotheses", scrub_scoring_every_position, "at the candidate positions"),
    ("scrub_hypotheses", scrub_with_an_extra_forward_pass, "forward passes"),
    ("scrub_hypotheses", scrub_accepting_one_resampling, "raises ValueError"),
    ("capstone", capstone_with_a_refuted_hypothesis_that_holds, "the data do not refute it"),
    ("capstone", capstone_with_a_ladder_that_drops_a_claim, "is not more specific than 'ladder 2'"),
    ("capstone", capstone_with_a_rung_keeping_the_wrong_feature, "'ladder 4' recovers"),
    ("capstone", capstone_with_a_pair_on_different_inputs, "must resample the same components"),
    ("capstone", capstone_refining_the_key_on_the_wrong_feature, "'refined' recovers"),
    ("capstone", capstone_with_three_rungs, "at least four ladder rungs"),
]


@pytest.mark.parametrize(
    "exercise, wrong, phrase", WRONG_IMPLEMENTATIONS, ids=[wrong.__name__ for _, wrong, _ in WRONG_IMPLEMENTATIONS]
)
def test_grading_rejects_wrong_implementation(exercise, wrong, phrase):
    outcome = grade(wrong, name=exercise)
    assert outcome.status == "failed", f"{wrong.__name__} was graded {outcome.status!r}: {outcome.message}"
    assert phrase in _explained(outcome), f"message does not point at the mistake ({phrase!r}):\n{_explained(outcome)}"
    margin = case_margin(wrong, exercise, outcome.case)  # the case that rejected it
    # a budget or a contract broken on right values (margin <= 1), or values wrong by at least WRONG_MARGIN
    assert is_clear_rejection(margin), f"{wrong.__name__} fails case {outcome.case!r} by a margin of only {margin:.3g}"


# ---- correct answers written differently --------------------------------------------------------------------------------
def inputs_and_targets_with_narrow(tokens):
    length = tokens.shape[1] - 1
    return tokens.narrow(1, 0, length), tokens.narrow(1, 1, length)


def inputs_and_targets_with_roll(tokens):
    return tokens[:, :-1].clone(), tokens.roll(-1, dims=1)[:, :-1]


def candidate_mask_with_isin(inputs, candidates, d_vocab):
    return torch.isin(inputs, candidates)


def candidate_mask_by_comparing_with_every_candidate(inputs, candidates, d_vocab):
    return (inputs[..., None] == candidates).any(-1)


def per_position_loss_with_cross_entropy(model, inputs, targets):
    logits = model(inputs)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets)


def per_position_loss_with_logsumexp_in_float64(model, inputs, targets):
    logits = model(inputs).double()
    return (logits.logsumexp(-1) - logits.gather(-1, targets[..., None])[..., 0]).float()


def loss_on_candidates_by_sums(losses, mask):
    return float((losses * mask).sum() / mask.sum())


def loss_on_candidates_with_masked_select(losses, mask):
    selected = torch.masked_select(losses, mask).double()
    return selected.sum().item() / selected.numel()


def sample_groups_drawing_per_variable(group_of, group_seeds, n):
    return {v: torch.randperm(n, generator=torch.Generator().manual_seed(group_seeds[g])) for v, g in group_of.items()}


def sample_groups_grouping_the_variables_first(group_of, group_seeds, n):
    members: dict[str, list[str]] = {}
    for variable, group in group_of.items():
        members.setdefault(group, []).append(variable)
    result = {}
    for group, variables in members.items():
        generator = torch.Generator()
        generator.manual_seed(group_seeds[group])
        permutation = torch.randperm(n, generator=generator)
        result.update({variable: permutation.clone() for variable in variables})
    return result


def scrub_all_inputs_self_contained(model, tokens, other, candidates):
    mask = torch.isin(tokens[:, :-1], candidates)
    logits = model(tokens[other][:, :-1])
    losses = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none")
    return losses[mask].mean().item()


def scrub_all_inputs_one_sequence_at_a_time(model, tokens, other, candidates):
    total, count = 0.0, 0
    for b in range(tokens.shape[0]):
        log_probs = model(tokens[other[b], :-1][None])[0].log_softmax(-1)
        is_name = torch.isin(tokens[b, :-1], candidates)  # the original sequence's positions and targets
        total -= log_probs[is_name].gather(-1, tokens[b, 1:][is_name, None]).sum().item()
        count += int(is_name.sum())
    return total / count


def recovered_as_one_minus_the_fraction_lost(clean, scrubbed, baseline):
    return 1 - (scrubbed - clean) / (baseline - clean)


def recovered_in_float64(clean, scrubbed, baseline):
    return ((baseline - scrubbed.double()) / (baseline - clean)).to(scrubbed.dtype)


def components_from_stacked_head_results(model, tokens):
    _, cache = model.run_with_cache(tokens)
    embed = cache["hook_embed"]
    heads = cache.stack_head_results(layer=1)  # [n_heads, batch, pos, d_model], from z and W_O
    bias = torch.zeros_like(embed) + model.b_O[0]
    return torch.cat([embed[None], heads, bias[None]])


def components_from_the_attention_result_hook(model, tokens):
    model.set_use_attn_result(True)
    try:
        _, cache = model.run_with_cache(tokens, names_filter=["hook_embed", "blocks.0.attn.hook_result"])
    finally:
        model.set_use_attn_result(False)
    heads = cache["blocks.0.attn.hook_result"].permute(2, 0, 1, 3)
    embed = cache["hook_embed"]
    return torch.stack([embed, *heads, model.b_O[0].expand(embed.shape)])


def components_by_hand_from_the_weights(model, tokens):
    seq = tokens.shape[1]
    embed = model.W_E[tokens]
    qk_input = embed + model.W_pos[:seq]  # shortformer: positions enter only the queries and keys
    parts = [embed]
    for h in range(model.cfg.n_heads):
        q = qk_input @ model.W_Q[0, h] + model.b_Q[0, h]
        k = qk_input @ model.W_K[0, h] + model.b_K[0, h]
        v = embed @ model.W_V[0, h] + model.b_V[0, h]
        scores = q @ k.transpose(-1, -2) / model.cfg.attn_scale
        scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool, device=tokens.device).triu(1), float("-inf"))
        parts.append(scores.softmax(-1) @ v @ model.W_O[0, h])
    parts.append(model.b_O[0].repeat(*tokens.shape, 1))
    return torch.stack(parts)


def assemble_with_einsum(components, names, other, spec):
    from_other = torch.tensor([[spec.get(x, {}).get(name, "orig") == "other" for name in names] for x in "qkv"],
                              dtype=components.dtype)
    resampled = components[:, other]
    return torch.einsum("xc,cbpd->xbpd", 1 - from_other, components) + torch.einsum("xc,cbpd->xbpd", from_other,
                                                                                   resampled)


def assemble_by_swapping_into_the_clean_sum(components, names, other, spec):
    clean = components.sum(0)
    inputs = []
    for which in ("q", "k", "v"):
        total = clean.clone()
        for name, source in spec.get(which, {}).items():
            if source == "other":
                i = names.index(name)
                total += components[i][other] - components[i]
        inputs.append(total)
    return torch.stack(inputs)


def run_with_the_hooks_context_and_cat(model, tokens, qkv_inputs, layer, head):
    def replace(new):
        def hook(activation, hook: HookPoint):
            return torch.cat([activation[:, :, :head], new[:, :, None], activation[:, :, head + 1:]], dim=2)

        return hook

    hooks = [(f"blocks.{layer}.hook_{x}_input", replace(qkv_inputs[i])) for i, x in enumerate("qkv")]
    was_split = model.cfg.use_split_qkv_input
    model.set_use_split_qkv_input(True)
    try:
        with model.hooks(fwd_hooks=hooks):
            return model(tokens)
    finally:
        model.set_use_split_qkv_input(was_split)


def run_with_add_hook_and_a_head_mask(model, tokens, qkv_inputs, layer, head):
    is_head = (torch.arange(model.cfg.n_heads, device=tokens.device) == head)[:, None]  # [head, 1]
    model.set_use_split_qkv_input(True)
    try:
        for name, new in zip(("q", "k", "v"), qkv_inputs):
            model.add_hook(f"blocks.{layer}.hook_{name}_input",
                           lambda activation, hook, new=new: torch.where(is_head, new[:, :, None], activation))
        return model(tokens)
    finally:
        model.reset_hooks()
        model.set_use_split_qkv_input(False)


def run_with_hooks_editing_in_place(model, tokens, qkv_inputs, layer, head):
    def overwrite(new):
        def hook(activation, hook: HookPoint) -> None:  # edits the activation itself and returns nothing
            activation[:, :, head] = new

        return hook

    hooks = [(f"blocks.{layer}.hook_{x}_input", overwrite(new)) for x, new in zip("qkv", qkv_inputs)]
    model.set_use_split_qkv_input(True)
    try:
        return model.run_with_hooks(tokens, fwd_hooks=hooks)
    finally:
        model.set_use_split_qkv_input(False)


def head_output_with_einsum(model, layer, head, q_input, k_input, v_input):
    pos = model.W_pos[: q_input.shape[1]]
    q = torch.einsum("bpm,md->bpd", q_input + pos, model.W_Q[layer, head]) + model.b_Q[layer, head]
    k = torch.einsum("bpm,md->bpd", k_input + pos, model.W_K[layer, head]) + model.b_K[layer, head]
    v = torch.einsum("bpm,md->bpd", v_input, model.W_V[layer, head]) + model.b_V[layer, head]
    scores = torch.einsum("bqd,bkd->bqk", q, k) / model.cfg.d_head ** 0.5
    scores = scores + torch.triu(torch.full(scores.shape[-2:], -1e9), diagonal=1)
    return torch.einsum("bqk,bkd,dm->bqm", scores.softmax(-1), v, model.W_O[layer, head])


def head_output_with_scaled_dot_product_attention(model, layer, head, q_input, k_input, v_input):
    pos = model.W_pos[: q_input.shape[1]]
    q = (q_input + pos) @ model.W_Q[layer, head] + model.b_Q[layer, head]
    k = (k_input + pos) @ model.W_K[layer, head] + model.b_K[layer, head]
    v = v_input @ model.W_V[layer, head] + model.b_V[layer, head]
    return F.scaled_dot_product_attention(q, k, v, is_causal=True) @ model.W_O[layer, head]


def prev_value_path_with_a_loop(model, head, tokens, other_tokens):
    return _prev_path(model, head, tokens, other_tokens)


def prev_value_path_with_the_cached_pattern(model, head, tokens, other_tokens):
    _, cache = model.run_with_cache(other_tokens, names_filter="blocks.0.attn.hook_pattern")
    pattern = cache["blocks.0.attn.hook_pattern"][:, head]  # [batch, query, key]: the model's own, from other_tokens
    W_V, b_V = model.W_V[0, head], model.b_V[0, head]
    orig_v, other_v = model.W_E[tokens] @ W_V + b_V, model.W_E[other_tokens] @ W_V + b_V
    seq = tokens.shape[1]
    key_before_query = torch.ones(seq - 1, device=tokens.device).diag(-1).bool()  # [query, key]: key == query - 1
    values = torch.where(key_before_query[None, :, :, None], orig_v[:, None], other_v[:, None])
    return torch.einsum("bqk,bqkd,dm->bqm", pattern, values, model.W_O[0, head])


def matched_resample_with_u_in_sorted_order(feature, generator):  # another order of the same uniform draws
    u = torch.rand(feature.shape[0], generator=generator)
    order = torch.argsort(feature, stable=True)
    return _matched(feature, u[order.argsort()], order)


def matched_resample_by_multinomial(feature, generator):  # no recipe at all: one categorical draw per element
    same = (feature[:, None] == feature[None, :]).double()
    return torch.multinomial(same, 1, generator=generator)[:, 0]


def sample_groups_by_argsort_of_uniforms(group_of, group_seeds, n):
    drawn = {group: torch.rand(n, generator=torch.Generator().manual_seed(seed)).argsort()
             for group, seed in group_seeds.items()}
    return {variable: drawn[group] for variable, group in group_of.items()}


def matched_resample_with_a_loop(feature, generator):
    u = torch.rand(feature.shape[0], generator=generator)
    order = torch.argsort(feature, stable=True).tolist()
    sorted_values = [feature[j].item() for j in order]
    picks = []
    for i in range(feature.shape[0]):
        value = feature[i].item()
        start = sorted_values.index(value)
        count = sorted_values.count(value)
        picks.append(order[start + min(int(u[i].item() * count), count - 1)])
    return torch.tensor(picks)


def matched_resample_by_counting(feature, generator):
    u = torch.rand(feature.shape[0], generator=generator).to(feature.device)
    order = torch.argsort(feature, stable=True)
    start = (feature[None, :] < feature[:, None]).sum(1)  # the block of a value starts after every smaller value
    count = (feature[None, :] == feature[:, None]).sum(1)
    return order[start + torch.floor(u * count).long()]


def mean_and_standard_error_by_hand(losses):
    n = losses.shape[0]
    mean = losses.sum(0) / n
    return mean, ((losses - mean) ** 2).sum(0).div(n - 1).sqrt() / n ** 0.5


def mean_and_standard_error_with_std_mean(losses):
    std, mean = torch.std_mean(losses.double(), dim=0)
    return mean.float(), (std / losses.shape[0] ** 0.5).float()


def scrub_hypotheses_one_component_at_a_time(model, tokens, candidates, hypotheses, resamplings):
    return _scrub(model, tokens, candidates, hypotheses, resamplings)


def scrub_hypotheses_at_the_candidates_in_float64(model, tokens, candidates, hypotheses, resamplings):
    """Components gathered as (sequence, position) pairs, the head by hand in float64, losses by logsumexp."""
    if len(resamplings) < 2:
        raise ValueError("need two resamplings for a standard error")
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    pos = inputs.shape[1]
    _, cache = model.run_with_cache(inputs)
    embed = cache["hook_embed"].double()
    heads = [(cache["z", 0][:, :, h] @ model.W_O[0, h]).double() for h in range(model.cfg.n_heads)]
    parts = dict(zip(_COMPONENTS, [embed, *heads, model.b_O[0].double().expand_as(embed)]))
    rest = (cache["blocks.1.hook_resid_post"] - cache["z", 1][:, :, 0] @ model.W_O[1, 0]).double()
    mask = (inputs[..., None] == candidates).any(-1)
    W = {x: getattr(model, f"W_{x.upper()}")[1, 0].double() for x in "qkv"}
    b = {x: getattr(model, f"b_{x.upper()}")[1, 0].double() for x in "qkv"}
    position = model.W_pos[:pos].double()
    results = {}
    for name, hypothesis in hypotheses.items():
        losses = []
        for sources in resamplings:
            read = {}
            for x in "qkv":
                total = 0
                for component, part in parts.items():
                    source = hypothesis.get(x, {}).get(component, "orig")
                    if source != "orig":
                        index = sources[source]
                        part = part[index // pos, index % pos]
                    total = total + part
                read[x] = (total + (position if x != "v" else 0)) @ W[x] + b[x]
            scores = torch.einsum("bqd,bkd->bqk", read["q"], read["k"]) / model.cfg.d_head ** 0.5
            scores = scores + torch.full(scores.shape[-2:], float("-inf"), dtype=scores.dtype).triu(1)
            out = torch.einsum("bqk,bkd->bqd", scores.softmax(-1), read["v"]) @ model.W_O[1, 0].double()
            logits = (rest + out)[mask] @ model.W_U.double() + model.b_U.double()
            picked = logits.gather(-1, targets[mask][:, None])[:, 0]
            losses.append((logits.logsumexp(-1) - picked).mean())
        std, mean = torch.std_mean(torch.stack(losses))
        results[name] = (mean.item(), (std / len(resamplings) ** 0.5).item())
    return results


def capstone_with_another_ladder_and_pair(model, tokens, candidates, n_resamplings, seed):
    """Another order of claims (query first), a trivially true rung (the query's embedding from the same token),
    the query's pair on the token, and another refuted claim (the key reads the token itself)."""
    story = {"other": "sequence"}
    ladder = {
        "ladder 1": {"q": _keep(["embed"]), "groups": story},
        "ladder 2": {"q": _keep(["embed"]), "k": _keep(["L0H0"]), "groups": story},
        "ladder 3": {"q": _keep(["embed"]), "k": _keep(["L0H0"]), "v": _keep(["embed"]), "groups": story},
        "ladder 4": {"q": {**_keep([]), "embed": "same"}, "k": _keep(["L0H0"]), "v": _keep(["embed"]),
                     "groups": {"other": "sequence", "same": "token"}},
        "ladder 5": {"q": {**_keep([]), "embed": "same"}, "k": {**_keep([]), "L0H0": "previous"},
                     "v": _keep(["embed"]), "groups": {"other": "sequence", "same": "token", "previous": "previous token"}},
    }
    pair = {"naive": {"q": _keep([], "anywhere"), "groups": {"anywhere": "any position"}},
            "refined": {"q": _keep([], "same"), "groups": {"same": "token"}}}
    refuted = {"refuted": {"k": _keep(["embed"]), "groups": story}}
    return _capstone(model, tokens, candidates, n_resamplings, seed, ladder | pair | refuted)


def capstone_with_independent_remainders(model, tokens, candidates, n_resamplings, seed):
    """The course's ladder with every input's scrubbed remainder from its own story (three groups)."""
    groups = {"A": "sequence", "B": "sequence", "C": "sequence"}
    ladder = {
        "ladder 1": {"v": _keep(["embed"], "A"), "groups": groups},
        "ladder 2": {"v": _keep(["embed"], "A"), "q": _keep(["embed"], "B"), "groups": groups},
        "ladder 3": {"v": _keep(["embed"], "A"), "q": _keep(["embed"], "B"), "k": _keep(["L0H0"], "C"),
                     "groups": groups},
        "ladder 4": {"v": _keep(["embed"], "A"), "q": _keep(["embed"], "B"), "k": {**_keep([], "C"), "L0H0": "P"},
                     "groups": groups | {"P": "previous token"}},
    }
    return _capstone(model, tokens, candidates, n_resamplings, seed, ladder | REFUTED | PAIR)


CORRECT_ALTERNATIVES = [
    ("inputs_and_targets", inputs_and_targets_with_narrow),
    ("inputs_and_targets", inputs_and_targets_with_roll),
    ("candidate_mask", candidate_mask_with_isin),
    ("candidate_mask", candidate_mask_by_comparing_with_every_candidate),
    ("per_position_loss", per_position_loss_with_cross_entropy),
    ("per_position_loss", per_position_loss_with_logsumexp_in_float64),
    ("loss_on_candidates", loss_on_candidates_by_sums),
    ("loss_on_candidates", loss_on_candidates_with_masked_select),
    ("sample_groups", sample_groups_drawing_per_variable),
    ("sample_groups", sample_groups_grouping_the_variables_first),
    ("sample_groups", sample_groups_by_argsort_of_uniforms),
    ("scrub_all_inputs_loss", scrub_all_inputs_self_contained),
    ("scrub_all_inputs_loss", scrub_all_inputs_one_sequence_at_a_time),
    ("percent_loss_recovered", recovered_as_one_minus_the_fraction_lost),
    ("percent_loss_recovered", recovered_in_float64),
    ("layer1_input_components", components_from_stacked_head_results),
    ("layer1_input_components", components_from_the_attention_result_hook),
    ("layer1_input_components", components_by_hand_from_the_weights),
    ("assemble_qkv_inputs", assemble_with_einsum),
    ("assemble_qkv_inputs", assemble_by_swapping_into_the_clean_sum),
    ("run_with_qkv_inputs", run_with_the_hooks_context_and_cat),
    ("run_with_qkv_inputs", run_with_add_hook_and_a_head_mask),
    ("run_with_qkv_inputs", run_with_hooks_editing_in_place),
    ("head_output_from_inputs", head_output_with_einsum),
    ("head_output_from_inputs", head_output_with_scaled_dot_product_attention),
    ("prev_value_path_output", prev_value_path_with_a_loop),
    ("prev_value_path_output", prev_value_path_with_the_cached_pattern),
    ("matched_resample", matched_resample_with_a_loop),
    ("matched_resample", matched_resample_by_counting),
    ("matched_resample", matched_resample_with_u_in_sorted_order),
    ("matched_resample", matched_resample_by_multinomial),
    ("mean_and_standard_error", mean_and_standard_error_by_hand),
    ("mean_and_standard_error", mean_and_standard_error_with_std_mean),
    ("scrub_hypotheses", scrub_hypotheses_one_component_at_a_time),
    ("scrub_hypotheses", scrub_hypotheses_at_the_candidates_in_float64),
    ("capstone", capstone_with_another_ladder_and_pair),
    ("capstone", capstone_with_independent_remainders),
]


@pytest.mark.parametrize("exercise, correct", CORRECT_ALTERNATIVES, ids=[f.__name__ for _, f in CORRECT_ALTERNATIVES])
def test_grading_accepts_correct_alternative(exercise, correct):
    outcome = grade(correct, name=exercise)
    assert outcome.status == "passed", f"{correct.__name__} was graded {outcome.status!r}: {outcome.message}"
    found = margins(correct, exercise)
    assert max(found.values()) <= CORRECT_MARGIN, f"{correct.__name__} passes too narrowly: {found}"


def test_every_day3_exercise_has_four_kinds_of_wrong_implementation_and_two_correct_ones():
    from checks.specs.day3 import CHECKS

    names = [check.name for check in CHECKS]
    wrong = {name: sum(exercise == name for exercise, _, _ in WRONG_IMPLEMENTATIONS) for name in names}
    correct = {name: sum(exercise == name for exercise, _ in CORRECT_ALTERNATIVES) for name in names}
    assert len(names) >= 12 and all(count >= 4 for count in wrong.values()), wrong
    assert all(count >= 2 for count in correct.values()), correct
    listed = {exercise for exercise, _, _ in WRONG_IMPLEMENTATIONS} | {exercise for exercise, _ in CORRECT_ALTERNATIVES}
    assert listed <= set(names), listed - set(names)  # no entry for an exercise that does not exist


# ---- the mistakes the checks name --------------------------------------------------------------------------------------
# Seven typical day 3 mistakes (eight diagnoses), each with the wrong implementation above that makes it: grading must
# add the check's own diagnosis (`Mistake`) to its verdict.
NAMED_MISTAKES = [
    ("candidate_mask", mask_of_the_next_token, "candidate_mask"),
    ("loss_on_candidates", mean_of_per_sequence_means, "loss_on_candidates"),
    ("scrub_all_inputs_loss", scrub_the_labels_too, "scrub_all_inputs_loss"),
    ("percent_loss_recovered", recovered_in_percent, "percent_loss_recovered"),
    ("head_output_from_inputs", head_with_query_and_key_inputs_swapped, "head q and k swapped"),
    ("head_output_from_inputs", head_reading_values_from_the_query_input, "head value from the query"),
    ("head_output_from_inputs", head_with_positions_in_the_value, "head positions in the value"),
    ("prev_value_path_output", prev_path_clamping_position_0, "prev path position 0"),
]


@pytest.mark.parametrize("exercise, wrong, mistake", NAMED_MISTAKES, ids=[m for _, _, m in NAMED_MISTAKES])
def test_grading_names_the_mistake(exercise, wrong, mistake):
    from checks.specs.day3 import MISTAKES

    outcome = grade(wrong, name=exercise)
    assert outcome.status == "failed"
    assert MISTAKES[mistake].message in outcome.message, outcome.message


def test_a_right_answer_is_never_diagnosed_as_a_mistake():
    """Each diagnosis differs from the reference on its check's cases (else a right answer would be told it is
    wrong): the mistakes' stored outputs all fail their check."""
    from checks.course import Course
    from checks.judging.compare import compare
    from checks.specs.day3 import CHECKS, MISTAKES
    from checks.store.references import ReferenceStore
    from margins import built_inputs

    store = ReferenceStore(Course.default().day(3))
    for check in CHECKS:
        for mistake in check.mistakes:
            assert mistake in MISTAKES.values()
            differs = False
            for case in check.cases:
                _, expected = built_inputs(check.name, case)
                stored = store.mistakes(check.name, case)
                assert mistake.computed_by in stored, f"{check.name}: no stored output of {mistake.computed_by}"
                if not compare(stored[mistake.computed_by], expected, atol=check.atol, rtol=check.rtol).passed:
                    differs = True
            assert differs, f"{check.name}: the diagnosis {mistake.message[:40]!r} matches the reference everywhere"
