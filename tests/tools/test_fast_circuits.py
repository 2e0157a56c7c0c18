"""The benchmarks' fast patching and pruning (bench/fast_circuits.py) agree with the plain loops they replace."""

from __future__ import annotations

import importlib.util
import sys
import warnings

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig, patching

from curriculum.library import circuits
from curriculum.data.ioi import ioi_prompts
from curriculum.models import load_model
from curriculum.tools.paths import COURSE_ROOT


def _load_fast_circuits():
    """bench/ is scripts, not a package: load its module from the file (registered, as dataclasses need)."""
    spec = importlib.util.spec_from_file_location("fast_circuits", COURSE_ROOT / "bench" / "fast_circuits.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fast_circuits", module)
    spec.loader.exec_module(sys.modules["fast_circuits"])
    return sys.modules["fast_circuits"]


fast_circuits = _load_fast_circuits()


def random_gpt(n_layers: int, n_heads: int, d_model: int, seed: int, attn_only: bool = False) -> HookedTransformer:
    cfg = HookedTransformerConfig(n_layers=n_layers, n_heads=n_heads, d_model=d_model, d_head=d_model // n_heads,
                                  d_mlp=None if attn_only else 2 * d_model, d_vocab=50, n_ctx=16, act_fn="gelu_new",
                                  normalization_type="LN", attn_only=attn_only)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            param.copy_(0.3 * torch.randn(param.shape, generator=generator) + (1.0 if param.ndim == 1 and
                                                                                  param.shape[0] == d_model else 0.0))
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def _task(model: HookedTransformer, batch: int, seq: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(model.cfg.d_vocab, (batch, seq), generator=generator)
    corrupted = tokens.clone()
    corrupted[:, seq // 3:] = torch.randint(model.cfg.d_vocab, (batch, seq - seq // 3), generator=generator)
    correct = torch.randint(model.cfg.d_vocab, (batch,), generator=generator)
    wrong = torch.randint(model.cfg.d_vocab, (batch,), generator=generator)

    def metric(last_logits):
        rows = torch.arange(len(last_logits))
        return (last_logits[rows, correct] - last_logits[rows, wrong]).mean()

    return tokens, corrupted, metric


@pytest.mark.parametrize("attn_only", [False, True])
def test_patching_equals_transformer_lens(attn_only):
    model = random_gpt(3, 2, 16, seed=1, attn_only=attn_only)
    clean, corrupted, metric = _task(model, batch=3, seq=7, seed=2)
    _, clean_cache = model.run_with_cache(clean)
    expected = patching.get_act_patch_attn_head_out_by_pos(model, corrupted, clean_cache,
                                                           lambda logits: metric(logits[:, -1]))
    fast = fast_circuits.patch_heads_by_position(model, corrupted, [clean_cache["z", l] for l in range(3)], metric)
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-4)


def test_patching_on_toy_gpt_equals_a_hooked_forward_pass():
    """Spot checks on the real model: a few (layer, position, head) patches done with a plain hooked pass."""
    model = load_model("toy-gpt")
    prompts = ioi_prompts(4, torch.Generator().manual_seed(3))
    corrupted = prompts.tokens.clone()
    corrupted[:, 11] = torch.roll(prompts.tokens[:, 11], 1)
    _, clean_cache = model.run_with_cache(prompts.tokens)

    def metric(last_logits):
        rows = torch.arange(len(last_logits))
        return (last_logits[rows, prompts.io_tokens] - last_logits[rows, prompts.s_tokens]).mean()

    fast = fast_circuits.patch_heads_by_position(model, corrupted, [clean_cache["z", l] for l in range(4)], metric)
    for layer, position, head in [(0, 11, 0), (0, 12, 3), (1, 4, 2), (2, 15, 0), (3, 15, 3), (3, 9, 1)]:
        def patch(z, hook, position=position, head=head, layer=layer):
            z = z.clone()
            z[:, position, head] = clean_cache["z", layer][:, position, head]
            return z

        logits = model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch)])
        assert abs(fast[layer, position, head].item() - metric(logits[:, -1]).item()) < 1e-4


