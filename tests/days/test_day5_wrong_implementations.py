"""Grading rejects plausible wrong implementations of every day 5 exercise, with a message that points at the mistake
and wrong values missing by a margin (error over tolerance, see tests/days/margins.py) of at least 10, and accepts correct
alternatives written differently from the solutions, each on every case with a margin of at most 0.1.

Each wrong implementation is a mistake a learner is likely to make: a wrong position, clean and corrupted swapped,
means over positions instead of prompts, ablating the kept positions too, a pruning loop that changes order...
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import Tensor

from checks.specs import day5 as day5_spec
from margins import CORRECT_MARGIN, all_hints, case_margin, grade, is_clear_rejection, margins
from solutions import day5_circuit_discovery as solution

DIFFER = "differ"  # "... elements differ" (tensors) or "differ beyond the tolerance"
SCALAR = "expected"  # "expected 12.66, got 0.1266 ..." (numbers)


# The correct alternatives below are self-contained (plain torch and TransformerLens, no solution code), so that each
# one is a second, independent computation of what the reference computed.
def _node(name: str) -> tuple[int, int, int]:
    """(layer, head, position) of a node name a{L}.h{H}.t{p}."""
    layer, head, position = (int(x) for x in re.fullmatch(r"a(\d+)\.h(\d+)\.t(\d+)", name).groups())
    return layer, head, position


def _is_z(name: str) -> bool:
    return name.endswith("attn.hook_z")


def _mean_logit_diff(logits: Tensor, correct: Tensor, wrong: Tensor, end: Tensor) -> Tensor:
    rows = torch.arange(logits.shape[0], device=logits.device)
    return (logits[rows, end, correct] - logits[rows, end, wrong]).mean()


# ---- ioi_positions ----------------------------------------------------------------------------------------------------
def _first(mask: Tensor) -> Tensor:
    positions = torch.arange(mask.shape[1]).expand_as(mask)
    return torch.where(mask, positions, mask.shape[1]).min(dim=1).values


def positions_end_is_last_column(tokens, io_tokens, s_tokens):
    correct = solution.ioi_positions(tokens, io_tokens, s_tokens)
    correct[:, 3] = tokens.shape[1] - 1
    return correct


def positions_from_the_abba_template(tokens, io_tokens, s_tokens):
    correct = solution.ioi_positions(tokens, io_tokens, s_tokens)
    correct[:, 0], correct[:, 1] = 3, 5
    return correct


def positions_s2_is_the_first_s(tokens, io_tokens, s_tokens):
    correct = solution.ioi_positions(tokens, io_tokens, s_tokens)
    correct[:, 2] = correct[:, 1]
    return correct


def positions_end_counted_with_bos(tokens, io_tokens, s_tokens):
    correct = solution.ioi_positions(tokens, io_tokens, s_tokens)
    correct[:, 3] = (tokens != 0).sum(dim=1) - 1
    return correct


def positions_by_search_loop(tokens, io_tokens, s_tokens):  # a correct alternative: plain Python
    rows = []
    for row, io, s in zip(tokens.tolist(), io_tokens.tolist(), s_tokens.tolist()):
        s_at = [i for i, t in enumerate(row) if t == s]
        rows.append([row.index(io), s_at[0], s_at[1], max(i for i, t in enumerate(row) if t != 0)])
    return torch.tensor(rows)


# ---- abc_corruption ---------------------------------------------------------------------------------------------------
def _abc(tokens, positions, name_tokens, generator, slot=2, exclude_io=True, draw_all=False, loop_draws=False):
    batch = tokens.shape[0]
    if loop_draws:
        draws = torch.cat([torch.randint(0, len(name_tokens) - 2, (1,), generator=generator) for _ in range(batch)])
    else:
        high = len(name_tokens) if draw_all else len(name_tokens) - 2
        draws = torch.randint(0, high, (batch,), generator=generator)
    corrupted = tokens.clone()
    for b in range(batch):
        io, s = tokens[b, positions[b, 0]], tokens[b, positions[b, 2]]
        others = name_tokens if draw_all else name_tokens[((name_tokens != io) | ~torch.tensor(exclude_io))
                                                          & (name_tokens != s)]
        corrupted[b, positions[b, slot]] = others[draws[b]]
    return corrupted


def abc_any_name(tokens, positions, name_tokens, generator):
    return _abc(tokens, positions, name_tokens, generator, draw_all=True)


def abc_at_s1(tokens, positions, name_tokens, generator):
    return _abc(tokens, positions, name_tokens, generator, slot=1)


def abc_removing_only_s(tokens, positions, name_tokens, generator):
    return _abc(tokens, positions, name_tokens, generator, exclude_io=False)


def abc_at_io(tokens, positions, name_tokens, generator):
    return _abc(tokens, positions, name_tokens, generator, slot=0)


def abc_always_the_first_other_name(tokens, positions, name_tokens, generator):  # valid, but never random
    corrupted = tokens.clone()
    for b in range(tokens.shape[0]):
        io, s = tokens[b, positions[b, 0]], tokens[b, positions[b, 2]]
        corrupted[b, positions[b, 2]] = name_tokens[(name_tokens != io) & (name_tokens != s)][0]
    return corrupted


def abc_with_the_global_rng(tokens, positions, name_tokens, generator):
    return _abc(tokens, positions, name_tokens, torch.default_generator)


def abc_in_sorted_name_order(tokens, positions, name_tokens, generator):  # correct: another order, still uniform
    return _abc(tokens, positions, name_tokens.sort().values, generator)


def abc_by_randperm(tokens, positions, name_tokens, generator):  # correct: the first other name of a shuffle
    corrupted = tokens.clone()
    for b in range(tokens.shape[0]):
        io, s = tokens[b, positions[b, 0]], tokens[b, positions[b, 2]]
        shuffled = name_tokens[torch.randperm(len(name_tokens), generator=generator)]
        corrupted[b, positions[b, 2]] = shuffled[(shuffled != io) & (shuffled != s)][0]
    return corrupted


def abc_with_python_lists(tokens, positions, name_tokens, generator):  # correct: plain Python, S read at S1
    draws = torch.randint(0, len(name_tokens) - 2, (tokens.shape[0],), generator=generator).tolist()
    names, rows = name_tokens.tolist(), tokens.tolist()
    for row, (io_at, s1_at, s2_at, _), draw in zip(rows, positions.tolist(), draws):
        row[s2_at] = [name for name in names if name not in (row[io_at], row[s1_at])][draw]
    return torch.tensor(rows, dtype=tokens.dtype, device=tokens.device)


# ---- logit_diff -------------------------------------------------------------------------------------------------------
def _rows(x):
    return torch.arange(x.shape[0])


def logit_diff_at_last_position(logits, correct_tokens, wrong_tokens, end_positions):
    rows = _rows(logits)
    return logits[rows, -1, correct_tokens] - logits[rows, -1, wrong_tokens]


def logit_diff_wrong_minus_correct(logits, correct_tokens, wrong_tokens, end_positions):
    return -solution.logit_diff(logits, correct_tokens, wrong_tokens, end_positions)


def logit_diff_averaged(logits, correct_tokens, wrong_tokens, end_positions):
    return solution.logit_diff(logits, correct_tokens, wrong_tokens, end_positions).mean()


def logit_diff_of_probabilities(logits, correct_tokens, wrong_tokens, end_positions):
    rows = _rows(logits)
    probs = logits[rows, end_positions].softmax(-1)
    return probs[rows, correct_tokens] - probs[rows, wrong_tokens]


def logit_diff_from_log_probs(logits, correct_tokens, wrong_tokens, end_positions):  # correct: softmax cancels
    rows = _rows(logits)
    log_probs = logits[rows, end_positions].log_softmax(-1)
    return log_probs[rows, correct_tokens] - log_probs[rows, wrong_tokens]


# ---- usual_range ------------------------------------------------------------------------------------------------------
def range_at_coverage_quantiles(logit_diffs, coverage):
    return torch.quantile(logit_diffs, torch.tensor([1 - coverage, coverage]))


def range_mean_plus_minus_std(logit_diffs, coverage):
    return torch.stack([logit_diffs.mean() - logit_diffs.std(), logit_diffs.mean() + logit_diffs.std()])


def range_nearest_rank(logit_diffs, coverage):
    q = torch.tensor([(1 - coverage) / 2, (1 + coverage) / 2])
    return torch.quantile(logit_diffs, q, interpolation="nearest")


def range_min_max(logit_diffs, coverage):
    return torch.stack([logit_diffs.min(), logit_diffs.max()])


def range_with_numpy(logit_diffs, coverage):  # correct: numpy's default quantile is linear too
    values = np.quantile(logit_diffs.cpu().numpy(), [(1 - coverage) / 2, (1 + coverage) / 2])
    return torch.tensor(values, dtype=logit_diffs.dtype)


# ---- read_nodes and run_with_nodes_replaced ---------------------------------------------------------------------------
def _read(model, tokens, names, hook="z", shift=0, transpose=False):
    parsed = [solution.parse_node_name(n) for n in names]
    _, cache = model.run_with_cache(tokens)
    out = torch.stack([cache[hook, layer][:, position + shift, head] for layer, head, position in parsed])
    return out.transpose(0, 1) if transpose else out


def read_one_position_early(model, tokens, names):
    return _read(model, tokens, names, shift=-1)


def read_queries(model, tokens, names):
    return _read(model, tokens, names, hook="q")


def read_values(model, tokens, names):
    return _read(model, tokens, names, hook="v")


def read_batch_first(model, tokens, names):
    return _read(model, tokens, names, transpose=True)


def read_once_per_node(model, tokens, names):  # the right values, one forward pass per node
    return torch.cat([_read(model, tokens, [name]) for name in names])


def _replace(model, tokens, replacements, every_position=False, add=False, shift=0, hook="z"):
    hooks = []
    for name, value in replacements.items():
        layer, head, position = solution.parse_node_name(name)

        def fn(z, hook, head=head, position=position, value=value):
            z = z.clone()
            index = (slice(None), slice(None) if every_position else position + shift, head)
            target = value[:, None] if every_position else value
            z[index] = z[index] + target if add else target
            return z

        hooks.append((f"blocks.{layer}.attn.hook_{hook}", fn))
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


def replace_at_every_position(model, tokens, replacements):
    return _replace(model, tokens, replacements, every_position=True)


def replace_by_adding(model, tokens, replacements):
    return _replace(model, tokens, replacements, add=True)


def replace_one_position_early(model, tokens, replacements):
    return _replace(model, tokens, replacements, shift=-1)


def replace_the_values(model, tokens, replacements):
    return _replace(model, tokens, replacements, hook="v")


def read_with_recording_hooks(model, tokens, names):  # correct: hooks that keep only the named slices
    nodes = [_node(name) for name in names]
    found = {}

    def record(z, hook):
        for i, (layer, head, position) in enumerate(nodes):
            if layer == hook.layer():
                found[i] = z[:, position, head].clone()

    model.run_with_hooks(tokens, fwd_hooks=[(_is_z, record)])
    return torch.stack([found[i] for i in range(len(nodes))])


def replace_with_one_hook_per_node(model, tokens, replacements):  # correct: in-place writes, model.hooks context
    hooks = []
    for name, value in replacements.items():
        layer, head, position = _node(name)

        def write(z, hook, head=head, position=position, value=value):
            z[:, position, head] = value
            return z

        hooks.append((f"blocks.{layer}.attn.hook_z", write))
    with model.hooks(fwd_hooks=hooks):
        return model(tokens)


# ---- direct_effects ---------------------------------------------------------------------------------------------------
def _effects(model, tokens, correct, wrong, end, centre=True, scale=True, weight=True, at_last=False, mlp_first=False):
    _, cache = model.run_with_cache(tokens)
    rows = _rows(tokens)
    where = torch.full_like(end, tokens.shape[1] - 1) if at_last else end
    parts = [cache["hook_embed"][rows, where], cache["hook_pos_embed"][rows, where]]
    for layer in range(model.cfg.n_layers):
        heads = list(torch.einsum("bhe,hed->hbd", cache["z", layer][rows, where], model.W_O[layer]).unbind(0))
        extra = [model.b_O[layer].expand(len(rows), -1), cache["mlp_out", layer][rows, where]]
        parts += ([extra[1]] + heads + [extra[0]]) if mlp_first else (heads + extra)
    stack = torch.stack(parts)
    if centre:
        stack = stack - stack.mean(-1, keepdim=True)
    if scale:
        stack = stack / cache["ln_final.hook_scale"][rows, where]
    if weight:
        stack = stack * model.ln_final.w
    return torch.einsum("cbd,db->cb", stack, model.W_U[:, correct] - model.W_U[:, wrong])


def effects_without_centring(model, tokens, correct_tokens, wrong_tokens, end_positions):
    return _effects(model, tokens, correct_tokens, wrong_tokens, end_positions, centre=False)


def effects_without_the_scale(model, tokens, correct_tokens, wrong_tokens, end_positions):
    return _effects(model, tokens, correct_tokens, wrong_tokens, end_positions, scale=False)


def effects_without_ln_weight(model, tokens, correct_tokens, wrong_tokens, end_positions):
    return _effects(model, tokens, correct_tokens, wrong_tokens, end_positions, weight=False)


def effects_at_the_last_position(model, tokens, correct_tokens, wrong_tokens, end_positions):
    return _effects(model, tokens, correct_tokens, wrong_tokens, end_positions, at_last=True)


def effects_mlp_before_heads(model, tokens, correct_tokens, wrong_tokens, end_positions):
    return _effects(model, tokens, correct_tokens, wrong_tokens, end_positions, mlp_first=True)


def effects_per_prompt_in_float64(model, tokens, correct_tokens, wrong_tokens, end_positions):
    """A correct alternative: one prompt at a time, in float64, the LayerNorm scale recomputed from the final
    residual stream instead of read from ln_final.hook_scale."""
    _, cache = model.run_with_cache(tokens)
    last = model.cfg.n_layers - 1
    columns = []
    for b, position in enumerate(end_positions.tolist()):
        parts = [cache["hook_embed"][b, position], cache["hook_pos_embed"][b, position]]
        for layer in range(model.cfg.n_layers):
            z = cache[f"blocks.{layer}.attn.hook_z"][b, position]  # [head, d_head]
            parts += [z[head] @ model.W_O[layer, head] for head in range(model.cfg.n_heads)]
            parts += [model.b_O[layer], cache[f"blocks.{layer}.hook_mlp_out"][b, position]]
        final = cache[f"blocks.{last}.hook_resid_post"][b, position].double()
        scale = ((final - final.mean()) ** 2).mean().add(model.cfg.eps).sqrt()
        stack = torch.stack(parts).double()
        normalised = (stack - stack.mean(dim=-1, keepdim=True)) / scale * model.ln_final.w.double()
        columns.append(normalised @ (model.W_U[:, correct_tokens[b]] - model.W_U[:, wrong_tokens[b]]).double())
    return torch.stack(columns, dim=1).float()


# ---- head_patching_by_position ----------------------------------------------------------------------------------------
def _mean_ld(logits, correct, wrong, end):
    return solution.logit_diff(logits, correct, wrong, end).mean()


def _patch_loop(model, clean_tokens, corrupted_tokens, correct, wrong, end, shift=0, swap=False, reverse=False,
                whole_position=False):
    """One forward pass per (layer, position, head), written plainly; the options are the mistakes."""
    base, source = (clean_tokens, corrupted_tokens) if reverse else (corrupted_tokens, clean_tokens)
    _, source_cache = model.run_with_cache(source)
    ld_clean = _mean_ld(model(clean_tokens), correct, wrong, end)
    ld_corrupted = _mean_ld(model(corrupted_tokens), correct, wrong, end)
    n_layers, n_heads, seq = model.cfg.n_layers, model.cfg.n_heads, clean_tokens.shape[1]
    result = torch.zeros(n_layers, seq, n_heads)
    for layer in range(n_layers):
        for position in range(seq):
            for head in range(n_heads):
                def fn(z, hook, p=(position + shift) % seq, h=head):
                    z = z.clone()
                    heads = slice(None) if whole_position else h
                    z[:, p, heads] = source_cache["z", layer][:, p, heads]
                    return z

                ld = _mean_ld(model.run_with_hooks(base, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", fn)]),
                              correct, wrong, end)
                result[layer, position, head] = ((ld - ld_clean) / (ld_corrupted - ld_clean) if swap
                                                 else (ld - ld_corrupted) / (ld_clean - ld_corrupted))
    return result


def patching_the_next_position(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    return _patch_loop(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions, shift=1)


def patching_normalised_clean_corrupted_swapped(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                                end_positions):
    return _patch_loop(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions, swap=True)


def patching_corrupted_into_clean(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    return _patch_loop(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                       reverse=True)


def patching_every_head_at_once(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    return _patch_loop(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                       whole_position=True)


def patching_one_pass_per_patch(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    """The right values from transformer_lens's own loop, normalised, but one forward pass per patch."""
    from transformer_lens import patching

    _, clean_cache = model.run_with_cache(clean_tokens)
    metric = lambda logits: _mean_ld(logits, correct_tokens, wrong_tokens, end_positions)  # noqa: E731
    raw = patching.get_act_patch_attn_head_out_by_pos(model, corrupted_tokens, clean_cache, metric)
    ld_clean, ld_corrupted = metric(model(clean_tokens)), metric(model(corrupted_tokens))
    return (raw - ld_corrupted) / (ld_clean - ld_corrupted)


