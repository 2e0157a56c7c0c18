"""Every claim the day 5 notebook makes about the shipped `toy-gpt`, recomputed with the solution functions and the
course's circuits module, on the notebook's data (same seeds and sizes).

If the model is retrained and these fail, the prose of solutions/day5_circuit_discovery.py must be rewritten to match
the new measurements.
"""

from __future__ import annotations

import pytest
import torch

from curriculum import circuits
from curriculum.data.ioi import S2_POSITION, ioi_prompts
from curriculum.data.number_sequences import number_sequences
from curriculum.data.toy_vocab import NAMES, TOKEN_ID
from curriculum.models import load_model
from solutions import day5_circuit_discovery as day5

THRESHOLD = 3.0
END = 15


@pytest.fixture(scope="module")
def model():
    torch.set_grad_enabled(False)
    yield load_model("toy-gpt")
    torch.set_grad_enabled(True)


@pytest.fixture(scope="module")
def ioi(model):
    prompts = ioi_prompts(30, torch.Generator().manual_seed(5))
    tokens, io, s = prompts.tokens, prompts.io_tokens, prompts.s_tokens
    positions = day5.ioi_positions(tokens, io, s)
    name_tokens = torch.tensor([TOKEN_ID[name] for name in NAMES])
    corrupted = day5.abc_corruption(tokens, positions, name_tokens, torch.Generator().manual_seed(6))
    end = positions[:, 3]
    return {"tokens": tokens, "corrupted": corrupted, "io": io, "s": s, "end": end, "positions": positions,
            "clean_ld": day5.logit_diff(model(tokens), io, s, end),
            "corrupted_ld": day5.logit_diff(model(corrupted), io, s, end),
            "means": day5.reference_means(model, corrupted)}


@pytest.fixture(scope="module")
def numbers(model):
    tokens = number_sequences(30, 6, torch.Generator().manual_seed(8)).tokens
    answers = day5.number_answer_tokens(tokens)
    corrupted = day5.repeat_last_corruption(tokens)
    end = torch.full((len(tokens),), tokens.shape[1] - 1)
    return {"tokens": tokens, "corrupted": corrupted, "next": answers[:, 0], "repeat": answers[:, 1], "end": end,
            "means": day5.reference_means(model, corrupted)}


def _ablation(model, data, correct, wrong):
    def metric(last_logits):  # every prompt ends at its last position
        rows = torch.arange(len(last_logits))
        return (last_logits[rows, data[correct]] - last_logits[rows, data[wrong]]).mean()

    return circuits.MeanAblation(model, data["tokens"], data["means"], metric)


@pytest.fixture(scope="module")
def ioi_circuit(model, ioi):
    nodes = circuits.head_position_nodes(4, 4, 16, positions=range(16))
    kept = circuits.greedy_prune(_ablation(model, ioi, "io", "s"), nodes, THRESHOLD)
    return nodes, kept, (nodes & kept[:, None, None, None]).any(0)


def test_logit_difference_and_its_usual_range(model, ioi):
    reference = ioi_prompts(200, torch.Generator().manual_seed(7))
    reference_ld = day5.logit_diff(model(reference.tokens), reference.io_tokens, reference.s_tokens,
                                   torch.full((200,), END))
    low, high = day5.usual_range(reference_ld, 0.9).tolist()
    assert low <= ioi["clean_ld"].mean() <= high and low > 3
    assert not low <= ioi["corrupted_ld"].mean() <= high
    assert abs(ioi["corrupted_ld"].mean()) < 1.0  # the ABC corruption leaves about zero


def test_node_reading_and_replacing_round_trip(model, ioi):
    names = [day5.node_name(0, 1, 12), day5.node_name(2, 0, 15)]
    values = day5.read_nodes(model, ioi["tokens"], names)
    same = day5.run_with_nodes_replaced(model, ioi["tokens"], dict(zip(names, values)))
    assert torch.equal(same, model(ioi["tokens"]))


