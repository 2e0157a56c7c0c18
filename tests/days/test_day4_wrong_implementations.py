"""Day 4 grading is right about plausible learners: wrong answers are rejected with a message that points at the
mistake, by a clear margin, and correct alternatives (different but valid code) are accepted with room to spare.

Each wrong implementation is a mistake a learner is likely to make, of one of four kinds: a numeric slip, a value
hard-coded from one input (which another case exposes), a broken contract (a dtype or type other than the
docstring's, a documented ValueError never raised), or a wrong axis or position. Grading must say "failed", the
message must name what differs, and the failing case's margin (error over tolerance) must be at least 10; every
correct alternative must pass every case with a margin of at most 0.1.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from margins import CORRECT_MARGIN, WRONG_MARGIN, case_margin, grade, margins
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
from solutions import day4_array_indexing as solution

ANSWERS = list(ANSWER_POSITIONS)
LABELS = list(LABEL_POSITIONS)


# ---- sample_array_indexing_batch ------------------------------------------------------------------------------------
def _assemble(lists: Tensor, idx: Tensor, elt: Tensor, update: bool = True) -> Tensor:
    batch = lists.shape[0]
    answers = lists.clone()
    if update:
        answers[torch.arange(batch), idx] = elt
    bos, nl = torch.full((batch, 1), BOS_TOKEN), torch.full((batch, 1), NL_TOKEN)
    return torch.cat([bos, lists, nl, idx[:, None], elt[:, None], nl, answers], dim=1)


def sample_without_update(batch_size, generator):
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    return _assemble(lists, idx, elt, update=False)


def sample_one_idx_per_batch(batch_size, generator):
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (1,), generator=generator).expand(batch_size)
    elt = torch.randint(0, MAX_NUM, (1,), generator=generator).expand(batch_size)
    return _assemble(lists, idx, elt)


# ---- answer_loss ------------------------------------------------------------------------------------------------------
def _cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    log_probs = logits.to(torch.float64).log_softmax(-1)
    return -log_probs.gather(-1, targets[..., None])[..., 0]


def loss_at_label_positions(logits, tokens):
    return _cross_entropy(logits[:, LABELS], tokens[:, LABELS]).mean()


def loss_over_every_position(logits, tokens):
    return _cross_entropy(logits[:, :-1], tokens[:, 1:].clamp(max=MAX_NUM - 1)).mean()


def loss_summed_over_answers(logits, tokens):
    return _cross_entropy(logits[:, ANSWERS], tokens[:, LABELS]).sum(-1).mean()


# ---- position_labels --------------------------------------------------------------------------------------------------
def labels_numbered_from_one(list_len=LIST_LEN):
    return ["BOS", *[f"a{i + 1}" for i in range(list_len)], "NL", "idx", "elt", "NL", *[f"b{i + 1}" for i in range(list_len)]]


def labels_missing_second_newline(list_len=LIST_LEN):
    return ["BOS", *[f"a{i}" for i in range(list_len)], "NL", "idx", "elt", *[f"b{i}" for i in range(list_len)]]


# ---- answer_accuracy --------------------------------------------------------------------------------------------------
def accuracy_at_label_positions(logits, tokens):
    return (logits[:, LABELS].argmax(-1) == tokens[:, LABELS]).float().mean(0)


def accuracy_averaged_over_answers(logits, tokens):
    return (logits[:, ANSWERS].argmax(-1) == tokens[:, LABELS]).float().mean(1)


def accuracy_overall(logits, tokens):
    return (logits[:, ANSWERS].argmax(-1) == tokens[:, LABELS]).float().mean().expand(LIST_LEN)


# ---- attention_by_idx_match and attention_to_answer_source -----------------------------------------------------------
def _patterns(model, tokens) -> Tensor:
    """[layer, batch, query, key] attention of head 0."""
    _, cache = model.run_with_cache(tokens)
    return torch.stack([cache["pattern", layer][:, 0] for layer in range(model.cfg.n_layers)])


def _split_by_match(model, tokens, queries, flip=False):
    patterns = _patterns(model, tokens)
    idx = tokens[:, IDX_POSITION]
    result = torch.zeros(model.cfg.n_layers, LIST_LEN, 2, tokens.shape[1])
    for j, query in enumerate(queries):
        for match in (0, 1):
            examples = (idx == j) == (bool(match) != flip)
            result[:, j, match] = patterns[:, examples, query].mean(1)
    return result


def by_match_at_label_positions(model, tokens):
    return _split_by_match(model, tokens, LABELS)


def by_match_cases_swapped(model, tokens):
    return _split_by_match(model, tokens, ANSWERS, flip=True)


def by_match_unsplit(model, tokens):
    mean = _patterns(model, tokens)[:, :, ANSWERS].mean(1)  # [layer, answer, key]
    return mean[:, :, None].expand(-1, -1, 2, -1).clone()


def source_attention_to_list_only(model, tokens):
    patterns = _patterns(model, tokens)
    return torch.stack([patterns[:, :, q, 1 + j].mean(1) for j, q in enumerate(ANSWERS)], dim=1)


def source_attention_at_label_positions(model, tokens):
    patterns = _patterns(model, tokens)
    batch = torch.arange(tokens.shape[0])
    idx = tokens[:, IDX_POSITION]
    columns = []
    for j, query in enumerate(LABELS):
        source = torch.where(idx == j, ELT_POSITION, 1 + j)
        columns.append(patterns[:, batch, query, source].mean(1))
    return torch.stack(columns, dim=1)


# ---- attention_ablation_effects ---------------------------------------------------------------------------------------
def _ablation(model, tokens, replacements, hook_suffix="hook_attn_out"):
    answers = tokens[:, LABELS]
    loss = torch.zeros(2, model.cfg.n_layers, LIST_LEN)
    accuracy = torch.zeros(2, model.cfg.n_layers, LIST_LEN)
    for method, replace in enumerate(replacements):
        for layer in range(model.cfg.n_layers):
            logits = model.run_with_hooks(
                tokens, fwd_hooks=[(f"blocks.{layer}.{hook_suffix}", lambda x, hook: replace(x))]
            )
            loss[method, layer] = _cross_entropy(logits[:, ANSWERS], answers).mean(0).float()
            accuracy[method, layer] = (logits[:, ANSWERS].argmax(-1) == answers).float().mean(0)
    return loss, accuracy


def ablation_mean_over_positions(model, tokens):
    return _ablation(model, tokens, [torch.zeros_like, lambda x: x.mean(1, keepdim=True).expand_as(x)])


def ablation_methods_swapped(model, tokens):
    return _ablation(model, tokens, [lambda x: x.mean(0, keepdim=True).expand_as(x), torch.zeros_like])


def ablation_of_the_residual_stream(model, tokens):
    replacements = [torch.zeros_like, lambda x: x.mean(0, keepdim=True).expand_as(x)]
    return _ablation(model, tokens, replacements, hook_suffix="hook_resid_post")


# ---- answer_logit_attribution -----------------------------------------------------------------------------------------
def _attribution(model, tokens, positional, targets=None, positions=ANSWERS):
    _, cache = model.run_with_cache(tokens)
    components = torch.stack(
        [cache["hook_embed"], positional(cache)]
        + [cache[f"blocks.{layer}.hook_attn_out"] for layer in range(model.cfg.n_layers)]
    )[:, :, positions]
    targets = tokens[:, LABELS] if targets is None else targets
    return (components * model.W_U.T[targets]).sum(-1)


def _no_positional(cache):
    return torch.zeros_like(cache["hook_embed"])


def attribution_projecting_pos_embed(model, tokens):
    return _attribution(model, tokens, lambda cache: cache["hook_pos_embed"].expand_as(cache["hook_embed"]))


def attribution_to_the_logit_minus_mean_logit(model, tokens):
    _, cache = model.run_with_cache(tokens)
    components = torch.stack(
        [cache["hook_embed"], _no_positional(cache)]
        + [cache[f"blocks.{layer}.hook_attn_out"] for layer in range(model.cfg.n_layers)]
    )[:, :, ANSWERS]
    centred_unembed = model.W_U - model.W_U.mean(dim=1, keepdim=True)
    return (components * centred_unembed.T[tokens[:, LABELS]]).sum(-1)


def attribution_read_at_the_label_positions(model, tokens):
    return _attribution(model, tokens, _no_positional, positions=LABELS)


# ---- full_ov_circuit and copying_score --------------------------------------------------------------------------------
def ov_with_output_before_value(model, layer, head=0):
    return model.W_E[:MAX_NUM] @ model.W_O[layer, head] @ model.W_V[layer, head] @ model.W_U


def ov_transposed(model, layer, head=0):
    return (model.W_E[:MAX_NUM] @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U).T


def ov_with_every_input_token(model, layer, head=0):
    return model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U


def copying_by_column(ov_circuit):
    return (ov_circuit.argmax(0) == torch.arange(ov_circuit.shape[0])).float().mean().item()


def copying_as_mean_diagonal(ov_circuit):
    return ov_circuit.diagonal().mean().item()


def copying_as_count(ov_circuit):
    return int((ov_circuit.argmax(-1) == torch.arange(ov_circuit.shape[0])).sum())


# ---- residual_patching_effect ----------------------------------------------------------------------------------------------
def _patching(model, clean, corrupted, answers_of, normalise=True, cumulative=False):
    clean_answers, corrupted_answers = answers_of(clean), answers_of(corrupted)
    differs = clean_answers != corrupted_answers

    def logit_difference(logits):
        logits = logits[:, ANSWERS]
        diff = logits.gather(-1, corrupted_answers[..., None]) - logits.gather(-1, clean_answers[..., None])
        return diff[..., 0][differs].mean()

    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    names.append(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post")
    corrupted_logits, cache = model.run_with_cache(corrupted)
    ld_clean, ld_corrupted = logit_difference(model(clean)), logit_difference(corrupted_logits)
    effect = torch.zeros(len(names), clean.shape[1])
    for point, name in enumerate(names):
        for position in range(clean.shape[1]):
            patched = slice(0, position + 1) if cumulative else slice(position, position + 1)

            def patch(resid, hook, patched=patched, name=name):
                resid = resid.clone()
                resid[:, patched] = cache[name][:, patched]
                return resid

            ld = logit_difference(model.run_with_hooks(clean, fwd_hooks=[(name, patch)]))
            effect[point, position] = (ld - ld_clean) / (ld_corrupted - ld_clean) if normalise else ld
    return effect


def _implied_answers(tokens):
    is_idx = tokens[:, IDX_POSITION, None] == torch.arange(LIST_LEN)
    return torch.where(is_idx, tokens[:, ELT_POSITION, None], tokens[:, 1 : 1 + LIST_LEN])


def patching_with_answers_read_from_the_end(model, clean_tokens, corrupted_tokens):
    return _patching(model, clean_tokens, corrupted_tokens, lambda tokens: tokens[:, LABELS])


def patching_without_normalising(model, clean_tokens, corrupted_tokens):
    return _patching(model, clean_tokens, corrupted_tokens, _implied_answers, normalise=False)


def patching_every_position_up_to(model, clean_tokens, corrupted_tokens):
    return _patching(model, clean_tokens, corrupted_tokens, _implied_answers, cumulative=True)


# ---- predict_from_attention -------------------------------------------------------------------------------------------
def predict_from_layer_zero(model, tokens, layer):
    return solution.predict_from_attention(model, tokens, 0)


def predict_position_not_token(model, tokens, layer):
    return _patterns(model, tokens)[layer][:, ANSWERS].argmax(-1)


def predict_from_label_rows(model, tokens, layer):
    return tokens.gather(1, _patterns(model, tokens)[layer][:, LABELS].argmax(-1))


# ---- more wrong implementations: hard-coded values and broken contracts ------------------------------------------------
def sample_a_batch_of_64(batch_size, generator):
    return solution.sample_array_indexing_batch(64, generator)


def sample_without_checking_the_batch_size(batch_size, generator):
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    return _assemble(lists, idx, elt)


def sample_as_int32(batch_size, generator):
    return solution.sample_array_indexing_batch(batch_size, generator).int()


def loss_at_positions_6_to_8(logits, tokens):
    return _cross_entropy(logits[:, [6, 7, 8]], tokens[:, [7, 8, 9]].clamp(max=MAX_NUM - 1)).mean()


def loss_with_a_hard_coded_batch(logits, tokens):
    return _cross_entropy(logits[:, ANSWERS], tokens[:, LABELS]).sum() / (200 * LIST_LEN)


def loss_in_float32(logits, tokens):
    return solution.answer_loss(logits, tokens).float()


def loss_as_a_python_float(logits, tokens):
    return solution.answer_loss(logits, tokens).item()


def labels_for_three_entries(list_len=LIST_LEN):
    return solution.position_labels(LIST_LEN)


def labels_without_checking_list_len(list_len=LIST_LEN):
    return ["BOS", *[f"a{i}" for i in range(list_len)], "NL", "idx", "elt", "NL", *[f"b{i}" for i in range(list_len)]]


def labels_answers_before_the_list(list_len=LIST_LEN):
    labels = solution.position_labels(list_len)
    return [labels[0], *labels[-list_len:], *labels[1 + list_len : -list_len], *labels[1 : 1 + list_len]]


def accuracy_with_a_hard_coded_batch(logits, tokens):
    return (logits[:, ANSWERS].argmax(-1) == tokens[:, LABELS]).float().sum(0) / 300


def accuracy_as_a_list(logits, tokens):
    return solution.answer_accuracy(logits, tokens).tolist()


def by_match_without_the_value_error(model, tokens):
    patterns = _patterns(model, tokens)
    idx = tokens[:, IDX_POSITION]
    result = torch.zeros(model.cfg.n_layers, LIST_LEN, 2, tokens.shape[1])
    for j, query in enumerate(ANSWERS):
        for match in (0, 1):
            result[:, j, match] = patterns[:, (idx == j) == bool(match), query].mean(1)
    return result


def by_match_normalised_by_a_third_of_the_batch(model, tokens):
    patterns = _patterns(model, tokens)
    idx = tokens[:, IDX_POSITION]
    result = torch.zeros(model.cfg.n_layers, LIST_LEN, 2, tokens.shape[1])
    for j, query in enumerate(ANSWERS):
        for match in (0, 1):
            examples = (idx == j) == bool(match)
            if not examples.any():
                raise ValueError("a case is missing")
            expected_count = len(tokens) / LIST_LEN if match else len(tokens) * (LIST_LEN - 1) / LIST_LEN
            result[:, j, match] = patterns[:, examples, query].sum(1) / expected_count
    return result


def source_attention_to_idx_instead_of_elt(model, tokens):
    patterns = _patterns(model, tokens)
    batch = torch.arange(tokens.shape[0])
    idx = tokens[:, IDX_POSITION]
    columns = [patterns[:, batch, query, torch.where(idx == j, IDX_POSITION, 1 + j)].mean(1)
               for j, query in enumerate(ANSWERS)]
    return torch.stack(columns, dim=1)


def source_attention_for_a_batch_of_200(model, tokens):
    patterns = _patterns(model, tokens)
    batch = torch.arange(200)
    idx = tokens[:, IDX_POSITION]
    columns = [patterns[:, batch, query, torch.where(idx == j, ELT_POSITION, 1 + j)].mean(1)
               for j, query in enumerate(ANSWERS)]
    return torch.stack(columns, dim=1)


def ablation_returned_in_float64(model, tokens):
    loss, accuracy = solution.attention_ablation_effects(model, tokens)
    return loss.double(), accuracy.double()


def ablation_mean_over_a_hard_coded_batch(model, tokens):
    return _ablation(model, tokens, [torch.zeros_like, lambda x: (x.sum(0, keepdim=True) / 200).expand_as(x)])


def attribution_of_the_last_layer_only(model, tokens):
    full = solution.answer_logit_attribution(model, tokens)
    return torch.cat([full[:2], full[-1:]])


def attribution_batch_first(model, tokens):
    return _attribution(model, tokens, _no_positional).transpose(0, 1)


def ov_of_layer_one(model, layer, head=0):
    return solution.full_ov_circuit(model, 1, head)


def ov_counting_layers_from_the_end(model, layer, head=0):
    if layer >= model.cfg.n_layers:
        raise ValueError("no such layer")
    return model.W_E[:MAX_NUM] @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U


def copying_of_fifty_tokens(ov_circuit):
    return (ov_circuit.argmax(-1) == torch.arange(50)).float().mean().item()


def copying_without_checking_the_shape(ov_circuit):
    return (ov_circuit.argmax(-1) == torch.arange(ov_circuit.shape[0])).float().mean().item()


def patching_with_idx_always_the_corrupted_token(model, clean_tokens, corrupted_tokens):
    def answers_assuming_idx_changed(tokens):  # takes elt from the clean run: right only when idx was corrupted
        is_idx = tokens[:, IDX_POSITION, None] == torch.arange(LIST_LEN)
        return torch.where(is_idx, clean_tokens[:, ELT_POSITION, None], tokens[:, 1 : 1 + LIST_LEN])

    return _patching(model, clean_tokens, corrupted_tokens, answers_assuming_idx_changed)


def patching_without_checking_shapes(model, clean_tokens, corrupted_tokens):
    return _patching(model, clean_tokens, corrupted_tokens, _implied_answers)


def predict_as_int32(model, tokens, layer):
    return solution.predict_from_attention(model, tokens, layer).int()


def predict_without_checking_the_layer(model, tokens, layer):
    pattern = _patterns(model, tokens)[layer][:, ANSWERS]
    return tokens.gather(1, pattern.argmax(-1))


# ---- correct alternatives -----------------------------------------------------------------------------------------------
def sample_idx_first(batch_size, generator):
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    return _assemble(lists, idx, elt)


def sample_with_scatter(batch_size, generator):
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    answers = lists.scatter(1, idx[:, None], elt[:, None])
    columns = [torch.full((batch_size,), BOS_TOKEN), *lists.T, torch.full((batch_size,), NL_TOKEN), idx, elt,
               torch.full((batch_size,), NL_TOKEN), *answers.T]
    return torch.stack(columns, dim=1)


def sample_with_a_loop(batch_size, generator):
    if batch_size <= 0:
        raise ValueError(f"bad batch_size {batch_size}")
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    rows = []
    for a, i, e in zip(lists.tolist(), idx.tolist(), elt.tolist()):
        b = list(a)
        b[i] = e
        rows.append([BOS_TOKEN, *a, NL_TOKEN, i, e, NL_TOKEN, *b])
    return torch.tensor(rows, dtype=torch.int64)


def loss_with_cross_entropy(logits, tokens):
    answer_logits = logits[:, ANSWERS].to(torch.float64)
    return F.cross_entropy(answer_logits.flatten(0, 1), tokens[:, LABELS].flatten())


def loss_with_logsumexp(logits, tokens):
    answer_logits = logits[:, ANSWERS].double()
    correct = answer_logits.gather(-1, tokens[:, LABELS, None])[..., 0]
    return (answer_logits.logsumexp(-1) - correct).mean()


def labels_by_appending(list_len=LIST_LEN):
    if list_len < 1:
        raise ValueError("list_len must be at least 1")
    labels = ["BOS"]
    labels += [f"a{i}" for i in range(list_len)]
    labels += ["NL", "idx", "elt", "NL"]
    labels += [f"b{i}" for i in range(list_len)]
    return labels


def labels_as_a_tuple(list_len=LIST_LEN):
    if not list_len >= 1:
        raise ValueError(list_len)
    return ("BOS", *(f"a{i}" for i in range(list_len)), "NL", "idx", "elt", "NL", *(f"b{i}" for i in range(list_len)))


def accuracy_in_float64(logits, tokens):
    return (logits[:, ANSWERS].argmax(-1) == tokens[:, LABELS]).double().mean(0)


def accuracy_by_counting(logits, tokens):
    correct = logits[:, 7:10].argmax(dim=2).eq(tokens[:, 8:11])
    return correct.sum(dim=0) / correct.shape[0]


def by_match_with_weights(model, tokens):
    patterns = _patterns(model, tokens)  # [layer, batch, query, key]
    idx = tokens[:, IDX_POSITION]
    result = torch.zeros(model.cfg.n_layers, LIST_LEN, 2, tokens.shape[1])
    for j, query in enumerate(ANSWERS):
        matches = (idx == j).float()
        for match, weights in enumerate((1 - matches, matches)):
            if weights.sum() == 0:
                raise ValueError(f"no example for answer {j}, match {match}")
            result[:, j, match] = torch.einsum("b,lbk->lk", weights, patterns[:, :, query]) / weights.sum()
    return result


def by_match_with_hooks(model, tokens):
    patterns = {}
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[
        (lambda name: name.endswith("hook_pattern"), lambda p, hook: patterns.__setitem__(hook.layer(), p[:, 0]))])
    idx = tokens[:, IDX_POSITION]
    result = torch.zeros(model.cfg.n_layers, LIST_LEN, 2, tokens.shape[1])
    for layer, pattern in patterns.items():
        for j, query in enumerate(ANSWERS):
            for match in (0, 1):
                rows = pattern[(idx == j) == bool(match), query]
                if rows.shape[0] == 0:
                    raise ValueError("missing case")
                result[layer, j, match] = rows.mean(0)
    return result


def source_attention_with_gather(model, tokens):
    patterns = _patterns(model, tokens)[:, :, ANSWERS]  # [layer, batch, answer, key]
    idx = tokens[:, IDX_POSITION, None]
    sources = torch.where(idx == torch.arange(LIST_LEN), ELT_POSITION, 1 + torch.arange(LIST_LEN))  # [batch, answer]
    index = sources[None, ..., None].expand(patterns.shape[0], -1, -1, 1)
    return patterns.gather(-1, index)[..., 0].mean(1)


def source_attention_with_a_one_hot_mask(model, tokens):
    patterns = _patterns(model, tokens)[:, :, ANSWERS]
    idx = tokens[:, IDX_POSITION, None]
    sources = torch.where(idx == torch.arange(LIST_LEN), ELT_POSITION, 1 + torch.arange(LIST_LEN))
    mask = F.one_hot(sources, tokens.shape[1]).float()
    return (patterns * mask).sum(-1).mean(1)


def ablation_with_cross_entropy(model, tokens):
    answers = tokens[:, LABELS]
    loss = torch.zeros(2, model.cfg.n_layers, LIST_LEN)
    accuracy = torch.zeros(2, model.cfg.n_layers, LIST_LEN)
    for method, replace in enumerate((torch.zeros_like, lambda x: x.mean(0, keepdim=True).expand_as(x))):
        for layer in range(model.cfg.n_layers):
            logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.hook_attn_out", lambda x, hook: replace(x))])
            answer_logits = logits[:, ANSWERS].double()
            per_example = F.cross_entropy(answer_logits.transpose(1, 2), answers, reduction="none")  # [batch, answer]
            loss[method, layer] = per_example.mean(0).float()
            accuracy[method, layer] = (answer_logits.argmax(-1) == answers).float().mean(0)
    return loss, accuracy


def ablation_with_a_summed_mean(model, tokens):
    return _ablation(model, tokens, [lambda x: x * 0, lambda x: (x.sum(0, keepdim=True) / x.shape[0]).expand_as(x)])


def attribution_with_zero_positions(model, tokens):
    return _attribution(model, tokens, _no_positional)


def attribution_with_einsum(model, tokens):
    _, cache = model.run_with_cache(tokens)
    parts = [cache["hook_embed"], cache["blocks.0.hook_resid_pre"] - cache["hook_embed"]]
    parts += [cache["attn_out", layer] for layer in range(model.cfg.n_layers)]
    stacked = torch.stack(parts)[:, :, ANSWERS]  # [component, batch, answer, d_model]
    directions = model.W_U[:, tokens[:, LABELS]]  # [d_model, batch, answer]
    return torch.einsum("cbam,mba->cba", stacked, directions)


def ov_with_factored_matrices(model, layer, head=0):
    if layer < 0 or layer >= model.cfg.n_layers:
        raise ValueError(f"no layer {layer}")
    return (model.W_E[:MAX_NUM] @ model.OV[layer, head] @ model.W_U).AB


def ov_associated_from_the_right(model, layer, head=0):
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError("layer out of range")
    return model.W_E[: model.cfg.d_vocab_out] @ (model.W_V[layer, head] @ (model.W_O[layer, head] @ model.W_U))


def copying_by_counting(ov_circuit):
    rows, columns = ov_circuit.shape
    if rows != columns:
        raise ValueError("not square")
    return int((ov_circuit.argmax(1) == torch.arange(rows)).sum()) / rows


def copying_with_max_values(ov_circuit):
    if ov_circuit.ndim != 2 or ov_circuit.shape[0] != ov_circuit.shape[1]:
        raise ValueError("expected a square matrix")
    return (ov_circuit.diagonal() >= ov_circuit.max(dim=-1).values).double().mean().item()


def patching_one_position_at_a_time(model, clean_tokens, corrupted_tokens):
    if clean_tokens.shape != corrupted_tokens.shape:
        raise ValueError("shapes differ")
    return _patching(model, clean_tokens, corrupted_tokens, _implied_answers)


def patching_with_log_probabilities(model, clean_tokens, corrupted_tokens):
    if clean_tokens.shape != corrupted_tokens.shape:
        raise ValueError("shapes differ")
    clean_answers, corrupted_answers = _implied_answers(clean_tokens), _implied_answers(corrupted_tokens)
    differs = clean_answers != corrupted_answers

    def logit_difference(logits):  # log-probabilities differ exactly as logits do
        log_probs = logits[:, ANSWERS].log_softmax(-1)
        diff = log_probs.gather(-1, corrupted_answers[..., None]) - log_probs.gather(-1, clean_answers[..., None])
        return diff[..., 0][differs].mean()

    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    names.append(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post")
    corrupted_logits, cache = model.run_with_cache(corrupted_tokens)
    ld_clean, ld_corrupted = logit_difference(model(clean_tokens)), logit_difference(corrupted_logits)
    effect = torch.zeros(len(names), clean_tokens.shape[1])
    for point, name in enumerate(names):
        for position in range(clean_tokens.shape[1]):
            def patch(resid, hook, position=position, name=name):
                resid = resid.clone()
                resid[:, position] = cache[name][:, position]
                return resid

            ld = logit_difference(model.run_with_hooks(clean_tokens, fwd_hooks=[(name, patch)]))
            effect[point, position] = (ld - ld_clean) / (ld_corrupted - ld_clean)
    return effect


def predict_with_take_along_dim(model, tokens, layer):
    if layer not in range(model.cfg.n_layers):
        raise ValueError(f"layer {layer} out of range")
    keys = _patterns(model, tokens)[layer][:, ANSWERS].max(dim=-1).indices
    return torch.take_along_dim(tokens, keys, dim=1)


def predict_with_a_hook(model, tokens, layer):
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError("bad layer")
    kept = {}
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[
        (f"blocks.{layer}.attn.hook_pattern", lambda p, hook: kept.__setitem__("pattern", p[:, 0, ANSWERS]))])
    return tokens.gather(1, kept["pattern"].argmax(-1))


# ---- predicted_read_positions (judged by its agreement with layer 1, not by one expected output) --------------------
def _rule(tokens, matched, unmatched):
    is_idx = tokens[:, IDX_POSITION, None] == torch.arange(LIST_LEN)
    return torch.where(is_idx, matched, unmatched).expand(tokens.shape[0], -1).contiguous()


def read_positions_ignoring_idx(tokens):
    return (1 + torch.arange(LIST_LEN)).expand(tokens.shape[0], -1).contiguous()


def read_positions_at_idx_when_matched(tokens):
    return _rule(tokens, IDX_POSITION, 1 + torch.arange(LIST_LEN))


def read_positions_counting_entries_from_bos(tokens):
    return _rule(tokens, ELT_POSITION, torch.arange(LIST_LEN))  # a_j taken as position j, not 1 + j


def read_tokens_not_positions(tokens):
    return tokens.gather(1, _rule(tokens, ELT_POSITION, 1 + torch.arange(LIST_LEN)))


def read_positions_as_int32(tokens):
    return _rule(tokens, ELT_POSITION, 1 + torch.arange(LIST_LEN)).int()


def read_positions_for_a_batch_of_300(tokens):
    idx = tokens[:300, IDX_POSITION, None].expand(300, -1) if len(tokens) >= 300 else tokens.new_zeros(300, 1)
    return torch.where(idx == torch.arange(LIST_LEN), ELT_POSITION, 1 + torch.arange(LIST_LEN))


def read_positions_with_a_loop(tokens):
    positions = torch.zeros(tokens.shape[0], LIST_LEN, dtype=torch.int64)
    for example, idx in enumerate(tokens[:, IDX_POSITION].tolist()):
        for j in range(LIST_LEN):
            positions[example, j] = ELT_POSITION if idx == j else 1 + j
    return positions


def read_positions_noticing_the_idx_route(tokens):
    """A refinement a learner may find: at b2, when a2 is the token 2 and idx is not 2, layer 1 reads the idx position
    more often than a2. Different from the course's rule on some examples, and right."""
    positions = _rule(tokens, ELT_POSITION, 1 + torch.arange(LIST_LEN))
    route = (tokens[:, LIST_LEN] == 2) & (tokens[:, IDX_POSITION] != LIST_LEN - 1)
    positions[route, LIST_LEN - 1] = IDX_POSITION
    return positions


