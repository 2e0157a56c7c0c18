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
N_POSITIONS = 128  # the whole context
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


def test_the_corner_of_L1H0s_full_OV_circuit(full_ov):
    """Words map to themselves with large positive entries; `<bos>`'s diagonal entry is small."""
    corner = full_ov[1, 0, :3, :3]
    assert corner.diagonal()[1:].min().item() > 10  # "about 13"
    off = corner[1:, 1:] - torch.diag(corner.diagonal()[1:])
    assert off.abs().max().item() < 2  # "the entries off it small"
    assert 0 < corner[0, 0].item() < 0.5  # "about 0.2"
    assert corner[1:, 0].min().item() < -1.0  # the entries of <bos>'s column that are larger in size
    assert full_ov[1, 0].diagonal()[1:].min().item() > 5  # every word's own entry is large


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


def test_L0H0_attends_to_the_previous_position_from_positions_alone_in_the_first_half(model):
    with torch.no_grad():
        patterns = torch.stack([day2.positional_attention(model, 0, head, N_POSITIONS) for head in range(4)])
    scores = day2.previous_position_score(patterns)
    to_previous = patterns.diagonal(offset=-1, dim1=-2, dim2=-1)  # queries 1..127
    chunks = [to_previous[0, max(lo - 1, 0) : lo + 15].mean().item() for lo in range(0, N_POSITIONS, 16)]
    assert min(chunks[:3]) > 0.99  # "over 0.99 ... up to position 47"
    assert 0.85 < chunks[3] < 0.95  # "about 0.9 in 48-63"
    assert max(chunks[4:]) < 0.5 and min(chunks[4:]) > 0.3  # "under 0.5 after (0.32-0.46 per chunk)"
    assert 0.6 < scores[0].item() < 0.75  # "about 0.67" over the whole context
    first_half = day2.previous_position_score(patterns[0, :64, :64]).item()
    assert first_half > 0.97  # "a mean over the first 64 positions (0.98)"
    assert scores[1:].max().item() < 0.03  # "at most 0.03 on average"
    to_first = patterns[1:, 2:, 0].mean(dim=-1)
    assert to_first.min().item() > 0.15 and to_first[1].item() > 0.5  # "a large share on position 0, L0H2 > half"


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


def test_the_same_term_draws_a_stripe_above_the_diagonal(decomposition):
    term = decomposition[-1][0, 1]  # embedding query x L0H0 key, unmasked: [batch, query, key]
    seq = term.shape[-1]
    query, key = torch.arange(seq)[:, None], torch.arange(seq)[None, :]
    below = (key == query - HALF_LEN + 1) & (query > HALF_LEN)
    above = (key == query + HALF_LEN + 1) & (query >= 1)  # key in the second copy after the query's token
    elsewhere = ~below & ~above
    assert abs(term[:, above].mean() - term[:, below].mean()).item() < 0.1 * term[:, below].mean().item()
    assert term[:, above].mean().item() > 10 * term[:, elsewhere].mean().abs().item()


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
    assert k_scores.flatten()[1:].max().item() < baseline  # "every other K-composition score is below the baseline"
    assert k_scores[0, 1:].max().item() < 0.5 * baseline  # "L0H0 into L1H1-L1H3 ... about a third of it"
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
    first_copy = slice(1, PREDICTION_HALF_LEN + 1)
    real_at_bos = (cache["pattern", 1][:, 0, first_copy].argmax(-1) == 0).float().mean().item()
    predicted_at_bos = (predicted[:, first_copy].argmax(-1) == 0).float().mean().item()
    assert real_at_bos > 0.9 and predicted_at_bos < 0.1  # "rests on BOS ... the prediction's for a few percent"


@pytest.mark.parametrize("seed", (0, 1, 2))
def test_the_random_baseline_barely_depends_on_the_seed(seed):
    baseline = day2.random_composition_baseline(128, 32, BASELINE_SAMPLES, torch.Generator().manual_seed(seed))
    assert 0.085 < baseline < 0.092