def patching_batched_per_layer(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    """A correct alternative: one forward pass per layer, every (position, head) patch of the layer in its batch."""
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=lambda name: name.endswith("hook_z"))
    ld_clean = _mean_ld(model(clean_tokens), correct_tokens, wrong_tokens, end_positions)
    ld_corrupted = _mean_ld(model(corrupted_tokens), correct_tokens, wrong_tokens, end_positions)
    batch, seq, n_heads = clean_tokens.shape[0], clean_tokens.shape[1], model.cfg.n_heads
    patches = [(position, head) for position in range(seq) for head in range(n_heads)]
    result = torch.zeros(model.cfg.n_layers, seq, n_heads)
    for layer in range(model.cfg.n_layers):
        def fn(z, hook, layer=layer):
            z = z.clone()
            for k, (position, head) in enumerate(patches):
                z[k * batch:(k + 1) * batch, position, head] = clean_cache["z", layer][:, position, head]
            return z

        logits = model.run_with_hooks(corrupted_tokens.repeat(len(patches), 1),
                                      fwd_hooks=[(f"blocks.{layer}.attn.hook_z", fn)])
        ld = solution.logit_diff(logits, correct_tokens.repeat(len(patches)), wrong_tokens.repeat(len(patches)),
                                 end_positions.repeat(len(patches))).view(len(patches), batch).mean(1)
        result[layer] = ((ld - ld_corrupted) / (ld_clean - ld_corrupted)).view(seq, n_heads)
    return result