# ---- predictions_with_idx_patched ---------------------------------------------------------------------------------
def _check_patch_arguments(model, tokens, new_idx, layer, position):
    if new_idx.shape != tokens.shape[:1] or not ((new_idx >= 0) & (new_idx < LIST_LEN)).all():
        raise ValueError("bad new_idx")
    if not 0 <= layer < model.cfg.n_layers or not 0 <= position < tokens.shape[1]:
        raise ValueError("bad layer or position")


def _moved(tokens, new_idx):
    moved = tokens.clone()
    moved[:, IDX_POSITION] = new_idx
    return moved


def _patched_predictions(model, tokens, new_idx, hook_name, positions):
    _, cache = model.run_with_cache(_moved(tokens, new_idx), names_filter=hook_name)

    def patch(resid, hook):
        resid = resid.clone()
        resid[:, positions] = cache[hook_name][:, positions]
        return resid

    return model.run_with_hooks(tokens, fwd_hooks=[(hook_name, patch)])[:, ANSWERS].argmax(-1)


def idx_patch_of_the_whole_run(model, tokens, new_idx, layer, position):
    _check_patch_arguments(model, tokens, new_idx, layer, position)
    return model(_moved(tokens, new_idx))[:, ANSWERS].argmax(-1)


def idx_patch_leaving_the_layer(model, tokens, new_idx, layer, position):
    _check_patch_arguments(model, tokens, new_idx, layer, position)
    return _patched_predictions(model, tokens, new_idx, f"blocks.{layer}.hook_resid_post", [position])


