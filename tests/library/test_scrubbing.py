"""The fast scrubber of day 3 (`curriculum.library.scrubbing`) against the obvious computations it replaces."""

from __future__ import annotations

import pytest
import torch

from curriculum.library import scrubbing
from curriculum.data.induction_corpus import INDUCTION_CANDIDATES, held_out_stories, stories
from curriculum.models import load_model
from solutions import scrubbing_table

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def model():
    return load_model("induction-2l")


@pytest.fixture(scope="module")
def tokens():
    return held_out_stories(8)


@pytest.fixture(scope="module")
def resamplings(tokens):
    return [scrubbing_table.day3_sources(tokens, r, seed=7) for r in range(2)]


@pytest.fixture(scope="module")
def fast_table(model, tokens, resamplings):
    with torch.no_grad():
        run = scrubbing.ScrubbingRun(model, tokens, INDUCTION_CANDIDATES)
        return run.table(scrubbing_table.day3_hypotheses(model), resamplings)


def test_fast_table_matches_the_straightforward_hooked_runs(model, tokens, resamplings, fast_table):
    hypotheses = scrubbing_table.day3_hypotheses(model)
    with torch.no_grad():
        slow = scrubbing_table.straightforward_losses(model, tokens, INDUCTION_CANDIDATES, hypotheses, resamplings[:1])
    assert torch.allclose(fast_table[:1], slow, atol=1e-4), (fast_table[:1] - slow).abs().max()
    assert not model.cfg.use_split_qkv_input, "straightforward_losses must turn split inputs off again"


def test_baselines_are_plain_forward_passes(model, tokens, resamplings, fast_table):
    """No scrubbing is the model on the dataset; all inputs scrubbed is the model on the permuted sequences, scored
    on the original labels."""
    names = [h.name for h in scrubbing_table.day3_hypotheses(model)]
    other = resamplings[0][scrubbing_table.OTHER][:, 0] // tokens.shape[1]
    is_candidate = torch.zeros(model.cfg.d_vocab, dtype=torch.bool)
    is_candidate[INDUCTION_CANDIDATES] = True
    mask = is_candidate[tokens[:, :-1]]
    with torch.no_grad():
        for name, model_input in (("no scrubbing", tokens), ("all inputs scrubbed", tokens[other])):
            log_probs = model(model_input)[:, :-1].log_softmax(-1)
            expected = -log_probs.gather(-1, tokens[:, 1:, None])[..., 0][mask].mean()
            assert fast_table[0, names.index(name)].item() == pytest.approx(expected.item(), abs=1e-4), name


def test_cached_inputs_never_leak_between_resamplings(model, tokens, resamplings, fast_table):
    """The second resampling alone, in a fresh run, gives the same losses as after the first (caches are keyed
    right)."""
    with torch.no_grad():
        run = scrubbing.ScrubbingRun(model, tokens, INDUCTION_CANDIDATES)
        alone = run.table(scrubbing_table.day3_hypotheses(model), resamplings[1:])
    assert torch.allclose(alone[0], fast_table[1], atol=1e-5)
    assert not torch.allclose(fast_table[0], fast_table[1]), "two resamplings gave identical scrubbed losses"


def test_layer0_heads_match_the_model(model, tokens):
    with torch.no_grad():
        out, pattern = scrubbing.layer0_heads(model, tokens[:4])
        _, cache = model.run_with_cache(tokens[:4])
    assert torch.allclose(pattern, cache["pattern", 0], atol=1e-5)
    expected = torch.einsum("bphd,hdm->hbpm", cache["z", 0], model.W_O[0])
    assert torch.allclose(out, expected, atol=1e-4)


def test_sequence_source_moves_whole_sequences():
    source = scrubbing_table.sequence_source(6, 5, seed=3)
    sequences, positions = source // 5, source % 5
    assert torch.equal(positions, torch.arange(5).expand(6, 5))
    assert sorted(sequences[:, 0].tolist()) == list(range(6))
    assert (sequences == sequences[:, :1]).all()
    assert torch.equal(source, scrubbing_table.sequence_source(6, 5, seed=3))
    assert not torch.equal(source, scrubbing_table.sequence_source(6, 5, seed=4))


def test_matched_source_keeps_the_feature():
    tokens = stories(8, torch.Generator().manual_seed(5))
    previous, valid = scrubbing_table.previous_token_feature(tokens)
    source = scrubbing_table.matched_source(previous, valid, seed=1)
    flat_previous = previous.flatten()
    assert torch.equal(flat_previous[source][valid], previous[valid])
    assert valid.flatten()[source[valid]].all(), "a valid position was matched with an invalid one"
    assert torch.equal(source[~valid], torch.arange(tokens.numel()).view_as(tokens)[~valid])
    assert (source[valid] != torch.arange(tokens.numel()).view_as(tokens)[valid]).float().mean() > 0.5
    assert torch.equal(source, scrubbing_table.matched_source(previous, valid, seed=1))
    assert not torch.equal(source, scrubbing_table.matched_source(previous, valid, seed=2))


def test_matched_source_is_uniform_within_a_feature_value():
    feature = torch.zeros(1, 4, dtype=torch.long)
    valid = torch.ones(1, 4, dtype=torch.bool)
    picks = torch.stack([scrubbing_table.matched_source(feature, valid, seed=s) for s in range(400)]).flatten()
    counts = torch.bincount(picks, minlength=4).float() / picks.numel()
    assert (counts - 0.25).abs().max() < 0.04, counts


def test_only_two_layer_attention_only_shortformer_models():
    with pytest.raises(ValueError, match="shortformer"):
        scrubbing.ScrubbingRun(load_model("toy-gpt"), torch.zeros(2, 4, dtype=torch.long), [1])


def test_the_ladder_figure_zooms_to_show_its_error_bars():
    """A dot plot whose range fits the dots and bars: bars a tenth of a point wide stay visible near 100%."""
    fig = scrubbing.ladder_figure(["a", "b", "c"], [1.0, 0.99, 0.965], [0.0, 0.0002, 0.001])
    low, high = fig.layout.xaxis.range
    assert low < 96.4 and high > 100.0 and high - low < 6, (low, high)
    assert list(fig.data[0].error_x.array) == pytest.approx([0.0, 0.02, 0.1]) and fig.data[0].mode == "markers"
    wide = scrubbing.ladder_figure(["x", "y"], [-0.4, 1.0], [0.005, 0.0]).layout.xaxis.range
    assert wide[0] < -40.5 and wide[1] > 100.0