def prune_batched_with_less_speculation(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                        threshold, speculation):  # correct: fewer candidates per pass, still batched
    return solution.greedy_prune_batched(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                         threshold, max(2, speculation - 1))


# ---- path patching ----------------------------------------------------------------------------------------------------
def _path_logits(model, clean_tokens, corrupted_tokens, correct, wrong, end, freeze=True, only_end=False,
                 anchors="clean"):
    _, clean_cache = model.run_with_cache(clean_tokens)
    _, corrupted_cache = model.run_with_cache(corrupted_tokens)
    ld_clean = _mean_ld(model(clean_tokens), correct, wrong, end)
    ld_corrupted = _mean_ld(model(corrupted_tokens), correct, wrong, end)
    result = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for sender_layer in range(model.cfg.n_layers):
        for sender_head in range(model.cfg.n_heads):
            def fn(z, hook):
                layer = hook.layer()
                z = clean_cache["z", layer].clone() if freeze else z.clone()
                if layer == sender_layer:
                    positions = end if only_end else slice(None)
                    if only_end:
                        rows = _rows(z)
                        z[rows, positions, sender_head] = corrupted_cache["z", layer][rows, positions, sender_head]
                    else:
                        z[:, :, sender_head] = corrupted_cache["z", layer][:, :, sender_head]
                return z

            ld = _mean_ld(model.run_with_hooks(clean_tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), fn)]),
                          correct, wrong, end)
            if anchors == "clean":
                result[sender_layer, sender_head] = (ld - ld_clean) / (ld_clean - ld_corrupted)
            else:
                result[sender_layer, sender_head] = (ld - ld_corrupted) / (ld_clean - ld_corrupted)
    return result