def idx_patch_from_the_position_on(model, tokens, new_idx, layer, position):
    _check_patch_arguments(model, tokens, new_idx, layer, position)
    return _patched_predictions(model, tokens, new_idx, f"blocks.{layer}.hook_resid_pre", list(range(position, 11)))


def idx_patch_always_at_elt(model, tokens, new_idx, layer, position):
    _check_patch_arguments(model, tokens, new_idx, layer, position)
    return _patched_predictions(model, tokens, new_idx, f"blocks.{layer}.hook_resid_pre", [ELT_POSITION])


def idx_patch_without_checking(model, tokens, new_idx, layer, position):
    return _patched_predictions(model, tokens, new_idx.clamp(max=LIST_LEN - 1), f"blocks.{layer}.hook_resid_pre",
                                [min(position, 10)])


def idx_patch_with_a_hooks_context(model, tokens, new_idx, layer, position):
    _check_patch_arguments(model, tokens, new_idx, layer, position)
    name = f"blocks.{layer}.hook_resid_pre"
    kept = {}
    model.run_with_hooks(_moved(tokens, new_idx), return_type=None,
                         fwd_hooks=[(name, lambda resid, hook: kept.__setitem__("resid", resid[:, position].clone()))])

    def put(resid, hook):
        return torch.cat([resid[:, :position], kept["resid"][:, None], resid[:, position + 1:]], dim=1)

    with model.hooks(fwd_hooks=[(name, put)]):
        logits = model(tokens)
    return logits[:, ANSWERS].max(-1).indices


