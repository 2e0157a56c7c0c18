"""Every claim the day 3 notebook makes about the shipped `induction-2l`, recomputed with the solution functions and
the course's scrubbing helper on the notebook's data and seeds (512 held-out stories, 4 resamplings).

If the model is retrained and these fail, the conclusion of solutions/day3_causal_scrubbing.py must be rewritten.
"""

from __future__ import annotations

import pytest
import torch

from curriculum import scrubbing
from curriculum.data.induction_corpus import INDUCTION_CANDIDATES, held_out_stories
from curriculum.models import load_model
from solutions import day3_causal_scrubbing as day3

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

N_SEQUENCES = 512  # as in the notebook
N_RESAMPLINGS = 4


@pytest.fixture(scope="module")
def model():
    torch.set_grad_enabled(False)
    yield load_model("induction-2l")
    torch.set_grad_enabled(True)


@pytest.fixture(scope="module")
def dataset():
    return held_out_stories(N_SEQUENCES)


@pytest.fixture(scope="module")
def ladder(model, dataset):
    """name -> (mean loss, recovered, standard error of recovered), computed as in the notebook."""
    hypotheses = scrubbing.day3_hypotheses(model)
    run = scrubbing.ScrubbingRun(model, dataset, INDUCTION_CANDIDATES)
    table = run.table(hypotheses, [scrubbing.day3_sources(dataset, r) for r in range(N_RESAMPLINGS)])
    names = [h.name for h in hypotheses]
    mean, sem = day3.mean_and_standard_error(table)
    clean, baseline = mean[names.index("no scrubbing")].item(), mean[names.index("L1H0 scrubbed")].item()
    recovered = day3.percent_loss_recovered(clean, mean, baseline)
    sem_recovered = sem / (baseline - clean)
    return {name: (mean[i].item(), recovered[i].item(), sem_recovered[i].item()) for i, name in enumerate(names)}


def test_names_are_predictable_only_after_their_first_mention(model, dataset):
    inputs, targets = day3.inputs_and_targets(dataset)
    mask = day3.candidate_mask(inputs, torch.tensor(INDUCTION_CANDIDATES), model.cfg.d_vocab)
    losses = day3.per_position_loss(model, inputs, targets)
    first = torch.zeros_like(mask)
    for b in range(inputs.shape[0]):
        seen: set[int] = set()
        for p in mask[b].nonzero()[:, 0].tolist():
            first[b, p] = inputs[b, p].item() not in seen
            seen.add(inputs[b, p].item())
    assert losses[mask & first].mean() > 5.0
    assert losses[mask & ~first].mean() < 0.1
    assert day3.loss_on_candidates(losses, mask) < 2.0


def test_independent_sampling_groups_are_uncorrelated():
    draws = day3.sample_groups({"query": "A", "key": "A", "value": "B"}, {"A": 11, "B": 22}, 2000)
    assert torch.equal(draws["query"], draws["key"])
    assert abs(torch.corrcoef(torch.stack([draws["query"], draws["value"]]).float())[0, 1]) < 0.1


def test_baselines(ladder):
    clean, everything, baseline = (ladder[name][0] for name in scrubbing.BASELINES)
    assert 1.6 < clean < 2.0
    assert 5.8 < baseline < 6.4
    assert 8.5 < everything < 9.1


def test_the_remix_ladder_holds(ladder):
    for name in scrubbing.LADDER[:4]:
        assert ladder[name][1] >= 0.97, (name, ladder[name])
    assert ladder[scrubbing.LADDER[4]][1] >= 0.95


def test_the_refuted_hypotheses_fail(ladder):
    assert ladder["key needs only the token embedding"][1] < 0.30
    assert ladder["query needs only L0H0"][1] < 0.30
    assert 0.5 < ladder["other layer-1 heads don't matter"][1] < 0.90
    assert ladder["other layer-1 heads don't matter"][0] - ladder["no scrubbing"][0] > 0.5


def test_agreeing_on_a_feature_is_what_matters(ladder):
    assert abs(ladder["key from any position"][1]) < 0.05
    assert ladder["key from a position with the same previous token"][1] > 0.90
    assert ladder["query from any position"][1] < 0.15
    assert ladder["query from a position with the same token"][1] > 0.90


def test_error_bars_are_small(ladder):
    assert all(sem < 0.01 for _, _, sem in ladder.values()), {k: v[2] for k, v in ladder.items()}


def test_the_helper_agrees_with_the_learners_functions(model, dataset):
    small = dataset[:64]
    other = torch.randperm(64, generator=torch.Generator().manual_seed(2))
    inputs, targets = day3.inputs_and_targets(small)
    names = scrubbing.component_names(model)
    components = day3.layer1_input_components(model, inputs)
    spec = {x: {c: "other" for c in names} for x in "qkv"}
    logits = day3.run_with_qkv_inputs(model, inputs, day3.assemble_qkv_inputs(components, names, other, spec), 1, 0)
    losses = -logits.log_softmax(-1).gather(-1, targets[..., None])[..., 0]
    mine = day3.loss_on_candidates(losses, day3.candidate_mask(inputs, torch.tensor(INDUCTION_CANDIDATES),
                                                               model.cfg.d_vocab))
    run = scrubbing.ScrubbingRun(model, small, INDUCTION_CANDIDATES)
    hypothesis = scrubbing.Hypothesis("L1H0 scrubbed", {f"L1H0.{x}": spec[x] for x in "qkv"})
    helper = run.loss(hypothesis, {"orig": scrubbing.identity_source(64, small.shape[1]),
                                   "other": scrubbing.sequence_source_from(other, small.shape[1])})
    assert mine == pytest.approx(helper, abs=1e-4)


def test_the_bonus_path_keeps_most_of_l0h0s_output(model, dataset):
    sample = dataset[:8]
    other = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    clean = day3.layer1_input_components(model, sample)[1]
    mixed = day3.prev_value_path_output(model, 0, sample, sample[other])
    assert ((mixed - clean).norm() / clean.norm()) < 0.3
    assert ((clean[other] - clean).norm() / clean.norm()) > 1.0
