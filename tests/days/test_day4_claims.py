"""Every claim the day 4 notebook makes about the shipped `array-2l1h`, recomputed with the solution functions.

If the model is retrained and its mechanism changes, these fail, and the prose of solutions/day4_array_indexing.py
must be rewritten to match the new measurements.
"""

from __future__ import annotations

import pytest
import torch

from curriculum.data.array_indexing import (
    ANSWER_POSITIONS,
    ELT_POSITION,
    IDX_POSITION,
    LABEL_POSITIONS,
    LIST_LEN,
    MAX_NUM,
)
from curriculum.models.recipes.array_indexing_data import array_indexing_batch
from curriculum.models import load_model
from solutions import day4_array_indexing as day4

ANSWER_INDICES = [LIST_LEN + 4 + j for j in range(LIST_LEN)]  # ANSWER_POSITIONS, spelled out


@pytest.fixture(scope="module")
def model():
    torch.set_grad_enabled(False)
    yield load_model("array-2l1h")
    torch.set_grad_enabled(True)


@pytest.fixture(scope="module")
def tokens():
    return array_indexing_batch(600, torch.Generator().manual_seed(0))


SEEDS = (0, 1, 2)  # the notebook's seed and two others: the bounds below hold on each


@pytest.fixture(scope="module", params=SEEDS)
def batch(request, model):
    """2000 fresh examples of one seed, the model's logits and its attention patterns (as in the notebook)."""
    tokens = array_indexing_batch(2000, torch.Generator().manual_seed(request.param))
    logits, cache = model.run_with_cache(tokens, names_filter=lambda name: "pattern" in name or "hook_k" in name
                                         or name == "blocks.1.hook_resid_pre")
    return tokens, logits, cache


def _source_positions(tokens):
    idx = tokens[:, IDX_POSITION, None]
    return torch.where(idx == torch.arange(LIST_LEN), ELT_POSITION, 1 + torch.arange(LIST_LEN))


def test_the_sampler_is_the_course_generator():
    ours = day4.sample_array_indexing_batch(500, torch.Generator().manual_seed(3))
    assert torch.equal(ours, array_indexing_batch(500, torch.Generator().manual_seed(3)))


def test_the_model_solves_the_task(model, tokens):
    logits = model(tokens)
    assert (day4.answer_accuracy(logits, tokens) >= 0.999).all()
    assert day4.answer_loss(logits, tokens).item() < 0.01


def test_layer1_attends_to_the_answer_source_and_layer0_to_elt(model, tokens):
    """Sections 2 and 7: layer 1 favours a_j (idx != j) or elt (idx == j); layer 0 at the answers reads elt."""
    by_match = day4.attention_by_idx_match(model, tokens)  # [layer, answer, match, key]
    for j in range(LIST_LEN):
        assert by_match[1, j, 0].argmax() == 1 + j, f"layer 1, b{j}, idx != {j}: not looking at a{j}"
        assert by_match[1, j, 1].argmax() == ELT_POSITION, f"layer 1, b{j}, idx == {j}: not looking at elt"
        for match in (0, 1):
            assert by_match[0, j, match].argmax() == ELT_POSITION
            assert by_match[0, j, match, ELT_POSITION] > 0.8
    source = day4.attention_to_answer_source(model, tokens)
    assert (source[1] > 0.7).all() and (source[1, :2] > 0.9).all()


def test_layer0_at_elt_splits_between_idx_and_itself(batch):
    """Section 2: about half goes to idx (less when idx is 2), most of the rest stays on elt."""
    tokens, _, cache = batch
    from_elt = cache["pattern", 0][:, 0, ELT_POSITION]
    on_idx, on_elt = from_elt[:, IDX_POSITION].mean(), from_elt[:, ELT_POSITION].mean()
    assert 0.45 < on_idx < 0.65 and 0.3 < on_elt < 0.45 and on_elt > 0.5 * (1 - on_idx)
    by_idx = [from_elt[tokens[:, IDX_POSITION] == i, IDX_POSITION].mean() for i in range(LIST_LEN)]
    assert by_idx[2] < min(by_idx[:2]) - 0.05


def test_layer1_selects_less_cleanly_at_b2(batch):
    """Section 2: at b0 and b1 layer 1 reads a_j almost only; at b2 (idx != 2) about a fifth goes to idx."""
    tokens, _, cache = batch
    pattern, idx = cache["pattern", 1][:, 0], tokens[:, IDX_POSITION]
    for j, query in enumerate(ANSWER_POSITIONS):
        rows = pattern[idx != j, query]
        if j < LIST_LEN - 1:
            assert rows[:, 1 + j].mean() > 0.9 and rows[:, IDX_POSITION].mean() < 0.01
        else:
            assert 0.6 < rows[:, 1 + j].mean() < 0.8 and 0.15 < rows[:, IDX_POSITION].mean() < 0.3