def idx_patch_with_a_cache_of_everything(model, tokens, new_idx, layer, position):
    _check_patch_arguments(model, tokens, new_idx, layer, position)
    _, cache = model.run_with_cache(_moved(tokens, new_idx))
    name = f"blocks.{layer}.hook_resid_pre"
    mask = (torch.arange(tokens.shape[1]) == position)[None, :, None]

    def patch(resid, hook):
        return torch.where(mask, cache[name], resid)

    return model.run_with_hooks(tokens, fwd_hooks=[(name, patch)])[:, ANSWERS].argmax(-1)


# ---- predictions_with_attention_cut ---------------------------------------------------------------------------------
def _check_cut_arguments(model, tokens, layer, query_position, key_position):
    if not 0 <= layer < model.cfg.n_layers or not 0 <= key_position <= query_position < tokens.shape[1]:
        raise ValueError("bad arguments")


def _cut_predictions(model, tokens, layer, edit):
    return model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.attn.hook_pattern", edit)])[:, ANSWERS].argmax(-1)


def cut_and_renormalise(model, tokens, layer, query_position, key_position):
    _check_cut_arguments(model, tokens, layer, query_position, key_position)

    def edit(pattern, hook):
        pattern = pattern.clone()
        pattern[:, 0, query_position, key_position] = 0
        return pattern / pattern.sum(-1, keepdim=True)

    return _cut_predictions(model, tokens, layer, edit)


