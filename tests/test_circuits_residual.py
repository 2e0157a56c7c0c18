"""`circuits.logits_with_residual_patch` (Day 4's residual patching) gives the logits of a plain hooked forward pass."""

from __future__ import annotations

import warnings

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from curriculum import circuits
from curriculum.models import load_model


def random_model(positions: str, normalization: str | None, attn_only: bool, seed: int) -> HookedTransformer:
    """A small randomly initialised model (3 layers, 2 heads) with non-trivial weights from a seeded generator."""
    cfg = HookedTransformerConfig(n_layers=3, n_heads=2, d_model=32, d_head=16, d_mlp=None if attn_only else 64,
                                  d_vocab=40, d_vocab_out=30, n_ctx=12, act_fn="gelu_new", attn_only=attn_only,
                                  normalization_type=normalization, positional_embedding_type=positions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            offset = 1.0 if name.endswith(".w") else 0.0  # LayerNorm scales near 1
            param.copy_(0.3 * torch.randn(param.shape, generator=generator) + offset)
    return model.eval()


def hooked_logits(model: HookedTransformer, tokens: torch.Tensor, name: str, position: int,
                  resid: torch.Tensor) -> torch.Tensor:
    def patch(activation: torch.Tensor, hook) -> torch.Tensor:
        activation = activation.clone()
        activation[:, position] = resid
        return activation

    return model.run_with_hooks(tokens, fwd_hooks=[(name, patch)])


def assert_matches_hooked_runs(model: HookedTransformer, seq: int, read_positions: list[int], seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    clean = torch.randint(model.cfg.d_vocab, (5, seq), generator=generator)
    source = torch.randint(model.cfg.d_vocab, (5, seq), generator=generator)
    clean_logits, clean_cache = circuits.run_for_residual_patching(model, clean)
    _, source_cache = circuits.run_for_residual_patching(model, source)
    names = circuits.residual_patching_names(model)[: model.cfg.n_layers + 1]
    assert torch.equal(clean_logits, model(clean))
    for point, name in enumerate(names):
        for position in range(seq):
            resid = source_cache[name][:, position]
            expected = hooked_logits(model, clean, name, position, resid)[:, read_positions]
            got = circuits.logits_with_residual_patch(model, clean_cache, point, position, resid, read_positions)
            assert got.shape == expected.shape
            torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4, msg=f"{name}, position {position}")
            if position in read_positions:  # the patched position's own logits move (the patch is not a no-op)
                column = read_positions.index(position)
                assert not torch.allclose(got[:, column], clean_logits[:, position], atol=1e-3)


@pytest.fixture(scope="module", autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("name, seq", [("array-2l1h", 11), ("toy-gpt", 7)])
def test_zoo_models_match_hooked_runs(name: str, seq: int) -> None:
    """array-2l1h: shortformer positions, no LayerNorm, attention only; toy-gpt: standard positions, LN, MLPs."""
    model = load_model(name)
    assert_matches_hooked_runs(model, seq, read_positions=[seq - 2, 1, seq - 4, seq - 3], seed=0)


@pytest.mark.parametrize("positions, normalization, attn_only", [
    ("shortformer", "LN", False),
    ("shortformer", "LNPre", True),
    ("standard", "LNPre", False),
    ("standard", None, True),
])
def test_random_models_match_hooked_runs(positions: str, normalization: str | None, attn_only: bool) -> None:
    model = random_model(positions, normalization, attn_only, seed=7)
    assert_matches_hooked_runs(model, 12, read_positions=[11, 4, 8], seed=1)


def test_patching_the_clean_residual_stream_changes_nothing() -> None:
    model = load_model("array-2l1h")
    tokens = torch.randint(model.cfg.d_vocab, (4, model.cfg.n_ctx), generator=torch.Generator().manual_seed(3))
    logits, cache = circuits.run_for_residual_patching(model, tokens)
    for point, name in enumerate(circuits.residual_patching_names(model)[: model.cfg.n_layers + 1]):
        got = circuits.logits_with_residual_patch(model, cache, point, 2, cache[name][:, 2], [7, 8, 9])
        torch.testing.assert_close(got, logits[:, [7, 8, 9]], atol=1e-5, rtol=1e-5)


def test_unsupported_models_raise() -> None:
    cfg = HookedTransformerConfig(n_layers=1, n_heads=1, d_model=8, d_head=8, d_vocab=10, n_ctx=4, attn_only=True,
                                  positional_embedding_type="rotary", rotary_dim=8, act_fn="relu")
    model = HookedTransformer(cfg)
    tokens = torch.zeros(1, 4, dtype=torch.long)
    _, cache = circuits.run_for_residual_patching(model, tokens)
    with pytest.raises(NotImplementedError):
        circuits.logits_with_residual_patch(model, cache, 0, 1, cache["resid_pre", 0][:, 1], [3])