def test_the_positional_part_of_the_query_picks_the_key(model, batch):
    """Section 2: with only the positional part of layer 1's query, the answer's source still gets most attention."""
    tokens, _, cache = batch
    rows = list(ANSWER_POSITIONS)
    query = model.W_pos[rows] @ model.W_Q[1, 0] + model.b_Q[1, 0]
    scores = torch.einsum("ad,bkd->bak", query, cache["blocks.1.attn.hook_k"][:, :, 0]) / model.cfg.d_head**0.5
    causal = torch.tensor(rows)[:, None] >= torch.arange(tokens.shape[1])[None]
    pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
    source = _source_positions(tokens)
    on_source = pattern.gather(-1, source[..., None])[..., 0]
    assert (on_source.mean(0) > torch.tensor([0.85, 0.85, 0.6])).all()
    assert ((pattern.argmax(-1) == source).float().mean(0) > 0.95).all()


def test_ablating_either_layer_breaks_the_model_in_its_own_way(model, tokens):
    loss, accuracy = day4.attention_ablation_effects(model, tokens)
    assert (accuracy < 0.7).all(), accuracy  # zero and mean ablation of either layer
    elt = tokens[:, ELT_POSITION, None].expand(-1, LIST_LEN)
    entries = tokens[:, 1 : 1 + LIST_LEN]
    without_l1 = day4.predictions_with_layer_zeroed(model, tokens, 1)
    without_l0 = day4.predictions_with_layer_zeroed(model, tokens, 0)
    assert (without_l1 == elt).float().mean() > 0.95  # layer 0 alone answers elt everywhere
    assert (without_l0 == entries).float().mean() > 0.9  # layer 1 without the index copies a_j


def test_logit_attribution(model, tokens):
    attribution = day4.answer_logit_attribution(model, tokens)  # [component, batch, answer]
    embed, positional, layer0, layer1 = attribution
    assert torch.count_nonzero(positional) == 0
    assert embed.abs().mean() < 0.1
    assert (layer1.mean(0) > 5 * layer0.abs().mean(0)).all()
    idx = tokens[:, IDX_POSITION]
    for j in range(LIST_LEN):
        push_to_elt = layer0[idx == j, j].mean()
        assert push_to_elt > 1.0 and layer0[idx != j, j].mean().abs() < 0.2 * push_to_elt
    logits = model(tokens)
    answers = tokens[:, list(LABEL_POSITIONS)]
    correct = logits[:, ANSWER_INDICES].gather(-1, answers[..., None])[..., 0]
    torch.testing.assert_close(attribution.sum(0) + model.b_U[answers], correct, atol=1e-3, rtol=1e-4)


def test_both_heads_copy(model):
    for layer in range(model.cfg.n_layers):
        assert day4.copying_score(day4.full_ov_circuit(model, layer)) > 0.9


def test_idx_travels_through_the_elt_position(model, tokens):
    clean = tokens[:200]
    shift = torch.randint(1, LIST_LEN, (len(clean),), generator=torch.Generator().manual_seed(1))
    corrupted = clean.clone()
    corrupted[:, IDX_POSITION] = (clean[:, IDX_POSITION] + shift) % LIST_LEN
    effect = day4.residual_patching_effect(model, clean, corrupted)  # [resid point, position]
    others = [p for p in range(effect.shape[1]) if p != IDX_POSITION]
    assert effect[0, IDX_POSITION] == pytest.approx(1.0, abs=1e-4) and effect[0, others].abs().max() < 1e-4
    assert effect[1, ELT_POSITION] > 0.9 and effect[1, IDX_POSITION].abs() < 0.1
    assert effect[1, ANSWER_INDICES].abs().max() < 0.05  # nothing about idx at the answer positions yet
    final = effect[2, ANSWER_INDICES]
    assert ((final > 0.25) & (final < 0.42)).all() and final.sum() == pytest.approx(1.0, abs=0.02)


def test_elt_is_read_mostly_from_its_own_position(model, tokens):
    clean = tokens[:200]
    offset = torch.randint(1, MAX_NUM, (len(clean),), generator=torch.Generator().manual_seed(2))
    corrupted = clean.clone()
    corrupted[:, ELT_POSITION] = (clean[:, ELT_POSITION] + offset) % MAX_NUM
    effect = day4.residual_patching_effect(model, clean, corrupted)
    assert effect[1, ELT_POSITION] > 0.6
    answers = effect[1, ANSWER_INDICES]
    assert ((answers > 0.02) & (answers < 0.2)).all()  # layer 0's smaller push, already at the answers