def cut_query_and_key_swapped(model, tokens, layer, query_position, key_position):
    _check_cut_arguments(model, tokens, layer, query_position, key_position)

    def edit(pattern, hook):
        pattern = pattern.clone()
        pattern[:, 0, key_position, query_position] = 0
        return pattern

    return _cut_predictions(model, tokens, layer, edit)


def cut_in_layer_one_always(model, tokens, layer, query_position, key_position):
    _check_cut_arguments(model, tokens, layer, query_position, key_position)
    return solution.predictions_with_attention_cut(model, tokens, 1, query_position, key_position)


def cut_forgetting_the_head_dimension(model, tokens, layer, query_position, key_position):
    _check_cut_arguments(model, tokens, layer, query_position, key_position)

    def edit(pattern, hook):
        pattern = pattern.clone()
        pattern[:, query_position, key_position] = 0  # [batch, head, query, key]: this indexes the head
        return pattern

    return _cut_predictions(model, tokens, layer, edit)


def cut_without_checking(model, tokens, layer, query_position, key_position):
    def edit(pattern, hook):
        pattern = pattern.clone()
        pattern[:, 0, query_position % 11, key_position % 11] = 0
        return pattern

    return _cut_predictions(model, tokens, min(layer, 1), edit)


def cut_with_a_mask(model, tokens, layer, query_position, key_position):
    _check_cut_arguments(model, tokens, layer, query_position, key_position)
    keep = torch.ones(tokens.shape[1], tokens.shape[1])
    keep[query_position, key_position] = 0
    return _cut_predictions(model, tokens, layer, lambda pattern, hook: pattern * keep)


