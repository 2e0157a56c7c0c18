"""Every claim the day 5 notebook makes about the shipped `toy-gpt`, recomputed with the solution functions (the
learner's own, as the notebook finds them) on the notebook's data (same seeds and sizes).

If the model is retrained and these fail, the prose of solutions/day5_circuit_discovery.py must be rewritten to match
the new measurements.
"""

from __future__ import annotations

import pytest
import torch

from curriculum.library import circuits
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


@pytest.fixture(scope="module")
def ioi_circuit(model, ioi):
    nodes = circuits.head_position_nodes(4, 4, 16, positions=range(16))
    kept = day5.greedy_prune_batched(model, ioi["tokens"], ioi["means"], ioi["io"], ioi["s"], ioi["end"], nodes,
                                     THRESHOLD, 4)
    return nodes, kept, (nodes & kept[:, None, None, None]).any(0)


def test_the_model_does_not_need_the_repetition(model, ioi):
    """Section 2: with S1 replaced by a third name nothing repeats, yet the logit difference rises; IO's name at S2
    turns it negative; the layer-0 heads at S2 do not look at S1."""
    rows = torch.arange(len(ioi["tokens"]))
    s1_replaced = ioi["tokens"].clone()
    s1_replaced[rows, ioi["positions"][:, 1]] = ioi["corrupted"][rows, ioi["positions"][:, 2]]
    io_at_s2 = ioi["tokens"].clone()
    io_at_s2[rows, ioi["positions"][:, 2]] = ioi["io"]
    clean = ioi["clean_ld"].mean()
    assert day5.logit_diff(model(s1_replaced), ioi["io"], ioi["s"], ioi["end"]).mean() > clean + 2
    assert day5.logit_diff(model(io_at_s2), ioi["io"], ioi["s"], ioi["end"]).mean() < -5
    _, cache = model.run_with_cache(ioi["tokens"], names_filter="blocks.0.attn.hook_pattern")
    s2_to_s1 = cache["pattern", 0][rows, :, S2_POSITION, ioi["positions"][:, 1]].mean(0)
    assert (s2_to_s1 < 0.02).all(), s2_to_s1


def test_the_shortcut_on_other_seeds_and_prompt_shapes(model):
    """The same over three other seeds of 100 prompts, and the card's accuracy on prompts of other shapes."""
    from curriculum.data.ioi import varied_ioi_rows
    from curriculum.models.recipes.toy_gpt import s1_replaced

    for seed in (11, 12, 13):
        prompts = ioi_prompts(100, torch.Generator().manual_seed(seed))
        end = torch.full((100,), END)
        clean = day5.logit_diff(model(prompts.tokens), prompts.io_tokens, prompts.s_tokens, end).mean()
        replaced = s1_replaced(prompts, torch.Generator().manual_seed(seed + 100))
        assert day5.logit_diff(model(replaced), prompts.io_tokens, prompts.s_tokens, end).mean() > clean + 2
    rows = varied_ioi_rows(200, torch.Generator().manual_seed(14), split="held_out")
    correct = [int(model(torch.tensor([row[:-1]]))[0, -1].argmax()) == row[-1] for row in rows]
    assert sum(correct) / len(correct) < 0.75  # far from the 1.0 of the fixed frames


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
    effects = day5.head_patching_by_position(model, ioi["tokens"], ioi["corrupted"], ioi["io"], ioi["s"], ioi["end"])
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


def test_faithfulness_in_sample_and_held_out_and_minimality(model, ioi, ioi_circuit):
    nodes, kept, circuit = ioi_circuit
    in_sample = day5.faithfulness(model, ioi["tokens"], ioi["means"], circuit, ioi["io"], ioi["s"], ioi["end"])
    held = ioi_prompts(200, torch.Generator().manual_seed(7))
    positions = day5.ioi_positions(held.tokens, held.io_tokens, held.s_tokens)
    name_tokens = torch.tensor([TOKEN_ID[name] for name in NAMES])
    corrupted = day5.abc_corruption(held.tokens, positions, name_tokens, torch.Generator().manual_seed(9))
    held_out = day5.faithfulness(model, held.tokens, day5.reference_means(model, corrupted), circuit,
                                 held.io_tokens, held.s_tokens, positions[:, 3])
    assert int(kept.sum()) == 17 and round(in_sample, 1) == 98.9 and round(held_out, 1) == 92.5
    assert held_out < in_sample - 5
    drops = day5.minimality(model, ioi["tokens"], ioi["means"], ioi["io"], ioi["s"], ioi["end"], nodes, kept)
    cheap = sorted(round(v, 1) for v in drops[kept].tolist() if v < THRESHOLD)
    assert cheap == [1.0, 1.5, 1.6], cheap


