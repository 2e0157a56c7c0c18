"""Every claim the day 4 notebook makes about the shipped `array-2l1h`, recomputed with the solution functions.

If the model is retrained and its mechanism changes, these fail, and the prose of solutions/day4_array_indexing.py
must be rewritten to match the new measurements.
"""

from __future__ import annotations

import pytest
import torch

from curriculum.data.array_indexing import (
    ELT_POSITION,
    IDX_POSITION,
    LABEL_POSITIONS,
    LIST_LEN,
    MAX_NUM,
    array_indexing_batch,
)
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


def test_the_sampler_is_the_course_generator():
    ours = day4.sample_array_indexing_batch(500, torch.Generator().manual_seed(3))
    assert torch.equal(ours, array_indexing_batch(500, torch.Generator().manual_seed(3)))


def test_the_model_solves_the_task(model, tokens):
    logits = model(tokens)
    assert (day4.answer_accuracy(logits, tokens) >= 0.999).all()
    assert day4.answer_loss(logits, tokens).item() < 0.01


def test_layer1_attends_to_the_answer_source_and_layer0_to_elt(model, tokens):
    by_match = day4.attention_by_idx_match(model, tokens)  # [layer, answer, match, key]
    for j in range(LIST_LEN):
        assert by_match[1, j, 0].argmax() == 1 + j, f"layer 1, b{j}, idx != {j}: not looking at a{j}"
        assert by_match[1, j, 1].argmax() == ELT_POSITION, f"layer 1, b{j}, idx == {j}: not looking at elt"
        for match in (0, 1):
            assert by_match[0, j, match].argmax() == ELT_POSITION
            assert by_match[0, j, match, ELT_POSITION] > 0.8
    source = day4.attention_to_answer_source(model, tokens)
    assert (source[1] > 0.7).all() and (source[1, :2] > 0.9).all()


def test_layer0_at_elt_attends_to_idx(model, tokens):
    _, cache = model.run_with_cache(tokens, names_filter="blocks.0.attn.hook_pattern")
    from_elt = cache["pattern", 0][:, 0, ELT_POSITION].mean(0)
    assert from_elt.argmax() == IDX_POSITION and from_elt[IDX_POSITION] > 0.4


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


def test_the_attention_predictor(model, tokens):
    answers = tokens[:, list(LABEL_POSITIONS)]
    right = day4.predict_from_attention(model, tokens, 1) == answers
    assert right.float().mean() > 0.98
    assert right[:, :2].all() and not right[:, 2].all()  # the misses are all at b2
    # Where it misses, layer 1 at b2 attends to the idx position rather than a2, and the model is right anyway.
    _, cache = model.run_with_cache(tokens, names_filter="blocks.1.attn.hook_pattern")
    missed = ~right[:, 2]
    assert (cache["pattern", 1][missed, 0, ANSWER_INDICES[2]].argmax(-1) == IDX_POSITION).all()
    assert (model(tokens)[missed, ANSWER_INDICES[2]].argmax(-1) == answers[missed, 2]).all()
    layer0_right = (day4.predict_from_attention(model, tokens, 0) == answers).float().mean()
    assert 0.25 < layer0_right < 0.45  # layer 0 reads elt: right about when idx == j