def cut_with_masked_fill(model, tokens, layer, query_position, key_position):
    _check_cut_arguments(model, tokens, layer, query_position, key_position)
    where = torch.zeros(tokens.shape[1], tokens.shape[1], dtype=torch.bool)
    where[query_position, key_position] = True
    return _cut_predictions(model, tokens, layer, lambda pattern, hook: pattern.masked_fill(where, 0.0))


# ---- predictions_with_layer_zeroed ------------------------------------------------------------------------------------
def _zeroed(model, tokens, hook_name, replace, positions=ANSWERS):
    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, lambda x, hook: replace(x))])
    return logits[:, positions].argmax(-1)


def zeroed_by_mean_ablation(model, tokens, layer):
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError("bad layer")
    return _zeroed(model, tokens, f"blocks.{layer}.hook_attn_out", lambda x: x.mean(0, keepdim=True).expand_as(x))


def zeroed_read_at_the_label_positions(model, tokens, layer):
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError("bad layer")
    return _zeroed(model, tokens, f"blocks.{layer}.hook_attn_out", torch.zeros_like, positions=LABELS)


def zeroed_residual_stream(model, tokens, layer):
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError("bad layer")
    return _zeroed(model, tokens, f"blocks.{layer}.hook_resid_pre", torch.zeros_like)


def zeroed_layer_one_always(model, tokens, layer):
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError("bad layer")
    return _zeroed(model, tokens, "blocks.1.hook_attn_out", torch.zeros_like)


def zeroed_without_checking_the_layer(model, tokens, layer):
    return _zeroed(model, tokens, f"blocks.{min(layer, 1)}.hook_attn_out", torch.zeros_like)


def zeroed_by_multiplying(model, tokens, layer):
    if layer not in range(model.cfg.n_layers):
        raise ValueError("bad layer")
    return _zeroed(model, tokens, f"blocks.{layer}.hook_attn_out", lambda x: x * 0.0)


def zeroed_in_a_hooks_context(model, tokens, layer):
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError("bad layer")
    with model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_attn_out", lambda x, hook: torch.zeros_like(x))]):
        logits = model(tokens)
    return torch.stack([logits[:, p].argmax(-1) for p in ANSWERS], dim=1)