def test_direct_effects_add_up_and_layer_3_writes_the_answer(model, ioi):
    effects = day5.direct_effects(model, ioi["tokens"], ioi["io"], ioi["s"], ioi["end"])
    constant = (model.ln_final.b @ (model.W_U[:, ioi["io"]] - model.W_U[:, ioi["s"]])
                + model.b_U[ioi["io"]] - model.b_U[ioi["s"]])
    assert (effects.sum(0) + constant - ioi["clean_ld"]).abs().max() < 1e-3
    labels = day5.component_labels(4, 4)
    top = [labels[i] for i in effects.mean(1).argsort(descending=True)[:5].tolist()]
    assert set(top) <= {"L3 MLP", "L3H0", "L3H1", "L3H2", "L3H3", "L2H0"}, top
    assert top[0] == "L3 MLP"


def test_activation_patching_finds_s2_and_the_end(model, ioi):
    few = slice(0, 10)
    ours = day5.head_patching_by_position(model, ioi["tokens"][few], ioi["corrupted"][few], ioi["io"][few],
                                          ioi["s"][few], ioi["end"][few])
    _, clean_cache = model.run_with_cache(ioi["tokens"])

    def fast(rows):
        def metric(last_logits):
            index = torch.arange(len(last_logits))
            return (last_logits[index, ioi["io"][rows]] - last_logits[index, ioi["s"][rows]]).mean()

        raw = circuits.patch_heads_by_position(model, ioi["corrupted"][rows],
                                               [clean_cache["z", layer][rows] for layer in range(4)], metric)
        clean, corrupted = ioi["clean_ld"][rows].mean(), ioi["corrupted_ld"][rows].mean()
        return (raw - corrupted) / (clean - corrupted)

    assert (fast(few) - ours).abs().max() < 1e-4
    effects = fast(slice(None))
    strong = {(layer, position) for layer, position, _ in (effects.abs() > 0.1).nonzero().tolist()}
    assert strong <= {(0, S2_POSITION), (0, S2_POSITION + 1), (2, END), (3, END)}, strong
    assert (0, S2_POSITION + 1) in strong and (3, END) in strong
    assert effects.max() < 0.35  # no single slice restores more than about a quarter


def test_path_patching_through_values_not_queries(model, ioi):
    args = (model, ioi["tokens"], ioi["corrupted"], ioi["io"], ioi["s"], ioi["end"])
    to_logits = day5.path_patching_to_logits(*args)
    direct = {(3, 0), (3, 1), (3, 2), (3, 3), (2, 0), (2, 2)}
    six_most_negative = {divmod(i, 4) for i in to_logits.flatten().argsort()[:6].tolist()}
    assert six_most_negative == direct
    assert all(to_logits[layer, head] < -0.1 for layer, head in direct)
    receivers = [(3, 0), (3, 1), (3, 2), (3, 3)]
    for component in ("q", "k"):
        assert day5.path_patching_to_receivers(*args, receivers, component).abs().max() < 0.05
    values = day5.path_patching_to_receivers(*args, receivers, "v")
    assert values[0, 0] < -0.15 and values[0, 1] < -0.15


def test_where_the_heads_at_the_end_look(model, ioi):
    role_attention = day5.attention_to_roles(model, ioi["tokens"], ioi["positions"])  # [layer, head, (IO, S1, S2)]
    assert role_attention[2, 0, 2] > 0.9  # L2H0 looks at S2
    assert (role_attention[3, :, 0] < 0.05).all()  # no layer-3 head looks at IO
    _, cache = model.run_with_cache(ioi["tokens"], names_filter=lambda name: name.endswith("hook_pattern"))
    from_end = cache["pattern", 3][:, :, -1].mean(0)  # [head, key]
    assert (from_end.argmax(-1) == S2_POSITION + 1).all()  # every layer-3 head looks at the word after S2
    assert cache["pattern", 2][:, 2, -1].mean(0).argmax() == S2_POSITION + 1
    after_s2 = cache["pattern", 0][:, :, S2_POSITION + 1, S2_POSITION].mean(0)
    assert (after_s2[:2] > 0.4).all()  # layer-0 heads at the word after S2 look back at S2
    layer0_from_end = cache["pattern", 0][:, :, -1].mean(0)
    assert set(layer0_from_end[[0, 1, 3]].argmax(-1).tolist()) <= {3, 5}  # ... and at the end, at the two names