def path_without_freezing(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    return _path_logits(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                        freeze=False)


def path_in_the_corrupted_run(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    """The other direction: the sender's clean output into the corrupted run, other heads frozen corrupted."""
    result = _path_logits(model, corrupted_tokens, clean_tokens, correct_tokens, wrong_tokens, end_positions)
    return -result


def path_normalised_from_corrupted(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                   end_positions):
    return _path_logits(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                        anchors="corrupted")


def path_senders_head_major(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    result = solution.path_patching_to_logits(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                              end_positions)
    return result.flatten().view(model.cfg.n_heads, model.cfg.n_layers).T.contiguous()


def path_one_sender_at_a_time(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions):
    """A correct alternative: one forward pass per sender."""
    return _path_logits(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions)


def receivers_one_sender_at_a_time(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                   end_positions, receivers, component):
    """A correct alternative: two plain forward passes per sender, the receivers' inputs recorded by a hook."""
    _, clean_cache = model.run_with_cache(clean_tokens)
    _, corrupted_cache = model.run_with_cache(corrupted_tokens)
    ld_clean = _mean_logit_diff(model(clean_tokens), correct_tokens, wrong_tokens, end_positions)
    ld_corrupted = _mean_logit_diff(model(corrupted_tokens), correct_tokens, wrong_tokens, end_positions)
    receiver_names = sorted({f"blocks.{layer}.attn.hook_{component}" for layer, _ in receivers})
    result = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for sender_layer in range(model.cfg.n_layers):
        for sender_head in range(model.cfg.n_heads):
            def freeze(z, hook, sender_layer=sender_layer, sender_head=sender_head):
                frozen = clean_cache[hook.name].clone()
                if hook.layer() == sender_layer:
                    frozen[:, :, sender_head] = corrupted_cache[hook.name][:, :, sender_head]
                return frozen

            recorded = {}

            def record(activation, hook, recorded=recorded):
                recorded[hook.name] = activation.clone()

            model.run_with_hooks(clean_tokens, fwd_hooks=[(_is_z, freeze)] + [(n, record) for n in receiver_names])

            def receive(activation, hook, recorded=recorded):
                activation = activation.clone()
                for layer, head in receivers:
                    if layer == hook.layer():
                        activation[:, :, head] = recorded[hook.name][:, :, head]
                return activation

            logits = model.run_with_hooks(clean_tokens, fwd_hooks=[(n, receive) for n in receiver_names])
            ld = _mean_logit_diff(logits, correct_tokens, wrong_tokens, end_positions)
            result[sender_layer, sender_head] = (ld - ld_clean) / (ld_clean - ld_corrupted)
    return result


def receivers_whole_layer(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                          receivers, component):
    layers = sorted({layer for layer, _ in receivers})
    everyone = [(layer, head) for layer in layers for head in range(model.cfg.n_heads)]
    return solution.path_patching_to_receivers(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                               end_positions, everyone, component)


def receivers_always_queries(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                             receivers, component):
    return solution.path_patching_to_receivers(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                               end_positions, receivers, "q")


def receivers_skipping_the_second_run(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                      end_positions, receivers, component):
    return solution.path_patching_to_logits(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                            end_positions)


def receivers_sign_flipped(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                           receivers, component):
    return -solution.path_patching_to_receivers(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                                end_positions, receivers, component)


# ---- reference_means --------------------------------------------------------------------------------------------------
def _zs(model, tokens, hook="z"):
    _, cache = model.run_with_cache(tokens)
    return torch.stack([cache[hook, layer] for layer in range(model.cfg.n_layers)])  # [layer, batch, pos, head, e]


def means_over_positions(model, reference_tokens):
    return _zs(model, reference_tokens).mean(dim=2)  # [layer, batch, head, d_head]: one mean per prompt


def means_over_prompts_and_positions(model, reference_tokens):
    zs = _zs(model, reference_tokens)
    return zs.mean(dim=(1, 2))[:, None].expand(-1, zs.shape[2], -1, -1).clone()


def means_of_values(model, reference_tokens):
    return _zs(model, reference_tokens, hook="v").mean(dim=1)


def medians(model, reference_tokens):
    return _zs(model, reference_tokens).median(dim=1).values


def means_in_float64(model, reference_tokens):  # correct: a more precise mean
    return _zs(model, reference_tokens).double().mean(dim=1).float()


# ---- mean_ablated_logits ----------------------------------------------------------------------------------------------
def _ablate(model, tokens, means, keep, invert=False, zero=False, per_head=False, everything=False, flat_means=False):
    mask = ~keep if invert else keep
    if per_head:
        mask = mask.any(dim=1, keepdim=True).expand_as(mask)
    if everything:
        mask = torch.zeros_like(mask)
    values = torch.zeros_like(means) if zero else (means.mean(1, keepdim=True).expand_as(means) if flat_means
                                                    else means)

    def fn(z, hook):
        layer = hook.layer()
        return torch.where(mask[layer][None, :, :, None], z, values[layer])

    return model.run_with_hooks(tokens, fwd_hooks=[(lambda n: n.endswith("hook_z"), fn)])


def ablation_of_the_kept_slices(model, tokens, means, keep):
    return _ablate(model, tokens, means, keep, invert=True)


def ablation_with_zeros(model, tokens, means, keep):
    return _ablate(model, tokens, means, keep, zero=True)


def ablation_keeping_whole_heads(model, tokens, means, keep):
    return _ablate(model, tokens, means, keep, per_head=True)


def ablation_of_the_kept_positions_too(model, tokens, means, keep):
    return _ablate(model, tokens, means, keep, everything=True)


def ablation_with_means_over_positions(model, tokens, means, keep):
    return _ablate(model, tokens, means, keep, flat_means=True)


def ablation_by_boolean_indexing(model, tokens, means, keep):  # correct: writes the means where keep is False
    def ablate(z, hook):
        dropped = ~keep[hook.layer()]  # [seq, head]
        z = z.clone()
        z[:, dropped] = means[hook.layer()][dropped]
        return z

    return model.run_with_hooks(tokens, fwd_hooks=[(_is_z, ablate)])


# ---- faithfulness -----------------------------------------------------------------------------------------------------
def _lds(model, tokens, means, keep, correct, wrong, end):
    full = solution.logit_diff(model(tokens), correct, wrong, end)
    ablated = solution.logit_diff(solution.mean_ablated_logits(model, tokens, means, keep), correct, wrong, end)
    return full, ablated


def faithfulness_as_fraction(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions):
    full, ablated = _lds(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions)
    return (ablated.mean() / full.mean()).item()


def faithfulness_mean_of_ratios(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions):
    full, ablated = _lds(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions)
    return (100 * (ablated / full).mean()).item()


def faithfulness_upside_down(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions):
    full, ablated = _lds(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions)
    return (100 * full.mean() / ablated.mean()).item()


def faithfulness_as_loss(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions):
    full, ablated = _lds(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions)
    return (100 - 100 * ablated.mean() / full.mean()).item()


def faithfulness_of_sums(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions):  # correct
    full, ablated = _lds(model, tokens, means, keep, correct_tokens, wrong_tokens, end_positions)
    return (100 * ablated.double().sum() / full.double().sum()).item()


# ---- greedy pruning ---------------------------------------------------------------------------------------------------
def _scorer(model, tokens, means, correct, wrong, end):
    """faithfulness as a function of the circuit, the full model's logit difference computed once (one forward pass
    per circuit, so that the loops below stay well inside the grader's time limit on a busy machine)."""
    full = solution.logit_diff(model(tokens), correct, wrong, end).mean()

    def score(keep):
        ablated = solution.logit_diff(solution.mean_ablated_logits(model, tokens, means, keep), correct, wrong, end)
        return (100 * ablated.mean() / full).item()

    return score


def _union(nodes, kept):
    return (nodes & kept[:, None, None, None]).any(0)


def _greedy(model, tokens, means, correct, wrong, end, nodes, threshold, order=None, relative=False,
            independent=False):
    score_of = _scorer(model, tokens, means, correct, wrong, end)
    kept = torch.ones(nodes.shape[0], dtype=torch.bool)
    current = 100.0
    for i in (order if order is not None else range(nodes.shape[0])):
        trial = (torch.ones_like(kept) if independent else kept).clone()
        trial[i] = False
        score = score_of(_union(nodes, trial))
        loss = 100 * (1 - score / current) if relative else 100 - score
        if loss < threshold:
            kept[i] = False
            current = score
    return kept


def prune_in_reverse_order(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold,
                           **_):
    return _greedy(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold,
                   order=range(nodes.shape[0] - 1, -1, -1))


def prune_relative_to_the_current_circuit(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                          threshold, **_):
    return _greedy(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold, relative=True)


def prune_with_threshold_as_fraction(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                     threshold, **_):
    return _greedy(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold / 100)


def prune_each_node_alone(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold, **_):
    return _greedy(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold,
                   independent=True)


def prune_batched_sorted_by_score(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold,
                                  speculation):
    """A batched loop that changes the order: each pass scores single removals from the current circuit and removes
    them best-first (rescoring a removal once an earlier one of the pass has changed the circuit)."""
    score_of = _scorer(model, tokens, means, correct_tokens, wrong_tokens, end_positions)
    kept = torch.ones(nodes.shape[0], dtype=torch.bool)
    for start in range(0, nodes.shape[0], speculation):
        batch = list(range(start, min(start + speculation, nodes.shape[0])))
        scores = {}
        for j in batch:
            trial = kept.clone()
            trial[j] = False
            scores[j] = score_of(_union(nodes, trial))
        changed = False
        for j in sorted(batch, key=lambda j: -scores[j]):
            trial = kept.clone()
            trial[j] = False
            if 100 - (score_of(_union(nodes, trial)) if changed else scores[j]) < threshold:
                kept, changed = trial, True
    return kept


def prune_batched_ignoring_failures(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                    threshold, speculation):
    """Speculates like the solution but accepts every passing candidate of a pass, even after a failure."""
    score_of = _scorer(model, tokens, means, correct_tokens, wrong_tokens, end_positions)
    kept = torch.ones(nodes.shape[0], dtype=torch.bool)
    for start in range(0, nodes.shape[0], speculation):
        trial = kept.clone()
        accepted = []
        for j in range(start, min(start + speculation, nodes.shape[0])):
            trial = trial.clone()
            trial[j] = False
            if 100 - score_of(_union(nodes, trial)) < threshold:
                accepted.append(j)
        kept[accepted] = False
    return kept


def prune_batched_by_the_sequential_loop(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                         threshold, speculation):  # the right nodes, but one forward pass per node
    return _greedy(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, threshold)


def prune_sequential_by_the_batched_loop(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                         threshold):  # correct: the same circuit
    return solution.greedy_prune_batched(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes,
                                         threshold, 6)


# ---- minimality -------------------------------------------------------------------------------------------------------
def _minimality(model, tokens, means, correct, wrong, end, nodes, kept, every_node=False, against_full=False,
                ratio=False, sign=1.0):
    score_of = _scorer(model, tokens, means, correct, wrong, end)
    base = 100.0 if against_full else score_of(_union(nodes, kept))
    drops = torch.zeros(nodes.shape[0])
    for i in range(nodes.shape[0]):
        if not (kept[i] or every_node):
            continue
        without = kept.clone()
        without[i] = False
        score = score_of(_union(nodes, without))
        drops[i] = sign * (score / base if ratio else base - score)
    return drops


def minimality_in_logit_difference(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept):
    """Drops in raw logit difference instead of percent of the full model."""
    full = solution.logit_diff(model(tokens), correct_tokens, wrong_tokens, end_positions).mean().item()
    return _minimality(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept) * full / 100


def minimality_against_the_full_model(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept):
    return _minimality(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept,
                       against_full=True)


def minimality_as_ratio(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept):
    return _minimality(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept, ratio=True)


def minimality_sign_flipped(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept):
    return _minimality(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept, sign=-1.0)


def minimality_in_one_batched_pass(model, tokens, means, correct_tokens, wrong_tokens, end_positions, nodes, kept):
    """A correct alternative: the circuit and every circuit-minus-one-node in one forward pass, one copy each."""
    kept_index = kept.nonzero().flatten().tolist()
    index = torch.arange(len(kept), device=kept.device)
    circuits = [kept] + [kept & (index != i) for i in kept_index]
    masks = torch.stack([(nodes & circuit[:, None, None, None]).any(dim=0) for circuit in circuits])
    copies, batch = len(circuits), tokens.shape[0]

    def ablate(z, hook):
        mask = masks[:, hook.layer()].repeat_interleave(batch, dim=0)[..., None]  # [copy*batch, seq, head, 1]
        return torch.where(mask, z, means[hook.layer()])

    logits = model.run_with_hooks(tokens.repeat(copies, 1), fwd_hooks=[(_is_z, ablate)])
    rows = torch.arange(copies * batch, device=tokens.device)
    end_logits = logits[rows, end_positions.repeat(copies)]
    lds = (end_logits[rows, correct_tokens.repeat(copies)] - end_logits[rows, wrong_tokens.repeat(copies)])
    full = _mean_logit_diff(model(tokens), correct_tokens, wrong_tokens, end_positions)
    scores = 100 * lds.view(copies, batch).mean(dim=1) / full
    drops = torch.zeros(len(kept), device=kept.device)
    drops[kept_index] = scores[0] - scores[1:]
    return drops


# ---- number sequences -------------------------------------------------------------------------------------------------
def answers_step_one(tokens):
    return torch.stack([tokens[:, -1] + 1, tokens[:, -1]], dim=1)


def answers_swapped(tokens):
    return solution.number_answer_tokens(tokens).flip(1)


def answers_repeat_is_the_first_number(tokens):
    answers = solution.number_answer_tokens(tokens)
    answers[:, 1] = tokens[:, 1]
    return answers


def answers_step_from_the_bos(tokens):
    return torch.stack([2 * tokens[:, -1] - tokens[:, 0], tokens[:, -1]], dim=1)


def answers_from_the_first_step(tokens):  # correct: the step is constant
    step = tokens[:, 2] - tokens[:, 1]
    return torch.stack([tokens[:, -1] + step, tokens[:, -1]], dim=1)


def corruption_shifted(tokens):
    """Repeats the last number by dropping the first one: every position changes."""
    return torch.cat([tokens[:, :1], tokens[:, 2:], tokens[:, -1:]], dim=1)


def corruption_with_the_first_number(tokens):
    corrupted = tokens.clone()
    corrupted[:, -1] = tokens[:, 1]
    return corrupted


def corruption_of_the_one_before(tokens):
    corrupted = tokens.clone()
    corrupted[:, -2] = tokens[:, -1]
    return corrupted


def corruption_dropping_the_last(tokens):
    return tokens[:, :-1].clone()


def corruption_with_index_put(tokens):  # correct
    return tokens.index_put((torch.arange(tokens.shape[0]), torch.full((tokens.shape[0],), tokens.shape[1] - 1)),
                            tokens[:, -2])


# ---- the table --------------------------------------------------------------------------------------------------------

# ---- name_direct_effects ------------------------------------------------------------------------------------------------
def _end_stack(model, tokens, end, scaled=True, at_last=False):
    """[component, batch, d_model]: the direct_effects parts at the end, centred and through the frozen LayerNorm."""
    _, cache = model.run_with_cache(tokens)
    rows = torch.arange(tokens.shape[0])
    end = torch.full_like(end, tokens.shape[1] - 1) if at_last else end
    parts = [cache["hook_embed"][rows, end], cache["hook_pos_embed"][rows, end]]
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer][rows, end]
        parts += [z[:, h] @ model.W_O[layer, h] for h in range(model.cfg.n_heads)]
        parts += [model.b_O[layer].expand(len(rows), -1), cache["mlp_out", layer][rows, end]]
    stack = torch.stack(parts)
    stack = stack - stack.mean(-1, keepdim=True)
    if scaled:
        stack = stack / cache["ln_final.hook_scale"][rows, end]
    return stack * model.ln_final.w


def _project(stack, model, io, s, names=None, average=True):
    base = model.W_U[:, names].mean(1, keepdim=True) if average else 0
    return torch.stack([torch.einsum("cbd,db->cb", stack, model.W_U[:, io] - base),
                        torch.einsum("cbd,db->cb", stack, model.W_U[:, s] - base)], dim=-1)


def names_without_the_average(model, tokens, io_tokens, s_tokens, name_tokens, end_positions):
    return _project(_end_stack(model, tokens, end_positions), model, io_tokens, s_tokens, average=False)


def names_without_the_scale(model, tokens, io_tokens, s_tokens, name_tokens, end_positions):
    return _project(_end_stack(model, tokens, end_positions, scaled=False), model, io_tokens, s_tokens, name_tokens)


def names_columns_swapped(model, tokens, io_tokens, s_tokens, name_tokens, end_positions):
    return _project(_end_stack(model, tokens, end_positions), model, s_tokens, io_tokens, name_tokens)


def names_against_the_whole_vocabulary(model, tokens, io_tokens, s_tokens, name_tokens, end_positions):
    every = torch.arange(model.cfg.d_vocab)
    return _project(_end_stack(model, tokens, end_positions), model, io_tokens, s_tokens, every)


def names_at_the_last_position(model, tokens, io_tokens, s_tokens, name_tokens, end_positions):
    return _project(_end_stack(model, tokens, end_positions, at_last=True), model, io_tokens, s_tokens, name_tokens)


def names_by_centred_directions(model, tokens, io_tokens, s_tokens, name_tokens, end_positions):
    """A correct alternative: centre the directions (times the LayerNorm weight) instead of the parts, in float64."""
    _, cache = model.run_with_cache(tokens)
    rows = torch.arange(tokens.shape[0])
    scale = cache["ln_final.hook_scale"][rows, end_positions].double()  # [batch, 1]
    parts = [cache["hook_embed"][rows, end_positions], cache["hook_pos_embed"][rows, end_positions]]
    for layer in range(model.cfg.n_layers):
        result = torch.einsum("bhe,hed->hbd", cache["z", layer][rows, end_positions], model.W_O[layer])
        parts += list(result) + [model.b_O[layer].expand(len(rows), -1), cache["mlp_out", layer][rows, end_positions]]
    stack = torch.stack(parts).double() / scale
    columns = []
    for answer in (io_tokens, s_tokens):
        direction = (model.W_U[:, answer].double() - model.W_U[:, name_tokens].double().mean(1, keepdim=True))
        direction = direction * model.ln_final.w.double()[:, None]
        direction = direction - direction.mean(0, keepdim=True)  # centring the direction centres the parts
        columns.append(torch.einsum("cbd,db->cb", stack, direction))
    return torch.stack(columns, dim=-1).float()


def names_one_name_at_a_time(model, tokens, io_tokens, s_tokens, name_tokens, end_positions):
    """A correct alternative: each prompt's name logits relative to the names' mean logit, component by component."""
    stack = _end_stack(model, tokens, end_positions)  # [component, batch, d_model]
    name_logits = stack @ model.W_U[:, name_tokens]  # [component, batch, names]
    average = name_logits.mean(-1)
    rows = torch.arange(tokens.shape[0])
    io = torch.stack([stack[:, b] @ model.W_U[:, io_tokens[b]] for b in rows.tolist()], dim=1)
    s = torch.stack([stack[:, b] @ model.W_U[:, s_tokens[b]] for b in rows.tolist()], dim=1)
    return torch.stack([io - average, s - average], dim=-1)


# ---- path_patching_to_mlp -----------------------------------------------------------------------------------------------
def _mlp_path(model, clean_tokens, corrupted_tokens, correct, wrong, end, mlp_layer, freeze=True, record_layer=None,
              only_end=False, normalise_from_corrupted=False, sender_filter=None):
    if not 0 <= mlp_layer < model.cfg.n_layers:
        raise ValueError("no such layer")
    record_layer = mlp_layer if record_layer is None else record_layer
    _, clean = model.run_with_cache(clean_tokens)
    _, corrupted = model.run_with_cache(corrupted_tokens)
    ld_clean = _mean_logit_diff(model(clean_tokens), correct, wrong, end)
    ld_corrupted = _mean_logit_diff(model(corrupted_tokens), correct, wrong, end)
    result = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(max(mlp_layer, record_layer) + 1):  # a sender above the MLP cannot reach it
        for head in range(model.cfg.n_heads):
            def set_z(z, hook):
                z = (clean["z", hook.layer()] if freeze else z).clone()
                if hook.layer() == layer:
                    z[:, :, head] = corrupted["z", layer][:, :, head]
                return z

            recorded = {}
            model.run_with_hooks(clean_tokens, fwd_hooks=[
                (_is_z, set_z),
                (f"blocks.{record_layer}.hook_mlp_out", lambda out, hook: recorded.setdefault("out", out.clone()))])

            def put(out, hook):
                if only_end:
                    out = out.clone()
                    rows = torch.arange(out.shape[0])
                    out[rows, end] = recorded["out"][rows, end]
                    return out
                return recorded["out"]

            ld = _mean_logit_diff(model.run_with_hooks(clean_tokens, fwd_hooks=[
                (f"blocks.{record_layer}.hook_mlp_out", put)]), correct, wrong, end)
            base = ld_corrupted if normalise_from_corrupted else ld_clean
            result[layer, head] = (ld - base) / (ld_clean - ld_corrupted)
    return result


def mlp_path_without_freezing(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                              mlp_layer):
    return _mlp_path(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions, mlp_layer,
                     freeze=False)


def mlp_path_one_layer_early(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                             mlp_layer):
    return _mlp_path(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions, mlp_layer,
                     record_layer=max(mlp_layer - 1, 0))


def mlp_path_normalised_from_corrupted(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens,
                                       end_positions, mlp_layer):
    return _mlp_path(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions, mlp_layer,
                     normalise_from_corrupted=True)


def mlp_path_at_the_end_only(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                             mlp_layer):
    return _mlp_path(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions, mlp_layer,
                     only_end=True)


def mlp_path_one_sender_at_a_time(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                                  mlp_layer):
    """A correct alternative: a loop over senders, two runs each."""
    return _mlp_path(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions, mlp_layer)


def mlp_path_through_its_input(model, clean_tokens, corrupted_tokens, correct_tokens, wrong_tokens, end_positions,
                               mlp_layer):
    """A correct alternative: record and patch the MLP's normalised input (ln2), one sender at a time."""
    if not 0 <= mlp_layer < model.cfg.n_layers:
        raise ValueError("no such layer")
    _, clean = model.run_with_cache(clean_tokens)
    _, corrupted = model.run_with_cache(corrupted_tokens)
    ld_clean = _mean_logit_diff(model(clean_tokens), correct_tokens, wrong_tokens, end_positions)
    ld_corrupted = _mean_logit_diff(model(corrupted_tokens), correct_tokens, wrong_tokens, end_positions)
    name = f"blocks.{mlp_layer}.ln2.hook_normalized"
    result = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(mlp_layer + 1):
        for head in range(model.cfg.n_heads):
            def set_z(z, hook):
                z = clean["z", hook.layer()].clone()
                if hook.layer() == layer:
                    z[:, :, head] = corrupted["z", layer][:, :, head]
                return z

            recorded = {}
            model.run_with_hooks(clean_tokens, fwd_hooks=[(_is_z, set_z),
                                                          (name, lambda x, hook: recorded.setdefault("x", x.clone()))])
            ld = _mean_logit_diff(model.run_with_hooks(clean_tokens, fwd_hooks=[(name, lambda x, hook: recorded["x"])]),
                                  correct_tokens, wrong_tokens, end_positions)
            result[layer, head] = (ld - ld_clean) / (ld_clean - ld_corrupted)
    return result


# ---- ablate_heads_and_mlps ----------------------------------------------------------------------------------------------
def _heads_mlps(model, tokens, reference_tokens, keep_heads, keep_mlps, mlps=True, flat=False, zero=False,
                invert=False):
    _, reference = model.run_with_cache(reference_tokens)
    mask = ~keep_mlps if invert else keep_mlps

    def heads(z, hook):
        return torch.where(keep_heads[hook.layer()][None, :, :, None], z, reference["z", hook.layer()].mean(0))

    def mlp(out, hook):
        mean = reference["mlp_out", hook.layer()].mean(0)
        if flat:
            mean = mean.mean(0, keepdim=True).expand_as(mean)
        if zero:
            mean = torch.zeros_like(mean)
        return torch.where(mask[hook.layer()][None, :, None], out, mean)

    hooks = [(_is_z, heads)] + ([(lambda n: n.endswith("hook_mlp_out"), mlp)] if mlps else [])
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


def ablation_of_heads_only(model, tokens, reference_tokens, keep_heads, keep_mlps):
    return _heads_mlps(model, tokens, reference_tokens, keep_heads, keep_mlps, mlps=False)


def ablation_of_mlps_by_means_over_positions(model, tokens, reference_tokens, keep_heads, keep_mlps):
    return _heads_mlps(model, tokens, reference_tokens, keep_heads, keep_mlps, flat=True)


def ablation_of_mlps_by_zeros(model, tokens, reference_tokens, keep_heads, keep_mlps):
    return _heads_mlps(model, tokens, reference_tokens, keep_heads, keep_mlps, zero=True)


def ablation_of_the_kept_mlps(model, tokens, reference_tokens, keep_heads, keep_mlps):
    return _heads_mlps(model, tokens, reference_tokens, keep_heads, keep_mlps, invert=True)


def ablation_of_heads_and_mlps_by_indexing(model, tokens, reference_tokens, keep_heads, keep_mlps):
    """A correct alternative: means in float64 written in place by boolean indexing."""
    _, reference = model.run_with_cache(reference_tokens)

    def heads(z, hook):
        z = z.clone()
        layer = hook.layer()
        mean = reference["z", layer].double().mean(0).to(z.dtype)
        z[:, ~keep_heads[layer]] = mean[~keep_heads[layer]]
        return z

    def mlp(out, hook):
        out = out.clone()
        layer = hook.layer()
        out[:, ~keep_mlps[layer]] = reference["mlp_out", layer].double().mean(0).to(out.dtype)[~keep_mlps[layer]]
        return out

    return model.run_with_hooks(tokens, fwd_hooks=[(_is_z, heads), (lambda n: n.endswith("hook_mlp_out"), mlp)])


def ablation_of_heads_and_mlps_prompt_by_prompt(model, tokens, reference_tokens, keep_heads, keep_mlps):
    """A correct alternative: means summed prompt by prompt, one prompt per run."""
    sums = {}
    for row in reference_tokens:
        _, cache = model.run_with_cache(row[None])
        for layer in range(model.cfg.n_layers):
            for key in ("z", "mlp_out"):
                sums[key, layer] = sums.get((key, layer), 0) + cache[key, layer][0]
    n = reference_tokens.shape[0]
    outputs = []
    for row in tokens:
        def heads(z, hook):
            return torch.where(keep_heads[hook.layer()][None, :, :, None], z, sums["z", hook.layer()] / n)

        def mlp(out, hook):
            return torch.where(keep_mlps[hook.layer()][None, :, None], out, sums["mlp_out", hook.layer()] / n)

        outputs.append(model.run_with_hooks(row[None], fwd_hooks=[(_is_z, heads),
                                                                  (lambda n: n.endswith("hook_mlp_out"), mlp)])[0])
    return torch.stack(outputs)


WRONG_IMPLEMENTATIONS = [
    (positions_end_is_last_column, "ioi_positions", day5_spec.END_IS_LAST_COLUMN),
    (positions_from_the_abba_template, "ioi_positions", DIFFER),
    (positions_s2_is_the_first_s, "ioi_positions", DIFFER),
    (positions_end_counted_with_bos, "ioi_positions", DIFFER),
    (abc_any_name, "abc_corruption", "must be neither the prompt's IO nor its S"),
    (abc_at_s1, "abc_corruption", "only S2"),
    (abc_always_the_first_other_name, "abc_corruption", "not uniform"),
    (abc_removing_only_s, "abc_corruption", "must be neither the prompt's IO nor its S"),
    (abc_at_io, "abc_corruption", "only S2"),
    (abc_with_the_global_rng, "abc_corruption", "global random number generator"),
    (logit_diff_at_last_position, "logit_diff", day5_spec.READ_AT_LAST),
    (logit_diff_wrong_minus_correct, "logit_diff", day5_spec.SIGN_FLIPPED),
    (logit_diff_averaged, "logit_diff", "shape"),
    (logit_diff_of_probabilities, "logit_diff", DIFFER),
    (range_at_coverage_quantiles, "usual_range", day5_spec.QUANTILES_AT_COVERAGE),
    (range_mean_plus_minus_std, "usual_range", DIFFER),
    (range_nearest_rank, "usual_range", DIFFER),
    (range_min_max, "usual_range", DIFFER),
    (read_one_position_early, "read_nodes", DIFFER),
    (read_queries, "read_nodes", DIFFER),
    (read_values, "read_nodes", DIFFER),
    (read_batch_first, "read_nodes", "shape"),
    (replace_at_every_position, "run_with_nodes_replaced", DIFFER),
    (replace_by_adding, "run_with_nodes_replaced", DIFFER),
    (replace_one_position_early, "run_with_nodes_replaced", DIFFER),
    (replace_the_values, "run_with_nodes_replaced", DIFFER),
    (effects_without_centring, "direct_effects", DIFFER),
    (effects_without_the_scale, "direct_effects", DIFFER),
    (effects_without_ln_weight, "direct_effects", DIFFER),
    (effects_at_the_last_position, "direct_effects", DIFFER),
    (effects_mlp_before_heads, "direct_effects", DIFFER),
    (patching_the_next_position, "head_patching_by_position", DIFFER),
    (patching_normalised_clean_corrupted_swapped, "head_patching_by_position", DIFFER),
    (patching_corrupted_into_clean, "head_patching_by_position", DIFFER),
    (patching_every_head_at_once, "head_patching_by_position", DIFFER),
    (patching_one_pass_per_patch, "head_patching_by_position", "forward passes of the model, and this exercise allows"),
    (prune_batched_by_the_sequential_loop, "greedy_prune_batched", "forward passes of the model, and this exercise"),
    (read_once_per_node, "read_nodes", "and this exercise allows one forward pass"),
    (path_without_freezing, "path_patching_to_logits", DIFFER),
    (path_in_the_corrupted_run, "path_patching_to_logits", DIFFER),
    (path_normalised_from_corrupted, "path_patching_to_logits", DIFFER),
    (path_senders_head_major, "path_patching_to_logits", DIFFER),
    (receivers_whole_layer, "path_patching_to_receivers", DIFFER),
    (receivers_always_queries, "path_patching_to_receivers", DIFFER),
    (receivers_skipping_the_second_run, "path_patching_to_receivers", DIFFER),
    (receivers_sign_flipped, "path_patching_to_receivers", DIFFER),
    (means_over_positions, "reference_means", "shape"),
    (means_over_prompts_and_positions, "reference_means", day5_spec.MEANS_OVER_POSITIONS),
    (means_of_values, "reference_means", DIFFER),
    (medians, "reference_means", DIFFER),
    (ablation_of_the_kept_slices, "mean_ablated_logits", day5_spec.ABLATION_INVERTED),
    (ablation_with_zeros, "mean_ablated_logits", DIFFER),
    (ablation_keeping_whole_heads, "mean_ablated_logits", DIFFER),
    (ablation_of_the_kept_positions_too, "mean_ablated_logits", DIFFER),
    (ablation_with_means_over_positions, "mean_ablated_logits", DIFFER),
    (faithfulness_as_fraction, "faithfulness", day5_spec.FRACTION_NOT_PERCENT),
    (faithfulness_mean_of_ratios, "faithfulness", SCALAR),
    (faithfulness_upside_down, "faithfulness", SCALAR),
    (faithfulness_as_loss, "faithfulness", SCALAR),
    (prune_in_reverse_order, "greedy_prune_sequential", DIFFER),
    (prune_relative_to_the_current_circuit, "greedy_prune_sequential", DIFFER),
    (prune_with_threshold_as_fraction, "greedy_prune_sequential", DIFFER),
    (prune_each_node_alone, "greedy_prune_sequential", DIFFER),
    (prune_batched_sorted_by_score, "greedy_prune_batched", DIFFER),
    (prune_batched_ignoring_failures, "greedy_prune_batched", DIFFER),
    (prune_in_reverse_order, "greedy_prune_batched", DIFFER),
    (prune_each_node_alone, "greedy_prune_batched", DIFFER),
    (minimality_in_logit_difference, "minimality", DIFFER),
    (minimality_against_the_full_model, "minimality", DIFFER),
    (minimality_as_ratio, "minimality", DIFFER),
    (minimality_sign_flipped, "minimality", "sign"),
    (answers_step_one, "number_answer_tokens", day5_spec.STEP_OF_ONE),
    (answers_swapped, "number_answer_tokens", DIFFER),
    (answers_repeat_is_the_first_number, "number_answer_tokens", DIFFER),
    (answers_step_from_the_bos, "number_answer_tokens", DIFFER),
    (corruption_shifted, "repeat_last_corruption", DIFFER),
    (corruption_with_the_first_number, "repeat_last_corruption", DIFFER),
    (corruption_of_the_one_before, "repeat_last_corruption", DIFFER),
    (corruption_dropping_the_last, "repeat_last_corruption", "shape"),
    (names_without_the_average, "name_direct_effects", DIFFER),
    (names_without_the_scale, "name_direct_effects", DIFFER),
    (names_columns_swapped, "name_direct_effects", DIFFER),
    (names_against_the_whole_vocabulary, "name_direct_effects", DIFFER),
    (names_at_the_last_position, "name_direct_effects", DIFFER),
    (mlp_path_without_freezing, "path_patching_to_mlp", DIFFER),
    (mlp_path_one_layer_early, "path_patching_to_mlp", DIFFER),
    (mlp_path_normalised_from_corrupted, "path_patching_to_mlp", DIFFER),
    (mlp_path_at_the_end_only, "path_patching_to_mlp", DIFFER),
    (ablation_of_heads_only, "ablate_heads_and_mlps", DIFFER),
    (ablation_of_mlps_by_means_over_positions, "ablate_heads_and_mlps", DIFFER),
    (ablation_of_mlps_by_zeros, "ablate_heads_and_mlps", DIFFER),
    (ablation_of_the_kept_mlps, "ablate_heads_and_mlps", DIFFER),
]

CORRECT_ALTERNATIVES = [
    (positions_by_search_loop, "ioi_positions"),
    (logit_diff_from_log_probs, "logit_diff"),
    (range_with_numpy, "usual_range"),
    (means_in_float64, "reference_means"),
    (faithfulness_of_sums, "faithfulness"),
    (path_one_sender_at_a_time, "path_patching_to_logits"),
    (abc_with_python_lists, "abc_corruption"),
    (abc_in_sorted_name_order, "abc_corruption"),
    (abc_by_randperm, "abc_corruption"),
    (read_with_recording_hooks, "read_nodes"),
    (patching_batched_per_layer, "head_patching_by_position"),
    (prune_batched_with_less_speculation, "greedy_prune_batched"),
    (replace_with_one_hook_per_node, "run_with_nodes_replaced"),
    (effects_per_prompt_in_float64, "direct_effects"),
    (receivers_one_sender_at_a_time, "path_patching_to_receivers"),
    (ablation_by_boolean_indexing, "mean_ablated_logits"),
    (minimality_in_one_batched_pass, "minimality"),
    (prune_sequential_by_the_batched_loop, "greedy_prune_sequential"),
    (answers_from_the_first_step, "number_answer_tokens"),
    (corruption_with_index_put, "repeat_last_corruption"),
    (names_by_centred_directions, "name_direct_effects"),
    (names_one_name_at_a_time, "name_direct_effects"),
    (mlp_path_one_sender_at_a_time, "path_patching_to_mlp"),
    (mlp_path_through_its_input, "path_patching_to_mlp"),
    (ablation_of_heads_and_mlps_by_indexing, "ablate_heads_and_mlps"),
    (ablation_of_heads_and_mlps_prompt_by_prompt, "ablate_heads_and_mlps"),
]


def test_every_exercise_has_at_least_four_wrong_implementations():
    from checks.specs.day5 import CHECKS

    counts = {check.name: 0 for check in CHECKS}
    for _, exercise, _ in WRONG_IMPLEMENTATIONS:
        counts[exercise] += 1
    assert all(count >= 4 for count in counts.values()), counts


@pytest.mark.parametrize("wrong, exercise, fragment", WRONG_IMPLEMENTATIONS,
                         ids=[f"{exercise}-{fn.__name__}" for fn, exercise, _ in WRONG_IMPLEMENTATIONS])
def test_wrong_implementation_is_rejected_with_a_pointed_message(wrong, exercise, fragment):
    with torch.no_grad():
        outcome = grade(wrong, name=exercise, device="cpu")
    assert outcome.status == "failed", f"{outcome.status}: {outcome.message}"
    message = f"{outcome.message}\n{all_hints(outcome)}".lower()
    assert fragment.lower() in message, outcome.message
    assert outcome.hint, outcome.message
    with torch.no_grad():
        margin = case_margin(wrong, exercise, outcome.case, device="cpu")  # the case that rejected it
    assert is_clear_rejection(margin), (
        f"{wrong.__name__} fails case {outcome.case!r} by a margin of only {margin:.3g}")


@pytest.mark.parametrize("correct, exercise", CORRECT_ALTERNATIVES,
                         ids=[f"{exercise}-{fn.__name__}" for fn, exercise in CORRECT_ALTERNATIVES])
def test_correct_alternative_is_accepted(correct, exercise):
    with torch.no_grad():
        outcome = grade(correct, name=exercise, device="cpu")
    assert outcome.status == "passed", f"{outcome.status}: {outcome.message}"
    with torch.no_grad():
        found = margins(correct, exercise, device="cpu")
    assert max(found.values()) <= CORRECT_MARGIN, f"{correct.__name__} passes too narrowly: {found}"