# ---- the tables: wrong implementation, exercise, kind, what the message must say; correct alternatives ---------------
DIFFER = "differ beyond the tolerance"
SLIP, HARD_CODED, CONTRACT, AXIS = "numeric slip", "hard-coded value", "broken contract", "wrong axis or position"
RAISES = "says it raises ValueError"
WRONG_IMPLEMENTATIONS = [
    (sample_without_update, "sample_array_indexing_batch", SLIP, "but a with a[idx] = elt has"),  # only the answers
    (sample_one_idx_per_batch, "sample_array_indexing_batch", AXIS, "not uniform"),
    (sample_a_batch_of_64, "sample_array_indexing_batch", HARD_CODED, "got (64, 11)"),
    (sample_without_checking_the_batch_size, "sample_array_indexing_batch", CONTRACT, RAISES),
    (sample_as_int32, "sample_array_indexing_batch", CONTRACT, "dtype torch.int32"),
    (loss_at_label_positions, "answer_loss", AXIS, "the logits one position late"),
    (loss_over_every_position, "answer_loss", AXIS, "abs error"),
    (loss_at_positions_6_to_8, "answer_loss", AXIS, "abs error"),
    (loss_summed_over_answers, "answer_loss", SLIP, "constant factor 3"),
    (loss_with_a_hard_coded_batch, "answer_loss", HARD_CODED, "noisy logits, batch 31"),
    (loss_in_float32, "answer_loss", CONTRACT, "promises torch.float64"),
    (loss_as_a_python_float, "answer_loss", CONTRACT, "promises a tensor"),
    (labels_numbered_from_one, "position_labels", SLIP, "expected the string 'a0', got 'a1'"),
    (labels_missing_second_newline, "position_labels", SLIP, "expected 11 items, got 10"),
    (labels_for_three_entries, "position_labels", HARD_CODED, "expected 15 items, got 11"),
    (labels_without_checking_list_len, "position_labels", CONTRACT, RAISES),
    (labels_answers_before_the_list, "position_labels", AXIS, "expected the string 'a0', got 'b0'"),
    (accuracy_at_label_positions, "answer_accuracy", AXIS, "the logits one position late"),
    (accuracy_averaged_over_answers, "answer_accuracy", AXIS, "wrong shape"),
    (accuracy_overall, "answer_accuracy", SLIP, DIFFER),
    (accuracy_with_a_hard_coded_batch, "answer_accuracy", HARD_CODED, "batch 40"),
    (accuracy_as_a_list, "answer_accuracy", CONTRACT, "expected a tensor"),
    (by_match_at_label_positions, "attention_by_idx_match", AXIS, DIFFER),
    (by_match_cases_swapped, "attention_by_idx_match", SLIP, DIFFER),
    (by_match_unsplit, "attention_by_idx_match", SLIP, DIFFER),
    (by_match_normalised_by_a_third_of_the_batch, "attention_by_idx_match", HARD_CODED, DIFFER),
    (by_match_without_the_value_error, "attention_by_idx_match", CONTRACT, RAISES),
    (source_attention_to_list_only, "attention_to_answer_source", SLIP, DIFFER),
    (source_attention_at_label_positions, "attention_to_answer_source", AXIS, DIFFER),
    (source_attention_to_idx_instead_of_elt, "attention_to_answer_source", AXIS, DIFFER),
    (source_attention_for_a_batch_of_200, "attention_to_answer_source", HARD_CODED, "raised IndexError"),
    (ablation_mean_over_positions, "attention_ablation_effects", AXIS, "output[0]"),  # the losses already differ
    (ablation_methods_swapped, "attention_ablation_effects", SLIP, "another order along dim 0"),
    (ablation_of_the_residual_stream, "attention_ablation_effects", AXIS, "output[0]"),
    (ablation_mean_over_a_hard_coded_batch, "attention_ablation_effects", HARD_CODED, "batch 25"),
    (ablation_returned_in_float64, "attention_ablation_effects", CONTRACT, "promises torch.float32"),
    (attribution_projecting_pos_embed, "answer_logit_attribution", SLIP, "expected 0.0"),  # the positional row is 0
    (attribution_to_the_logit_minus_mean_logit, "answer_logit_attribution", SLIP, DIFFER),
    (attribution_read_at_the_label_positions, "answer_logit_attribution", AXIS, DIFFER),
    (attribution_batch_first, "answer_logit_attribution", AXIS, "wrong shape"),
    (attribution_of_the_last_layer_only, "answer_logit_attribution", HARD_CODED, "wrong shape: expected (4, 200, 3)"),
    (ov_with_output_before_value, "full_ov_circuit", SLIP, DIFFER),
    (ov_transposed, "full_ov_circuit", AXIS, "transposed"),
    (ov_with_every_input_token, "full_ov_circuit", SLIP, "wrong shape: expected (50, 50), got (52, 50)"),
    (ov_of_layer_one, "full_ov_circuit", HARD_CODED, "layer 0"),
    (ov_counting_layers_from_the_end, "full_ov_circuit", CONTRACT, RAISES),
    (copying_by_column, "copying_score", AXIS, "expected 0.36, got 0.38"),
    (copying_as_mean_diagonal, "copying_score", SLIP, "expected 0.36"),
    (copying_as_count, "copying_score", SLIP, "expected a float"),
    (copying_of_fifty_tokens, "copying_score", HARD_CODED, "20 x 20"),
    (copying_without_checking_the_shape, "copying_score", CONTRACT, RAISES),
    (patching_with_answers_read_from_the_end, "residual_patching_effect", AXIS, "nan"),  # no answer differs: 0 / 0
    (patching_without_normalising, "residual_patching_effect", SLIP, DIFFER),
    (patching_every_position_up_to, "residual_patching_effect", AXIS, DIFFER),
    (patching_with_idx_always_the_corrupted_token, "residual_patching_effect", HARD_CODED, "elt corrupted"),
    (patching_without_checking_shapes, "residual_patching_effect", CONTRACT, RAISES),
    (predict_from_layer_zero, "predict_from_attention", HARD_CODED, "differ"),
    (predict_position_not_token, "predict_from_attention", SLIP, "looks like positions, not tokens"),
    (predict_from_label_rows, "predict_from_attention", AXIS, "shifted by one position"),
    (predict_as_int32, "predict_from_attention", CONTRACT, "dtype torch.int32"),
    (predict_without_checking_the_layer, "predict_from_attention", CONTRACT, RAISES),
    (zeroed_by_mean_ablation, "predictions_with_layer_zeroed", SLIP, "differ"),
    (zeroed_read_at_the_label_positions, "predictions_with_layer_zeroed", AXIS, "differ"),
    (zeroed_residual_stream, "predictions_with_layer_zeroed", AXIS, "differ"),
    (zeroed_layer_one_always, "predictions_with_layer_zeroed", HARD_CODED, "layer 0, batch 40"),
    (zeroed_without_checking_the_layer, "predictions_with_layer_zeroed", CONTRACT, RAISES),
    (read_positions_ignoring_idx, "predicted_read_positions", SLIP, "where the reference has 6"),  # elt's position
    (read_positions_at_idx_when_matched, "predicted_read_positions", SLIP, "where the reference has 6"),
    (read_positions_counting_entries_from_bos, "predicted_read_positions", AXIS, "agrees with the reference on"),
    (read_tokens_not_positions, "predicted_read_positions", CONTRACT, "tokens for positions"),
    (read_positions_as_int32, "predicted_read_positions", CONTRACT, "dtype torch.int32"),
    (read_positions_for_a_batch_of_300, "predicted_read_positions", HARD_CODED, "expected (150, 3), got (300, 3)"),
    (idx_patch_of_the_whole_run, "predictions_with_idx_patched", SLIP, "differ"),
    (idx_patch_leaving_the_layer, "predictions_with_idx_patched", AXIS, "differ"),
    (idx_patch_from_the_position_on, "predictions_with_idx_patched", AXIS, "layer 1 at idx"),
    (idx_patch_always_at_elt, "predictions_with_idx_patched", HARD_CODED, "layer 1 at idx"),
    (idx_patch_without_checking, "predictions_with_idx_patched", CONTRACT, RAISES),
    (cut_and_renormalise, "predictions_with_attention_cut", SLIP, "differ"),
    (cut_query_and_key_swapped, "predictions_with_attention_cut", AXIS, "differ"),
    (cut_forgetting_the_head_dimension, "predictions_with_attention_cut", AXIS, "IndexError"),
    (cut_in_layer_one_always, "predictions_with_attention_cut", HARD_CODED, "layer 0, elt from idx"),
    (cut_without_checking, "predictions_with_attention_cut", CONTRACT, RAISES),
]

