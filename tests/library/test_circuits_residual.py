"""`circuits.logits_with_residual_patch` (Day 4's residual patching) gives the logits of a plain hooked forward pass."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from curriculum.library import circuits
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


FLOAT32_EPS = torch.finfo(torch.float32).eps


def assert_float32_close(got: torch.Tensor, plain32: torch.Tensor, plain64: torch.Tensor, what: str) -> None:
    """`got` (a float32 computation) equals the float64 result `plain64` up to float32 rounding at this computation:
    the error of the plain float32 run `plain32` against float64 (which grows with the depth and the magnitudes
    inside the model, not only the outputs') times 8, plus 64 float32 ulps of the largest output. A wrong patch is
    off by the size of the logits, far beyond it; the message gives the sizes."""
    assert got.shape == plain64.shape, f"{what}: shape {tuple(got.shape)}, expected {tuple(plain64.shape)}"
    scale = plain64.abs().max().item()
    own_error = (plain32.double() - plain64).abs().max().item()
    tolerance = 8 * own_error + 64 * FLOAT32_EPS * scale
    error = (got.double() - plain64).abs()
    worst = error.max().item()
    assert worst <= tolerance, (
        f"{what}: max abs error {worst:.3g} against float64 at index {largest_index(error)}, "
        f"over the tolerance {tolerance:.3g} (the plain float32 run is off by {own_error:.3g}; outputs up to "
        f"{scale:.3g})")


def largest_index(values: torch.Tensor) -> tuple[int, ...]:
    """The index of the largest element of `values`."""
    return tuple(int(i) for i in torch.unravel_index(values.argmax(), values.shape))


def float64_copy(model: HookedTransformer) -> HookedTransformer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return copy.deepcopy(model).to(torch.float64)


def assert_matches_hooked_runs(model: HookedTransformer, seq: int, read_positions: list[int], seed: int) -> None:
    model64 = float64_copy(model)
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
            expected64 = hooked_logits(model64, clean, name, position, resid.double())[:, read_positions]
            got = circuits.logits_with_residual_patch(model, clean_cache, point, position, resid, read_positions)
            assert got.dtype == expected.dtype
            assert_float32_close(got, expected, expected64, f"{name}, position {position}")
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
    logits64 = float64_copy(model)(tokens)
    for point, name in enumerate(circuits.residual_patching_names(model)[: model.cfg.n_layers + 1]):
        got = circuits.logits_with_residual_patch(model, cache, point, 2, cache[name][:, 2], [7, 8, 9])
        assert_float32_close(got, logits[:, [7, 8, 9]], logits64[:, [7, 8, 9]], f"{name}, position 2")


def test_unsupported_models_raise() -> None:
    cfg = HookedTransformerConfig(n_layers=1, n_heads=1, d_model=8, d_head=8, d_vocab=10, n_ctx=4, attn_only=True,
                                  positional_embedding_type="rotary", rotary_dim=8, act_fn="relu")
    model = HookedTransformer(cfg)
    tokens = torch.zeros(1, 4, dtype=torch.long)
    _, cache = circuits.run_for_residual_patching(model, tokens)
    with pytest.raises(NotImplementedError):
        circuits.logits_with_residual_patch(model, cache, 0, 1, cache["resid_pre", 0][:, 1], [3])