def test_faithfulness_anchors(model, ioi):
    everything = torch.ones(4, 16, 4, dtype=torch.bool)
    args = (ioi["io"], ioi["s"], ioi["end"])
    assert abs(day5.faithfulness(model, ioi["tokens"], ioi["means"], everything, *args) - 100) < 1e-3
    assert abs(day5.faithfulness(model, ioi["tokens"], ioi["means"], ~everything, *args)) < 10


def test_whole_heads_barely_prune(model, ioi):
    nodes = circuits.head_nodes(4, 4, 16)
    kept = day5.greedy_prune_batched(model, ioi["tokens"], ioi["means"], ioi["io"], ioi["s"], ioi["end"], nodes,
                                     THRESHOLD, 8)
    assert int(kept.sum()) == 13
    circuit = (nodes & kept[:, None, None, None]).any(0)
    assert day5.faithfulness(model, ioi["tokens"], ioi["means"], circuit, ioi["io"], ioi["s"], ioi["end"]) > 97


def test_the_ioi_circuit(model, ioi, ioi_circuit):
    nodes, kept, circuit = ioi_circuit
    score = day5.faithfulness(model, ioi["tokens"], ioi["means"], circuit, ioi["io"], ioi["s"], ioi["end"])
    assert score > 100 - THRESHOLD
    assert int(kept.sum()) < len(nodes) / 10  # fewer than one node in ten
    slices = circuit.nonzero().tolist()  # (layer, position, head)
    assert {position for _, position, _ in slices} == {S2_POSITION, S2_POSITION + 1, END}
    assert all(layer == 0 for layer, position, _ in slices if position != END)  # S2 and after: layer 0 only
    assert {layer for layer, position, _ in slices if position == END} == {0, 1, 2, 3}
    assert circuit[3, END].all()  # every layer-3 head at the end
    drops = day5.minimality(model, ioi["tokens"], ioi["means"], ioi["io"], ioi["s"], ioi["end"], nodes, kept)
    assert (drops[kept] > 0).all() and (drops[~kept] == 0).all()


def test_number_sequences(model, numbers):
    args = (numbers["next"], numbers["repeat"], numbers["end"])
    assert day5.logit_diff(model(numbers["tokens"]), *args).mean() > 10
    assert day5.logit_diff(model(numbers["corrupted"]), *args).mean() < 0
    patching = day5.head_patching_by_position(model, numbers["tokens"], numbers["corrupted"], *args)
    assert patching[:, :-1].abs().max() < 1e-4  # only the last position differs between the runs
    seq = numbers["tokens"].shape[1]
    nodes = circuits.head_position_nodes(4, 4, seq, positions=range(1, seq))
    kept = circuits.greedy_prune(_ablation(model, numbers, "next", "repeat"), nodes, THRESHOLD)
    circuit = (nodes & kept[:, None, None, None]).any(0)
    assert day5.faithfulness(model, numbers["tokens"], numbers["means"], circuit, *args) > 100 - THRESHOLD
    assert int(kept.sum()) < len(nodes) / 2
    slices = circuit.nonzero().tolist()
    assert all(position == seq - 1 for layer, position, _ in slices if layer >= 2)  # late layers: the last position
    assert len({position for layer, position, _ in slices if layer <= 1}) >= 4  # early layers: at the terms