CORRECT_ALTERNATIVES = [
    (sample_with_scatter, "sample_array_indexing_batch"),
    (sample_idx_first, "sample_array_indexing_batch"),  # another order of draws: the contract does not fix one
    (sample_with_a_loop, "sample_array_indexing_batch"),
    (loss_with_cross_entropy, "answer_loss"),
    (loss_with_logsumexp, "answer_loss"),
    (labels_by_appending, "position_labels"),
    (labels_as_a_tuple, "position_labels"),
    (accuracy_in_float64, "answer_accuracy"),
    (accuracy_by_counting, "answer_accuracy"),
    (by_match_with_weights, "attention_by_idx_match"),
    (by_match_with_hooks, "attention_by_idx_match"),
    (source_attention_with_gather, "attention_to_answer_source"),
    (source_attention_with_a_one_hot_mask, "attention_to_answer_source"),
    (ablation_with_cross_entropy, "attention_ablation_effects"),
    (ablation_with_a_summed_mean, "attention_ablation_effects"),
    (attribution_with_zero_positions, "answer_logit_attribution"),
    (attribution_with_einsum, "answer_logit_attribution"),
    (ov_with_factored_matrices, "full_ov_circuit"),
    (ov_associated_from_the_right, "full_ov_circuit"),
    (copying_by_counting, "copying_score"),
    (copying_with_max_values, "copying_score"),
    (patching_one_position_at_a_time, "residual_patching_effect"),
    (patching_with_log_probabilities, "residual_patching_effect"),
    (predict_with_take_along_dim, "predict_from_attention"),
    (predict_with_a_hook, "predict_from_attention"),
    (zeroed_by_multiplying, "predictions_with_layer_zeroed"),
    (zeroed_in_a_hooks_context, "predictions_with_layer_zeroed"),
    (read_positions_with_a_loop, "predicted_read_positions"),
    (read_positions_noticing_the_idx_route, "predicted_read_positions"),
    (idx_patch_with_a_hooks_context, "predictions_with_idx_patched"),
    (idx_patch_with_a_cache_of_everything, "predictions_with_idx_patched"),
    (cut_with_a_mask, "predictions_with_attention_cut"),
    (cut_with_masked_fill, "predictions_with_attention_cut"),
]


def test_every_exercise_has_four_kinds_of_wrong_implementation_and_two_correct_ones():
    from checks.specs.day4 import CHECKS

    for check in CHECKS:
        wrong = [entry for entry in WRONG_IMPLEMENTATIONS if entry[1] == check.name]
        assert len(wrong) >= 4 and len({kind for _, _, kind, _ in wrong}) >= 3, (check.name, wrong)
        assert sum(exercise == check.name for _, exercise in CORRECT_ALTERNATIVES) >= 2, check.name


@pytest.mark.parametrize(
    "wrong, exercise, kind, fragment", WRONG_IMPLEMENTATIONS, ids=[fn.__name__ for fn, _, _, _ in WRONG_IMPLEMENTATIONS]
)
def test_wrong_implementation_is_rejected_with_a_pointed_message(wrong, exercise, kind, fragment):
    outcome = grade(wrong, name=exercise, device="cpu")
    assert outcome.status == "failed", f"{outcome.status}: {outcome.message}"
    message = f"{outcome.message}\n{outcome.hint}".lower()
    assert fragment.lower() in message, outcome.message
    assert outcome.hint, outcome.message  # every check carries a hint
    margin = case_margin(wrong, exercise, outcome.case, device="cpu")  # the case that rejected it
    assert margin >= WRONG_MARGIN, f"{wrong.__name__} fails case {outcome.case!r} by a margin of only {margin:.3g}"


@pytest.mark.parametrize("correct, exercise", CORRECT_ALTERNATIVES, ids=[fn.__name__ for fn, _ in CORRECT_ALTERNATIVES])
def test_correct_alternative_is_accepted(correct, exercise):
    outcome = grade(correct, name=exercise, device="cpu")
    assert outcome.status == "passed", f"{outcome.status}: {outcome.message}"
    found = margins(correct, exercise, device="cpu")
    assert max(found.values()) <= CORRECT_MARGIN, f"{correct.__name__} passes too narrowly: {found}"


def test_the_solutions_themselves_pass():
    """The tables above mean something only if the same grader passes the reference solutions."""
    from checks.specs.day4 import CHECKS

    for check in CHECKS:
        outcome = grade(getattr(solution, check.name), device="cpu")
        assert outcome.status == "passed", f"{check.name}: {outcome.status}: {outcome.message}"
