"""Every claim the day 2 notebook makes about the shipped `induction-2l`, recomputed with the solution functions.

The data mirror the notebook's exploration cells (same seeds and sizes). If the model is retrained and these fail,
the prose of solutions/day2_induction_circuit.py must be rewritten to match the new measurements.
"""

from __future__ import annotations

import pytest
import torch
from transformer_lens import FactoredMatrix

from curriculum.data.induction_corpus import FIRST_WORD_TOKEN
from curriculum.data.repeated_tokens import repeated_tokens
from curriculum.models import load_model
from solutions import day2_induction_circuit as day2

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# as in the notebook
N_POSITIONS = 64
HALF_LEN = 25
PREDICTION_HALF_LEN = 40
BASELINE_SAMPLES = 200


@pytest.fixture(scope="module")
def model():
    return load_model("induction-2l")


@pytest.fixture(scope="module")
def full_ov(model):
    with torch.no_grad():
        return torch.stack([torch.stack([day2.head_full_ov_circuit(model, layer, head) for head in range(4)])
                            for layer in range(2)])


@pytest.fixture(scope="module")
def decomposition(model):
    tokens = repeated_tokens(8, HALF_LEN, model.cfg.d_vocab, torch.Generator().manual_seed(2),
                             first_token=FIRST_WORD_TOKEN)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
        sources = day2.decompose_attention_input(model, cache, layer=1)
        queries, keys = day2.decompose_queries_keys(sources, model, layer=1, head=0)
        scores = day2.decompose_attention_scores(queries, keys)
    return cache, sources, queries, keys, scores


@pytest.fixture(scope="module")
def composition(model):
    with torch.no_grad():
        writers = model.W_V[0] @ model.W_O[0]
        qk = model.W_Q[1] @ model.W_K[1].transpose(-1, -2)
        readers = {"Q": qk, "K": qk.transpose(-1, -2), "V": model.W_V[1] @ model.W_O[1]}
        scores = {kind: day2.composition_scores(writers, reader) for kind, reader in readers.items()}
    baseline = day2.random_composition_baseline(model.cfg.d_model, model.cfg.d_head, BASELINE_SAMPLES,
                                                torch.Generator().manual_seed(0))
    return scores, baseline


def test_the_factored_summary_matches_the_materialised_matrix(model):
    with torch.no_grad():
        circuit = FactoredMatrix(model.W_E, model.W_V[1, 0]) @ model.W_O[1, 0] @ model.W_U
        summary = day2.circuit_summary(circuit, 3)
        full = circuit.AB
    assert torch.allclose(summary["frobenius_norm"], full.norm(), rtol=1e-4)
    assert torch.allclose(summary["singular_values"], torch.linalg.svdvals(full)[:3], rtol=1e-3)
    assert torch.allclose(summary["corner"], full[:3, :3], atol=1e-4)


def test_L1H0_copies_and_no_other_head_does(full_ov):
    top1 = day2.top_k_copying_accuracy(full_ov, 1)
    top5 = day2.top_k_copying_accuracy(full_ov, 5)
    assert top1[1, 0].item() > 0.98  # "over 98% of tokens to themselves"
    assert top5[1, 0].item() == 1.0  # "every token into its own top 5"
    others = torch.cat([top1.flatten()[:4], top1.flatten()[5:]])
    assert others.max().item() < 0.3  # "no other head copies more than 30% of tokens"


def test_L1H0_has_the_highest_eigenvalue_copying_score_but_not_the_only_high_one(model, full_ov):
    with torch.no_grad():
        scores = day2.eigenvalue_copying_scores(model)
    assert scores[1, 0].item() > 0.99
    others = torch.cat([scores.flatten()[:4], scores.flatten()[5:]])
    assert others.max().item() < scores[1, 0].item()
    top1 = day2.top_k_copying_accuracy(full_ov, 1)
    high_without_copying = (scores[0] > 0.8) & (top1[0] < 0.2)  # "two layer-0 heads score above 0.8 without copying"
    assert high_without_copying.sum().item() == 2


def test_L0H0_attends_to_the_previous_position_from_positions_alone(model):
    with torch.no_grad():
        patterns = torch.stack([day2.positional_attention(model, 0, head, N_POSITIONS) for head in range(4)])
    scores = day2.previous_position_score(patterns)
    assert scores[0].item() > 0.9
    assert scores[1:].max().item() < 0.1


def test_the_sources_add_up_to_the_real_inputs_queries_keys_and_scores(decomposition):
    cache, sources, queries, keys, scores = decomposition
    assert sources.shape[0] == 7  # embed, 4 layer-0 heads, b_O, positions
    real_input = cache["resid_pre", 1] + cache["pos_embed"]
    assert (sources.sum(0) - real_input).abs().max().item() < 1e-4
    assert (queries.sum(0) - cache["q", 1][:, :, 0]).abs().max().item() < 1e-4
    assert (keys.sum(0) - cache["k", 1][:, :, 0]).abs().max().item() < 1e-4
    real_scores = cache["attn_scores", 1][:, 0]
    allowed = torch.ones_like(real_scores[0], dtype=torch.bool).tril()
    assert (scores.sum(dim=(0, 1)) - real_scores)[:, allowed].abs().max().item() < 1e-3


def test_embedding_query_x_L0H0_key_draws_the_induction_stripe(decomposition):
    scores = decomposition[-1]
    contrast = day2.stripe_contrast(scores, HALF_LEN)
    embed, l0h0 = 0, 1  # term order: embed, L0H0..L0H3, b_O, pos, bias
    assert contrast.argmax().item() == embed * contrast.shape[1] + l0h0
    runner_up = contrast.flatten().sort().values[-2].item()
    assert runner_up < 0.05 * contrast[embed, l0h0].item()  # "one term stands out"


def test_the_K_composition_circuit_of_L0H0_into_L1H0_matches_tokens(model):
    with torch.no_grad():
        circuits = torch.stack([day2.k_composition_circuit(model, 0, prev, 1, 0) for prev in range(4)])
    top1 = day2.top_k_copying_accuracy(circuits, 1)
    assert top1[0].item() > 0.98
    assert top1[1:].max().item() < 0.1


def test_composition_scores_against_the_random_baseline(composition):
    scores, baseline = composition
    k_scores = scores["K"]
    assert k_scores[0, 0].item() > 3 * baseline
    assert k_scores.flatten()[1:].max().item() < 1.2 * baseline
    q_scores = scores["Q"]
    standing_out = torch.zeros_like(q_scores, dtype=torch.bool)
    standing_out[[1, 3], 1:] = True  # L0H1 and L0H3 into L1H1..L1H3
    assert q_scores[standing_out].min().item() > 2.5 * baseline
    assert q_scores[~standing_out].max().item() < baseline
    assert scores["V"].max().item() < 2 * baseline


def test_the_weights_predict_L1H0s_attention(model):
    tokens = repeated_tokens(16, PREDICTION_HALF_LEN, model.cfg.d_vocab, torch.Generator().manual_seed(3),
                             first_token=FIRST_WORD_TOKEN)
    with torch.no_grad():
        predicted = day2.predicted_induction_pattern(model, tokens, 0, 0, 1, 0)
        _, cache = model.run_with_cache(tokens, names_filter="blocks.1.attn.hook_pattern")
    agreement = day2.argmax_agreement(predicted, cache["pattern", 1][:, 0], PREDICTION_HALF_LEN + 1)
    assert agreement > 0.85  # "about nine queries in ten"