def test_patching_leaves_a_head_whose_clean_value_is_the_corrupted_one_and_patches_its_neighbours():
    """The fast path skips (layer, position, head) slices whose clean hook_z equals the corrupted one; here one such
    slice sits among changed ones (a head of layer 1 at a corrupted position), checked with plain hooked passes."""
    model = random_gpt(3, 2, 16, seed=4)
    clean, corrupted, metric = _task(model, batch=3, seq=7, seed=5)
    _, clean_cache = model.run_with_cache(clean)
    _, corrupted_cache = model.run_with_cache(corrupted)
    clean_z = [clean_cache["z", layer].clone() for layer in range(3)]
    clean_z[1][:, 5, 0] = corrupted_cache["z", 1][:, 5, 0]
    fast = fast_circuits.patch_heads_by_position(model, corrupted, clean_z, metric)
    for layer, position, head in [(1, 5, 0), (1, 5, 1), (0, 5, 0), (1, 1, 1)]:
        def patch(z, hook, position=position, head=head, layer=layer):
            z = z.clone()
            z[:, position, head] = clean_z[layer][:, position, head]
            return z

        logits = model.run_with_hooks(corrupted, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch)])
        assert abs(fast[layer, position, head].item() - metric(logits[:, -1]).item()) < 1e-5
    assert fast[1, 5, 0] == fast[1, 1, 1]  # both left as they were: the corrupted run's own metric
    assert fast[1, 5, 1] != fast[1, 5, 0]  # its neighbour was patched


@pytest.mark.parametrize("granularity, threshold, speculation, order", [
    ("heads", 3.0, 8, "last_layer_first"),
    ("heads", 1.0, 1, "first_layer_first"),
    ("positions", 5.0, 4, "last_layer_first"),
    ("positions", 2.0, 16, "first_layer_first"),
])
def test_batched_pruning_returns_the_sequential_circuit(granularity, threshold, speculation, order):
    model = random_gpt(4, 3, 24, seed=4)
    tokens, corrupted, last_metric = _task(model, batch=5, seq=6, seed=5)
    _, cache = model.run_with_cache(corrupted)
    means = torch.stack([cache["z", layer].mean(0) for layer in range(4)])
    ablation = fast_circuits.MeanAblation(model, tokens, means, last_metric)
    if granularity == "heads":
        nodes = circuits.head_nodes(4, 3, 6, order=order)
    else:
        nodes = circuits.head_position_nodes(4, 3, 6, positions=[5, 3, 4], order=order)
    sequential = fast_circuits.greedy_prune_sequential(ablation, nodes, threshold)
    batched = fast_circuits.greedy_prune(ablation, nodes, threshold, speculation=speculation)
    assert torch.equal(batched, sequential)
    assert 0 < int(sequential.sum()) < len(sequential)  # the case decides something either way


def test_a_pass_gives_each_circuit_the_state_of_its_own_run():
    model = random_gpt(3, 2, 16, seed=7)
    tokens, corrupted, last_metric = _task(model, batch=4, seq=5, seed=8)
    _, cache = model.run_with_cache(corrupted)
    means = torch.stack([cache["z", layer].mean(0) for layer in range(3)])
    ablation = fast_circuits.MeanAblation(model, tokens, means, last_metric)
    full = torch.ones(3, 5, 2, dtype=torch.bool)
    first = full.clone()
    first[1, 2:, 0] = False  # differs from `full` from layer 1, position 2
    second = first.clone()
    second[0, 3:, 1] = False  # and from layer 0, position 2 on
    _, runs = ablation.scores_from(ablation.state(full), torch.stack([first, second]), [1, 0], 2, with_runs=True)
    for index, circuit in enumerate((first, second)):
        expected, state = ablation.state(circuit), runs.state(index)
        assert state.keys() == expected.keys()
        for name, value in state.items():
            want = expected[name]
            if name == "z":  # of the last layer's hook_z, only the last position is ever read (and kept)
                torch.testing.assert_close(value[-1][:, -1], want[-1][:, -1], atol=1e-5, rtol=1e-5)
                value, want = value[:-1], want[:-1]
            torch.testing.assert_close(value, want, atol=1e-5, rtol=1e-5)