def test_the_attention_predictor(model, batch):
    """Section 7: layer 1's most-attended token is the answer except at b2, where it is mostly the idx position's."""
    tokens, logits, cache = batch
    answers = tokens[:, list(LABEL_POSITIONS)]
    right = day4.predict_from_attention(model, tokens, 1) == answers
    assert right.float().mean() > 0.98
    assert right[:, :2].all() and not right[:, 2].all()  # the misses are all at b2
    missed = ~right[:, 2]
    top = cache["pattern", 1][missed, 0, ANSWER_INDICES[2]].argmax(-1)
    assert (top == IDX_POSITION).float().mean() > 0.9
    assert (logits[missed, ANSWER_INDICES[2]].argmax(-1) == answers[missed, 2]).all()  # the model is right anyway
    layer0_right = (day4.predict_from_attention(model, tokens, 0) == answers).float().mean()
    assert 0.25 < layer0_right < 0.45  # layer 0 reads elt: right about when idx == j


def test_the_read_position_rule_predicts_layer1_and_the_answers(batch):
    """Section 7: the course's rule names layer 1's most-attended key almost always; its copied tokens are the
    model's answers."""
    tokens, logits, cache = batch
    positions = day4.predicted_read_positions(tokens)
    top = cache["pattern", 1][:, 0, list(ANSWER_POSITIONS)].argmax(-1)
    accuracy = (positions == top).float().mean(0)
    assert (accuracy[:2] > 0.99).all() and 0.95 < accuracy[2] < 0.995
    assert (tokens.gather(1, positions) == logits[:, list(ANSWER_POSITIONS)].argmax(-1)).float().mean() > 0.999


def test_the_idx_position_holds_a_copy_of_a2(model, batch):
    """Section 7: layer 0 at the idx position attends to a2, and layer 1 reading it there would write a2."""
    tokens, _, cache = batch
    assert cache["pattern", 0][:, 0, IDX_POSITION, LIST_LEN].mean() > 0.75
    at_idx = cache["blocks.1.hook_resid_pre"][:, IDX_POSITION]
    written = (at_idx @ model.W_V[1, 0] @ model.W_O[1, 0] @ model.W_U).argmax(-1)
    assert (written == tokens[:, LIST_LEN]).float().mean() > 0.95


@pytest.mark.parametrize("seed", SEEDS)
def test_moving_idx_works_at_elt_entering_layer1_and_nowhere_else_there(model, seed):
    """Intervention 1: the answers follow the new idx when it is patched in at elt entering layer 1, not at idx."""
    tokens = array_indexing_batch(1000, torch.Generator().manual_seed(seed))
    shift = torch.randint(1, LIST_LEN, (len(tokens),), generator=torch.Generator().manual_seed(seed + 10))
    new_idx = (tokens[:, IDX_POSITION] + shift) % LIST_LEN
    moved = tokens.clone()
    moved[:, IDX_POSITION] = new_idx
    before, after = tokens.gather(1, _source_positions(tokens)), moved.gather(1, _source_positions(moved))
    changed = before != after
    follows = {}
    for layer, position in ((0, IDX_POSITION), (1, IDX_POSITION), (1, ELT_POSITION)):
        patched = day4.predictions_with_idx_patched(model, tokens, new_idx, layer, position)
        follows[layer, position] = (patched == after)[changed].float().mean()
        assert ((patched == before) | (patched == after)).float().mean() > 0.995
    assert follows[0, IDX_POSITION] > 0.999 and follows[1, ELT_POSITION] > 0.99 and follows[1, IDX_POSITION] < 0.01


def test_cutting_the_idx_route_at_b2_breaks_exactly_the_examples_that_used_it(model, batch):
    """Intervention 2: with layer 1's b2 -> idx weight cut, b2 fails mostly where layer 1 read idx most."""
    tokens, _, cache = batch
    answers = tokens[:, list(LABEL_POSITIONS)]
    reads_idx = cache["pattern", 1][:, 0, ANSWER_INDICES[2]].argmax(-1) == IDX_POSITION
    cut = day4.predictions_with_attention_cut(model, tokens, 1, ANSWER_INDICES[2], IDX_POSITION)
    right = cut == answers
    assert right[:, :2].all()
    assert 0.97 < right[:, 2].float().mean() < 0.995
    assert right[reads_idx, 2].float().mean() < 0.7 and right[~reads_idx, 2].float().mean() > 0.999