def _capstone(model, ioi):
    name_tokens = torch.tensor([TOKEN_ID[name] for name in NAMES])
    effects = day5.name_direct_effects(model, ioi["tokens"], ioi["io"], ioi["s"], name_tokens, ioi["end"]).mean(1)
    return {label: effects[i] for i, label in enumerate(day5.component_labels(4, 4))}


LATE_HEADS = ["L2H0", "L2H2", "L3H0", "L3H1", "L3H2", "L3H3"]


def test_capstone_where_the_io_logit_comes_from(model, ioi):
    effects = _capstone(model, ioi)
    for layer in (0, 1, 2):  # the early MLPs raise both names
        io, s = effects[f"L{layer} MLP"].tolist()
        assert io > 1.5 and s > 0.9
    io, s = effects["L3 MLP"].tolist()
    assert io > 2.3 and s < 0  # the layer-3 MLP raises IO alone
    assert all(abs(effects[label][0]) < 0.35 for label in LATE_HEADS)  # the late heads barely touch IO ...
    assert all(effects[label][1] < -0.45 for label in LATE_HEADS)  # ... and push S down
    pushers = {label for label, value in effects.items() if label[1:2].isdigit() and "H" in label and value[1] < -0.3}
    assert pushers == set(LATE_HEADS)
    to_mlp = day5.path_patching_to_mlp(model, ioi["tokens"], ioi["corrupted"], ioi["io"], ioi["s"], ioi["end"], 3)
    for label in LATE_HEADS:
        layer, head = int(label[1]), int(label[3])
        assert -0.08 < to_mlp[layer, head] < -0.03
    assert to_mlp[:2].abs().max() < 0.02


def test_capstone_ablation_removes_the_behaviour(model, ioi, ioi_circuit):
    _, _, circuit = ioi_circuit
    heads, mlps = torch.ones(4, 16, 4, dtype=torch.bool), torch.ones(4, 16, dtype=torch.bool)

    def ablated_ld(keep_heads, keep_mlps):
        logits = day5.ablate_heads_and_mlps(model, ioi["tokens"], ioi["corrupted"], keep_heads, keep_mlps)
        return day5.logit_diff(logits, ioi["io"], ioi["s"], ioi["end"]).mean().item()

    without_pushers = heads.clone()
    for label in LATE_HEADS:
        without_pushers[int(label[1]), END, int(label[3])] = False
    without_mlp3 = mlps.clone()
    without_mlp3[3, END] = False
    assert ablated_ld(without_pushers, mlps) < 1.0  # from 8.86: the behaviour is gone
    assert ablated_ld(heads, without_mlp3) > 6.5
    full = ioi["clean_ld"].mean().item()
    at_circuit = circuit.any(dim=2).any(dim=0)[None].expand(4, -1).clone()
    assert 100 * ablated_ld(circuit, at_circuit) / full > 97  # MLPs kept only at the circuit's positions
    assert 100 * ablated_ld(circuit, torch.zeros_like(mlps)) / full < 10  # every MLP ablated


def test_number_sequences(model, numbers):
    args = (numbers["next"], numbers["repeat"], numbers["end"])
    assert day5.logit_diff(model(numbers["tokens"]), *args).mean() > 10
    assert day5.logit_diff(model(numbers["corrupted"]), *args).mean() < 0
    patching = day5.head_patching_by_position(model, numbers["tokens"], numbers["corrupted"], *args)
    assert patching[:, :-1].abs().max() < 1e-4  # only the last position differs between the runs
    seq = numbers["tokens"].shape[1]
    nodes = circuits.head_position_nodes(4, 4, seq, positions=range(1, seq))
    kept = day5.greedy_prune_batched(model, numbers["tokens"], numbers["means"], *args, nodes, THRESHOLD, 4)
    circuit = (nodes & kept[:, None, None, None]).any(0)
    assert day5.faithfulness(model, numbers["tokens"], numbers["means"], circuit, *args) > 100 - THRESHOLD
    assert int(kept.sum()) == 33  # a third of the 96 nodes
    slices = circuit.nonzero().tolist()
    assert all(position == seq - 1 for layer, position, _ in slices if layer >= 2)  # late layers: the last position
    assert len({position for layer, position, _ in slices if layer <= 1}) >= 4  # early layers: at the terms
