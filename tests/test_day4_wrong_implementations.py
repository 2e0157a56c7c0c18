"""Grading rejects plausible wrong implementations of every day 4 exercise, with a message that points at the mistake.

Each wrong implementation is a mistake a learner is likely to make (an off-by-one position, the wrong axis, a
forgotten case). The test asserts that grading says "failed" and that the message names what differs.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from checks import grade
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


def sample_idx_first(batch_size, generator):
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    return _assemble(lists, idx, elt)


def sample_without_update(batch_size, generator):
    lists = torch.randint(0, MAX_NUM, (batch_size, LIST_LEN), generator=generator)
    idx = torch.randint(0, LIST_LEN, (batch_size,), generator=generator)
    elt = torch.randint(0, MAX_NUM, (batch_size,), generator=generator)
    return _assemble(lists, idx, elt, update=False)


def sample_one_idx_per_batch(batch_size, generator):
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


# ---- the table: wrong implementation, exercise, what the message must say ---------------------------------------------
DIFFER = "differ beyond the tolerance"
WRONG_IMPLEMENTATIONS = [
    (sample_idx_first, "sample_array_indexing_batch", "first at index [0, 1]"),  # the list itself is wrong
    (sample_without_update, "sample_array_indexing_batch", "first at index [0, 8]"),  # only the answers are wrong
    (sample_one_idx_per_batch, "sample_array_indexing_batch", "differ"),
    (loss_at_label_positions, "answer_loss", DIFFER),
    (loss_over_every_position, "answer_loss", DIFFER),
    (loss_summed_over_answers, "answer_loss", "max rel error 2"),  # three times the mean
    (labels_numbered_from_one, "position_labels", "expected the string 'a0', got 'a1'"),
    (labels_missing_second_newline, "position_labels", "expected 11 items, got 10"),
    (accuracy_at_label_positions, "answer_accuracy", DIFFER),
    (accuracy_averaged_over_answers, "answer_accuracy", "wrong shape"),
    (accuracy_overall, "answer_accuracy", DIFFER),
    (by_match_at_label_positions, "attention_by_idx_match", DIFFER),
    (by_match_cases_swapped, "attention_by_idx_match", DIFFER),
    (by_match_unsplit, "attention_by_idx_match", DIFFER),
    (source_attention_to_list_only, "attention_to_answer_source", DIFFER),
    (source_attention_at_label_positions, "attention_to_answer_source", DIFFER),
    (ablation_mean_over_positions, "attention_ablation_effects", "output[0]"),  # the losses already differ
    (ablation_methods_swapped, "attention_ablation_effects", "output[0]"),
    (ablation_of_the_residual_stream, "attention_ablation_effects", "output[0]"),
    (attribution_projecting_pos_embed, "answer_logit_attribution", "expected 0.0"),  # the positional row is zero
    (attribution_to_the_logit_minus_mean_logit, "answer_logit_attribution", DIFFER),
    (attribution_read_at_the_label_positions, "answer_logit_attribution", DIFFER),
    (ov_with_output_before_value, "full_ov_circuit", DIFFER),
    (ov_transposed, "full_ov_circuit", "transposed"),
    (ov_with_every_input_token, "full_ov_circuit", "wrong shape: expected (50, 50), got (52, 50)"),
    (copying_by_column, "copying_score", "expected 0.36, got 0.38"),
    (copying_as_mean_diagonal, "copying_score", "constant factor"),
    (copying_as_count, "copying_score", "expected a float"),
    (patching_with_answers_read_from_the_end, "residual_patching_effect", "nan"),  # no answer differs: 0 / 0
    (patching_without_normalising, "residual_patching_effect", DIFFER),
    (patching_every_position_up_to, "residual_patching_effect", DIFFER),
    (predict_from_layer_zero, "predict_from_attention", "differ"),
    (predict_position_not_token, "predict_from_attention", "got 1, expected 36"),  # a position, not a token
    (predict_from_label_rows, "predict_from_attention", "shifted by one position"),
]


def test_every_exercise_has_at_least_two_wrong_implementations():
    from checks.specs.day4 import CHECKS

    counts = {check.name: 0 for check in CHECKS}
    for _, exercise, _ in WRONG_IMPLEMENTATIONS:
        counts[exercise] += 1
    assert all(count >= 2 for count in counts.values()), counts


@pytest.mark.parametrize(
    "wrong, exercise, fragment", WRONG_IMPLEMENTATIONS, ids=[fn.__name__ for fn, _, _ in WRONG_IMPLEMENTATIONS]
)
def test_wrong_implementation_is_rejected_with_a_pointed_message(wrong, exercise, fragment):
    outcome = grade(wrong, name=exercise, device="cpu")
    assert outcome.status == "failed", f"{outcome.status}: {outcome.message}"
    message = f"{outcome.message}\n{outcome.hint}".lower()
    assert fragment.lower() in message, outcome.message
    assert outcome.hint, outcome.message  # every check carries a hint


def test_the_solutions_themselves_pass():
    """The table above means something only if the same grader passes the reference solutions."""
    from checks.specs.day4 import CHECKS

    for check in CHECKS:
        outcome = grade(getattr(solution, check.name), device="cpu")
        assert outcome.status == "passed", f"{check.name}: {outcome.status}: {outcome.message}"
