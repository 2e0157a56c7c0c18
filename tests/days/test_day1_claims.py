"""Every claim the day 1 notebook makes about the shipped `induction-2l`, recomputed with the solution functions.

The data mirror the notebook's exploration cells (same seeds and sizes). If the model is retrained and these fail,
the prose of solutions/day1_induction_heads.py must be rewritten to match the new measurements.
"""

from __future__ import annotations

import math

import pytest
import torch

from curriculum.data.induction_corpus import FIRST_WORD_TOKEN, decode, held_out_stories
from curriculum.data.repeated_tokens import repeated_tokens
from curriculum.models import load_model
from solutions import day1_induction_heads as day1

HALF_LEN = 30  # as in the notebook


@pytest.fixture(scope="module")
def model():
    torch.set_grad_enabled(False)
    yield load_model("induction-2l")
    torch.set_grad_enabled(True)


@pytest.fixture(scope="module")
def labels(model):
    return day1.head_labels(model)


@pytest.fixture(scope="module")
def rep_tokens(model):
    return day1.generate_repeated_tokens(model, HALF_LEN, 16, torch.Generator().manual_seed(2), FIRST_WORD_TOKEN)


@pytest.fixture(scope="module")
def detector_scores(model):
    """[kind (current, previous, first), layer, head] on stories and on repeated tokens, as in the notebook."""
    inputs = {
        "stories": held_out_stories(16),
        "repeats": repeated_tokens(16, HALF_LEN, model.cfg.d_vocab, torch.Generator().manual_seed(1),
                                   first_token=FIRST_WORD_TOKEN),
    }
    return {name: day1.detector_scores(model.run_with_cache(tokens)[1], model.cfg.n_layers)
            for name, tokens in inputs.items()}


@pytest.fixture(scope="module")
def induction(model, rep_tokens):
    return day1.induction_scores(model, rep_tokens, HALF_LEN)


@pytest.fixture(scope="module")
def ablation(model, rep_tokens):
    return {"mean": day1.mean_ablation_loss_change(model, rep_tokens),
            "zero": day1.zero_ablation_loss_change(model, rep_tokens)}


def test_the_repeated_token_generator_is_the_course_generator(model):
    ours = day1.generate_repeated_tokens(model, 7, 3, torch.Generator().manual_seed(9), FIRST_WORD_TOKEN)
    theirs = repeated_tokens(3, 7, model.cfg.d_vocab, torch.Generator().manual_seed(9), first_token=FIRST_WORD_TOKEN)
    assert torch.equal(ours, theirs)


def test_attention_by_hand_matches_hook_pattern(model):
    tokens, _ = day1.tokenize(model, decode(held_out_stories(1)[0, 1:61]))
    _, cache = model.run_with_cache(tokens)
    for layer in range(model.cfg.n_layers):
        by_hand = day1.attention_pattern_from_qk(cache["q", layer][0], cache["k", layer][0])
        assert (by_hand - cache["pattern", layer][0]).abs().max().item() < 1e-5


def test_copying_raises_accuracy_on_text_written_twice(model):
    words = decode(held_out_stories(1)[0, 1:61])
    once, _ = day1.tokenize(model, words)
    twice, _ = day1.tokenize(model, words + " " + words)
    assert day1.next_token_accuracy(model, twice) > day1.next_token_accuracy(model, once)


def test_loss_is_chance_on_the_first_copy_and_low_on_the_second(model, rep_tokens):
    loss = day1.per_token_loss(model(rep_tokens), rep_tokens)
    chance = math.log(model.cfg.d_vocab - FIRST_WORD_TOKEN)
    first_half = loss[:, :HALF_LEN].mean().item()
    assert chance * 0.85 < first_half < chance * 1.15
    assert first_half > chance  # "a little worse" than uniform guessing
    assert loss[:, HALF_LEN + 1 :].mean().item() < 0.5
    # the prediction of the start of the copy is not helped by the context
    assert loss[:, HALF_LEN].mean().item() > 0.85 * chance


def test_no_head_is_a_current_token_head(detector_scores):
    for scores in detector_scores.values():
        assert scores[0].max().item() < 0.5


def test_L0H0_is_the_only_previous_token_head_on_repeated_tokens(detector_scores, labels):
    assert day1.heads_above(detector_scores["repeats"][1], 0.5, labels) == ["L0H0"]
    assert detector_scores["stories"][1][0, 0].item() > 0.5


def test_three_layer1_heads_attend_to_the_previous_token_only_in_stories(detector_scores, labels):
    on_stories = set(day1.heads_above(detector_scores["stories"][1], 0.5, labels))
    assert on_stories == {"L0H0", "L1H1", "L1H2", "L1H3"}
    previous_on_repeats, first_on_repeats = detector_scores["repeats"][1], detector_scores["repeats"][2]
    for head in (1, 2, 3):
        assert previous_on_repeats[1, head].item() < 0.2
        assert first_on_repeats[1, head].item() > 0.5


def test_L1H0_is_the_only_induction_head(induction, labels):
    assert day1.heads_above(induction, 0.5, labels) == ["L1H0"]
    others = torch.cat([induction.flatten()[:4], induction.flatten()[5:]])
    assert others.max().item() < 0.1


def test_direct_logit_attribution_adds_up_to_the_logits(model, rep_tokens):
    sequence = rep_tokens[0]
    logits, cache = model.run_with_cache(sequence[None])
    attribution = day1.direct_logit_attribution(model, cache, sequence)
    assert model.cfg.normalization_type is None  # the notebook's decomposition assumes no final normalisation
    left_out = model.b_O.sum(dim=0) @ model.W_U[:, sequence[1:]] + model.b_U[sequence[1:]]
    correct = logits[0, :-1].gather(-1, sequence[1:, None])[:, 0]
    assert (attribution.sum(dim=-1) + left_out - correct).abs().max().item() < 1e-3


def test_L1H0_writes_the_answer_on_the_second_copy(model, rep_tokens, labels):
    sequence = rep_tokens[0]
    _, cache = model.run_with_cache(sequence[None])
    second_copy = day1.direct_logit_attribution(model, cache, sequence)[HALF_LEN + 1 :].mean(dim=0)
    l1h0 = 1 + labels.index("L1H0")  # component 0 is the embedding
    assert second_copy[l1h0].item() > 3.0  # "several logits"
    others = torch.cat([second_copy[:l1h0], second_copy[l1h0 + 1 :]])
    assert others.abs().max().item() < 0.5


def test_ablating_the_circuit_breaks_copying(ablation, labels):
    for kind, changes in ablation.items():
        flat = changes.flatten()
        circuit = [labels.index("L0H0"), labels.index("L1H0")]
        assert flat[circuit].min().item() > 1.0, kind
        rest = [i for i in range(len(labels)) if i not in circuit]
        assert flat[rest].abs().max().item() < 0.2, kind
