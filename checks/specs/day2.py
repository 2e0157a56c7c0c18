"""Checks of day 2 (reverse-engineering the induction circuit from the weights, on `induction-2l`).

Every check has several input cases; between them every dimension an exercise reads changes (layers, heads, batch,
lengths, k, seeds) and, where an exercise is model-generic, the model too: `array-2l1h` (one head per layer, d_head
128, n_ctx 11, 52 tokens in and 50 out) and `toy-gpt` (4 layers, 296 tokens). Inputs are built with plain
torch/TransformerLens calls on the zoo models and seeded data, never with solution code.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

import torch

from checks.spec import Check, GradingEnv, Mistake, Raises
from checks.specs.common import (ARRAY_2L1H, INDUCTION_2L, TOY_GPT, InputBuilder, array_indexing_batch, repeated_batch,
                                 story_batch)

if TYPE_CHECKING:  # imported where inputs are built: the grading supervisor never imports transformer_lens
    from transformer_lens import FactoredMatrix, HookedTransformer

DAY = 2
MODULE = "day2_induction_circuit"
MODEL = INDUCTION_2L


# ---- data -------------------------------------------------------------------------------------------------------------
def _arrays(env: GradingEnv, batch: int, seed: int) -> torch.Tensor:
    return array_indexing_batch(batch, env.generator(seed)).to(env.device)


def _cache(model: HookedTransformer, tokens: torch.Tensor):
    with torch.no_grad():
        return model.run_with_cache(tokens)[1]


def _randn(env: GradingEnv, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=env.generator(seed)).to(env.device)


# ---- circuit_summary --------------------------------------------------------------------------------------------------
class _WatchedFactor(torch.Tensor):
    """A factor of a `_watched` FactoredMatrix. Any torch operation that takes both factors and returns a tensor of the
    full product's shape (A @ B, torch.matmul, einsum, ...) is noted on the matrix. Results are plain tensors."""

    owner: "_MaterialisationWatching"

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN206
        kwargs = kwargs or {}
        with torch._C.DisableTorchFunctionSubclass():
            result = func(*args, **kwargs)
        factors = [arg for arg in (*args, *kwargs.values()) if isinstance(arg, _WatchedFactor)]
        if len({id(factor) for factor in factors}) >= 2 and isinstance(result, torch.Tensor):
            owner = factors[0].owner
            if result.ndim >= 2 and tuple(result.shape[-2:]) == (owner.ldim, owner.rdim):
                owner.materialised = True
        return result


class _MaterialisationWatching:
    """Over FactoredMatrix (`_watched_factored_matrix()`): records whether the full product was materialised
    (`.AB`, or A @ B by hand)."""

    materialised: bool = False

    @property
    def AB(self) -> torch.Tensor:  # noqa: N802 (TransformerLens's name)
        self.materialised = True
        return super().AB


@functools.cache
def _watched_factored_matrix() -> type:
    from transformer_lens import FactoredMatrix

    return type("_WatchedFactoredMatrix", (_MaterialisationWatching, FactoredMatrix),
                {"__doc__": _MaterialisationWatching.__doc__})


def _watched(A: torch.Tensor, B: torch.Tensor) -> FactoredMatrix:
    matrix = _watched_factored_matrix()(A.detach().clone(), B.detach().clone())
    for name in ("A", "B"):
        factor = getattr(matrix, name).as_subclass(_WatchedFactor)
        factor.owner = matrix
        setattr(matrix, name, factor)
    return matrix


def _summary_case(model_name: str, factors: Callable[[HookedTransformer], tuple[torch.Tensor, torch.Tensor]],
                  k: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"circuit": _watched(*factors(env.model(model_name))), "k": k}

    return inputs


def _not_materialised(output: Any, inputs: dict[str, Any]) -> str | None:
    if inputs["circuit"].materialised:
        return ("circuit_summary gives the right numbers, but it multiplied out the full matrix (circuit.AB, or "
                "circuit.A @ circuit.B), which a matrix of a real model's vocabulary squared cannot afford. Each of "
                "the three numbers needs only small pieces of the factors: the hints say which (hint=2).")
    return None


# ---- other inputs -----------------------------------------------------------------------------------------------------
def _head_case(model_name: str, layer: int, head: int, **extra: Any) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"model": env.model(model_name), "layer": layer, "head": head, **extra}

    return inputs


def _model_case(model_name: str) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"model": env.model(model_name)}

    return inputs


def _copying_case(model_name: str, layer: int | None, k: int) -> InputBuilder:
    """Full OV circuits of every head of the model (layer None) or of one layer, built with plain matrix products."""

    def inputs(env: GradingEnv) -> dict[str, Any]:
        model = env.model(model_name)
        with torch.no_grad():
            w_v, w_o = (model.W_V, model.W_O) if layer is None else (model.W_V[layer], model.W_O[layer])
            circuits = model.W_E @ w_v @ w_o @ model.W_U
        return {"circuits": circuits, "k": k}

    return inputs


def _random_copying_case(env: GradingEnv) -> dict[str, Any]:
    size = 60
    circuits = _randn(env, (size, size), 201) + 1.5 * torch.eye(size, device=env.device)
    return {"circuits": circuits, "k": 10}


def _pattern_case(model_name: str, tokens: Callable[[GradingEnv], torch.Tensor], layer: int,
                  select: Callable[[torch.Tensor], torch.Tensor] = lambda pattern: pattern) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        cache = _cache(env.model(model_name), tokens(env))
        return {"patterns": select(cache["pattern", layer]).clone()}

    return inputs


def _decomposition_case(model_name: str, tokens: Callable[[GradingEnv], torch.Tensor], layer: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model = env.model(model_name)
        return {"model": model, "cache": _cache(model, tokens(env)), "layer": layer}

    return inputs


def _real_sources(env: GradingEnv) -> dict[str, Any]:
    """The sources of layer 1's query/key input of induction-2l, stacked with plain cache lookups."""
    model = env.model(INDUCTION_2L)
    cache = _cache(model, repeated_batch(env, INDUCTION_2L, 3, 10, 206))
    with torch.no_grad():
        heads = torch.einsum("bphd,hdm->hbpm", cache["z", 0], model.W_O[0])
        bias = model.b_O[0].expand_as(cache["embed"])
        sources = torch.cat([cache["embed"][None], heads, bias[None], cache["pos_embed"][None]])
    return {"sources": sources, "model": model, "layer": 1, "head": 0}


def _random_sources(model_name: str, n_sources: int, batch: int, pos: int, layer: int, head: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        model = env.model(model_name)
        return {"sources": _randn(env, (n_sources, batch, pos, model.cfg.d_model), seed), "model": model,
                "layer": layer, "head": head}

    return inputs


def _real_terms(env: GradingEnv) -> dict[str, Any]:
    """Queries and keys of L1H0 split into (input, bias) terms, from a cache of repeated tokens."""
    model = env.model(INDUCTION_2L)
    cache = _cache(model, repeated_batch(env, INDUCTION_2L, 2, 9, 208))
    with torch.no_grad():
        attention_input = cache["resid_pre", 1] + cache["pos_embed"]
        queries = torch.stack([attention_input @ model.W_Q[1, 0], model.b_Q[1, 0].expand(2, 19, -1)])
        keys = torch.stack([attention_input @ model.W_K[1, 0], model.b_K[1, 0].expand(2, 19, -1)])
    return {"queries": queries, "keys": keys}


def _random_terms(q_terms: int, k_terms: int, batch: int, pos: int, d_head: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"queries": _randn(env, (q_terms, batch, pos, d_head), seed),
                "keys": _randn(env, (k_terms, batch, pos, d_head), seed + 1)}

    return inputs


def _k_composition_case(model_name: str, prev_layer: int, prev_head: int, layer: int, head: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"model": env.model(model_name), "prev_layer": prev_layer, "prev_head": prev_head, "layer": layer,
                "head": head}

    return inputs


def _model_composition_case(env: GradingEnv) -> dict[str, Any]:
    """OV circuits of induction-2l's layer-0 heads against the transposed QK circuits of its layer-1 heads."""
    model = env.model(INDUCTION_2L)
    with torch.no_grad():
        left = model.W_V[0] @ model.W_O[0]
        right = (model.W_Q[1] @ model.W_K[1].transpose(-1, -2)).transpose(-1, -2)
    return {"left": left, "right": right}


def _random_composition_case(n_left: int, n_right: int, size: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"left": _randn(env, (n_left, size, size), seed), "right": _randn(env, (n_right, size, size), seed + 1)}

    return inputs


def _baseline_case(d_model: int, d_head: int, n_samples: int, seed: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"d_model": d_model, "d_head": d_head, "n_samples": n_samples, "generator": env.generator(seed)}

    return inputs


def _prediction_case(model_name: str, tokens: Callable[[GradingEnv], torch.Tensor], prev_layer: int, prev_head: int,
                     layer: int, head: int) -> InputBuilder:
    def inputs(env: GradingEnv) -> dict[str, Any]:
        return {"model": env.model(model_name), "tokens": tokens(env), "prev_layer": prev_layer,
                "prev_head": prev_head, "layer": layer, "head": head}

    return inputs


def _agreement_case(env: GradingEnv) -> dict[str, Any]:
    """L1H0's real pattern on repeated tokens against a noisy copy of it (they agree on most, not all, queries)."""
    cache = _cache(env.model(INDUCTION_2L), repeated_batch(env, INDUCTION_2L, 4, 10, 212))
    actual = cache["pattern", 1][:, 0].clone()
    noise = 2.0 * _randn(env, tuple(actual.shape), 213)
    predicted = (actual.clamp_min(1e-9).log() + noise).softmax(dim=-1)
    return {"predicted": predicted, "actual": actual, "first_query": 11}


def _array_agreement_case(env: GradingEnv) -> dict[str, Any]:
    """array-2l1h's layer-0 pattern against its layer-1 pattern, from query 3 on."""
    cache = _cache(env.model(ARRAY_2L1H), _arrays(env, 6, 214))
    return {"predicted": cache["pattern", 0][:, 0].clone(), "actual": cache["pattern", 1][:, 0].clone(),
            "first_query": 3}


# ---- cases on which a docstring promises a ValueError ----------------------------------------------------------------
def _random_tokens(model_name: str, batch: int, length: int, seed: int) -> Callable[[GradingEnv], torch.Tensor]:
    def tokens(env: GradingEnv) -> torch.Tensor:
        d_vocab = env.model(model_name).cfg.d_vocab
        return torch.randint(0, d_vocab, (batch, length), generator=env.generator(seed)).to(env.device)

    return tokens


def _non_square_circuit(env: GradingEnv) -> dict[str, Any]:
    return {"circuits": _randn(env, (3, 5, 7), 230), "k": 2}


def _patterns_of_other_shapes(env: GradingEnv) -> dict[str, Any]:
    return {"predicted": _randn(env, (2, 6, 6), 231).softmax(-1), "actual": _randn(env, (2, 7, 7), 232).softmax(-1),
            "first_query": 1}


def _no_query_after_first_query(env: GradingEnv) -> dict[str, Any]:
    patterns = _randn(env, (2, 6, 6), 233).softmax(-1)
    return {"predicted": patterns, "actual": patterns.flip(-1).softmax(-1), "first_query": 6}


# ---- the mistakes the grader names: what each returns is solutions/oracles/day2.py's, stored with the references -----
_POSITIONAL_BY_D_HEAD = ("This is the positional pattern with the scores divided by d_head: the model divides them by "
                         "the square root of d_head.")
_POSITIONAL_WITHOUT_BIASES = ("This is the positional pattern without the query and key biases: the head adds them to "
                              "every query and key, so they belong to what positions alone produce.")


_PREVIOUS_OVER_N = ("This divides the previous-position attention by the number of positions n: query 0 has no "
                    "previous position, so the mean is over the n - 1 queries that have one.")


_COPYING_BY_COLUMNS = ("This asks, for each column (output token), whether its diagonal entry is among the column's k "
                       "largest: the contract asks it of each row (the attended token) among that row's entries.")


_EIGEN_ABS_OF_SUM = ("This is the size of the eigenvalues' sum over the sum of their sizes: the score keeps the sum's "
                     "real part, so that negative eigenvalues (anti-copying) count against the head.")


_COMPOSITION_REVERSED = ("This multiplies each pair the other way round (right before left): the earlier head's output "
                         "is what the later head reads, so the product is left[i] then right[j].")


_K_ON_QUERY_SIDE = ("This sends the token through the earlier head's OV circuit on the query side: that is "
                    "Q-composition. In K-composition the earlier head writes into the *key* position's stream.")
_K_BY_D_HEAD = "This divides the scores by d_head: the model divides them by the square root of d_head."


_AGREEMENT_ONE_LATE = ("This counts the queries from first_query + 1 on: the query at first_query itself counts (every "
                       "query at or after it).")
_AGREEMENT_ONE_EARLY = "This counts the queries from first_query - 1 on: the first query that counts is first_query."


CHECKS = [
    Check(
        "circuit_summary",
        {
            "OV circuit of induction-2l L1H0, k 3": _summary_case(
                INDUCTION_2L, lambda m: (m.W_V[1, 0], m.W_O[1, 0]), 3),
            "QK circuits of induction-2l layer 0, batched over heads, k 5": _summary_case(
                INDUCTION_2L, lambda m: (m.W_Q[0], m.W_K[0].transpose(-1, -2)), 5),
            "embedding x unembedding of array-2l1h (52 x 50), k 4": _summary_case(
                ARRAY_2L1H, lambda m: (m.W_E, m.W_U), 4),
            "k 0 (ValueError)": Raises(ValueError, _summary_case(
                INDUCTION_2L, lambda m: (m.W_V[1, 0], m.W_O[1, 0]), 0)),
            "k 51 > rdim 50 (ValueError)": Raises(ValueError, _summary_case(
                ARRAY_2L1H, lambda m: (m.W_E, m.W_U), 51)),
        },
        validate=_not_materialised,
        hints=(
            "A factored matrix never builds its product: which of its properties give a norm, singular values and a "
            "corner without it?",
            "Use the factored matrix's own norm and singular values, and multiply only the first k rows of its left "
            "factor by the first k columns of its right factor.",
            "The Frobenius norm is circuit.norm() (sqrt of the sum of squared singular values, over the last dim "
            "only); circuit.S[..., :k] are the k largest singular values; the corner is circuit.A[..., :k, :] @ "
            "circuit.B[..., :, :k] (rows of A, columns of B)."),
    ),
    Check(
        "head_full_ov_circuit",
        {
            "induction-2l L1H0": _head_case(INDUCTION_2L, 1, 0),
            "induction-2l L0H3": _head_case(INDUCTION_2L, 0, 3),
            "array-2l1h L1H0 (52 tokens in, 50 out)": _head_case(ARRAY_2L1H, 1, 0),
        },
        hints=(
            "Follow a token from the embedding through one head's value and output weights to the logits: which "
            "matrices does it pass?",
            "Multiply the embedding, the head's value and output weights and the unembedding, in that order, without "
            "biases.",
            "Multiply in this order: W_E @ W_V[layer, head] @ W_O[layer, head] @ W_U, giving [d_vocab, d_vocab_out] "
            "(row: attended token, column: output logit); no biases."),
    ),
    Check(
        "top_k_copying_accuracy",
        {
            "all 8 heads of induction-2l, k 1": _copying_case(INDUCTION_2L, None, 1),
            "layer 2 of toy-gpt (296 tokens), k 5": _copying_case(TOY_GPT, 2, 5),
            "one random 60 x 60 matrix, no batch dims, k 10": _random_copying_case,
            "3 matrices of 5 x 7 (ValueError)": Raises(ValueError, _non_square_circuit),
            "k 0 (ValueError)": Raises(ValueError, _copying_case(INDUCTION_2L, 1, 0)),
            "k 194 > 193 tokens (ValueError)": Raises(ValueError, _copying_case(INDUCTION_2L, 1, 194)),
        },
        hints=(
            "When does a matrix copy token t: what must be true of row t's diagonal entry?",
            "For every row, find its k largest columns and test whether the row's own token is among them; average "
            "that test over rows, per matrix.",
            "For each row t, take topk(k, dim=-1) over the columns (output tokens) and test whether t is among the "
            "indices; average over rows (dim -1 after the test), keeping every leading batch dimension."),
        mistakes=(Mistake(_COPYING_BY_COLUMNS, "copying_by_columns"),),
    ),
    Check(
        "eigenvalue_copying_scores",
        {
            "induction-2l (2 layers x 4 heads, 193 tokens)": _model_case(INDUCTION_2L),
            "toy-gpt (4 layers x 4 heads, 296 tokens)": _model_case(TOY_GPT),
            "array-2l1h: 52 tokens in, 50 out (ValueError)": Raises(ValueError, _model_case(ARRAY_2L1H)),
        },
        hints=(
            "What do positive eigenvalues of an OV circuit say about copying, and how can you get them without a "
            "vocabulary-sized matrix?",
            "Build every head's full OV circuit as one factored matrix, take its eigenvalues, and divide the real "
            "part of their sum by the sum of their magnitudes.",
            "FactoredMatrix(W_E @ W_V, W_O @ W_U) holds every head's full OV circuit ([layer, head, d_vocab, "
            "d_vocab]); with ev = its .eigenvalues, return ev.sum(-1).real / ev.abs().sum(-1), shape [n_layers, "
            "n_heads]."),
        mistakes=(Mistake(_EIGEN_ABS_OF_SUM, "eigenvalue_abs_of_sum"),),
    ),
    Check(
        "positional_attention",
        {
            "induction-2l L0H0, 30 positions": _head_case(INDUCTION_2L, 0, 0, n_positions=30),
            "induction-2l L1H3, 17 positions": _head_case(INDUCTION_2L, 1, 3, n_positions=17),
            "array-2l1h L1H0, all 11 positions": _head_case(ARRAY_2L1H, 1, 0, n_positions=11),
            "toy-gpt, standard positions (ValueError)": Raises(ValueError, _head_case(TOY_GPT, 0, 0, n_positions=5)),
            "array-2l1h, 12 positions > n_ctx 11 (ValueError)": Raises(ValueError, _head_case(ARRAY_2L1H, 0, 0,
                                                                                                   n_positions=12)),
            "induction-2l, 0 positions (ValueError)": Raises(ValueError, _head_case(INDUCTION_2L, 0, 0, n_positions=0)),
        },
        hints=(
            "If the residual stream held only the position embedding, what would a head's queries and keys be?",
            "Turn the first n position embeddings into queries and keys with the head's weights and biases, score "
            "every pair, mask the future and normalise over keys.",
            "queries = W_pos[:n] @ W_Q[layer, head] + b_Q[layer, head] (keys likewise with W_K, b_K); scores = "
            "queries @ keys.T / sqrt(d_head); mask keys after the query with -inf; softmax over keys (the last dim)."),
        mistakes=(Mistake(_POSITIONAL_BY_D_HEAD, "positional_by_d_head"),
                  Mistake(_POSITIONAL_WITHOUT_BIASES, "positional_without_biases")),
    ),
    Check(
        "previous_position_score",
        {
            "induction-2l layer 0 on 3 stories of 40 tokens": _pattern_case(
                INDUCTION_2L, lambda env: story_batch(env, 3, 40, 202), 0),
            "array-2l1h layer 1 on 5 examples of 11 tokens": _pattern_case(
                ARRAY_2L1H, lambda env: _arrays(env, 5, 203), 1),
            "one pattern, no batch dims (induction-2l L1H2)": _pattern_case(
                INDUCTION_2L, lambda env: repeated_batch(env, INDUCTION_2L, 1, 9, 204), 1,
                select=lambda pattern: pattern[0, 2]),
        },
        hints=(
            "Which entries of a pattern say 'attend to the previous position', and how many are there?",
            "Average the diagonal just below the main one over its query positions, keeping every leading batch "
            "dimension.",
            "The previous-position entries [q, q - 1] are diagonal(offset=-1, dim1=-2, dim2=-1); it has n - 1 entries"
            " (queries 1..n-1): take their mean, keeping the leading dims."),
        mistakes=(Mistake(_PREVIOUS_OVER_N, "previous_over_all_queries"),),
    ),
    Check(
        "decompose_attention_input",
        {
            "induction-2l layer 1, 3 repeated sequences of 21": _decomposition_case(
                INDUCTION_2L, lambda env: repeated_batch(env, INDUCTION_2L, 3, 10, 205), 1),
            "array-2l1h layer 1, 4 examples": _decomposition_case(ARRAY_2L1H, lambda env: _arrays(env, 4, 215), 1),
            "induction-2l layer 0, 2 stories of 15": _decomposition_case(
                INDUCTION_2L, lambda env: story_batch(env, 2, 15, 216), 0),
            "toy-gpt: MLPs, LayerNorm, standard positions (ValueError)": Raises(ValueError, _decomposition_case(
                TOY_GPT, _random_tokens(TOY_GPT, 2, 8, 240), 1)),
        },
        hints=(
            "What writes into the residual stream before a given layer, and what does the layer read besides it?",
            "List the embedding, every earlier head's output, the summed output biases and the position embedding, in"
            " that order; they must add up to the layer's input.",
            "Order: [embed, L0H0, L0H1, ..., (every head of every earlier layer, z @ W_O), the sum of b_O over the "
            "earlier layers (zeros for layer 0), pos_embed]; their sum must equal resid_pre[layer] + pos_embed."),
    ),
    Check(
        "decompose_queries_keys",
        {
            "induction-2l L1H0, its real 7 sources": _real_sources,
            "induction-2l L0H2, 4 random sources": _random_sources(INDUCTION_2L, 4, 2, 9, 0, 2, 207),
            "array-2l1h L1H0 (d_head 128), 3 random sources": _random_sources(ARRAY_2L1H, 3, 5, 11, 1, 0, 217),
        },
        hints=(
            "A query is linear in its input: how does a sum of sources become a sum of query terms, and where does "
            "the bias go?",
            "Push every source through the head's query weights (and key weights), then add one last term holding the"
            " bias alone.",
            "Term i is sources[i] @ W_Q[layer, head] (no bias), and one extra last term holds b_Q[layer, head] at "
            "every position, so that the terms sum to the real queries; the same for keys with W_K and b_K."),
    ),
    Check(
        "decompose_attention_scores",
        {
            "L1H0 input and bias terms of induction-2l": _real_terms,
            "5 query terms x 3 key terms, d_head 32": _random_terms(5, 3, 2, 13, 32, 209),
            "4 x 4 terms, batch 3, d_head 128": _random_terms(4, 4, 3, 8, 128, 219),
        },
        hints=(
            "If queries and keys are sums of terms, what is their dot product a sum of?",
            "Score every query term against every key term in one product, scaled like real attention scores, with no"
            " mask.",
            "Use one einsum 'ibqd,jbkd->ijbqk' (query term i, key term j, batch, query pos, key pos) divided by "
            "sqrt(d_head), with no causal mask."),
    ),
    Check(
        "k_composition_circuit",
        {
            "induction-2l L0H0 -> L1H0": _k_composition_case(INDUCTION_2L, 0, 0, 1, 0),
            "induction-2l L0H2 -> L1H3": _k_composition_case(INDUCTION_2L, 0, 2, 1, 3),
            "array-2l1h L0H0 -> L1H0": _k_composition_case(ARRAY_2L1H, 0, 0, 1, 0),
            "toy-gpt L1H2 -> L3H1 (296 tokens)": _k_composition_case(TOY_GPT, 1, 2, 3, 1),
        },
        hints=(
            "In K-composition, which side of the attention score does the earlier head's output feed: queries or "
            "keys?",
            "Put the plain token embedding on the query side, and on the key side the token moved through the earlier"
            " head's OV circuit, then score every pair.",
            "Rows are query tokens: (W_E @ W_Q[layer, head]) @ (W_E @ W_V[prev] @ W_O[prev] @ W_K[layer, head]).T / "
            "sqrt(d_head); the earlier head's OV circuit sits on the key side."),
        mistakes=(Mistake(_K_ON_QUERY_SIDE, "k_on_query_side"),
                  Mistake(_K_BY_D_HEAD, "k_by_d_head")),
    ),
    Check(
        "composition_scores",
        {
            "induction-2l layer-0 OV x layer-1 QK.T": _model_composition_case,
            "3 x 5 random 24 x 24 matrices": _random_composition_case(3, 5, 24, 210),
        },
        hints=(
            "How do you measure how much one matrix's output lands in another's input, independent of their sizes, "
            "and what would a batch of all pairwise products cost on a model with a hundred heads?",
            "For every pair, the Frobenius norm of the product (left matrix first) over the product of the two "
            "matrices' own norms. The squared Frobenius norm of a product is a trace; regroup it so that each matrix "
            "meets only itself first (one Gram matrix per head), then combine the Gram matrices of every pair.",
            "||L R||_F^2 = trace(R.T L.T L R) = sum over a, b of (L.T @ L)[a, b] * (R @ R.T)[a, b]: compute "
            "left.transpose(-1, -2) @ left and right @ right.transpose(-1, -2), combine them with einsum "
            "'iab,jab->ij', take the square root and divide by the outer product of the Frobenius norms."),
        mistakes=(Mistake(_COMPOSITION_REVERSED, "composition_reversed"),),
    ),
    Check(
        "random_composition_baseline",
        {
            "d_model 128, d_head 32, 40 samples, seed 211": _baseline_case(128, 32, 40, 211),
            "d_model 40, d_head 6, 25 samples, seed 221": _baseline_case(40, 6, 25, 221),
            "d_model 8, d_head 2, 3 samples, seed 231": _baseline_case(8, 2, 3, 231),
        },
        # A mean of random scores is close for any draws: only the exact draws of `generator` are within these.
        atol=1e-7,
        rtol=1e-5,
        exact_types=True, hints=(
            "What score would two unrelated heads get by chance, and what does a fair random draw of such heads need?",
            "Draw four random low-rank factors from the generator in the documented order, form pairs of products and"
            " score only matching pairs; average the scores.",
            "Draw A1, A2, B1, B2 in that order with torch.randn(shape, generator=generator) (A1 [n, d_model, d_head],"
            " A2 [n, d_head, d_model], ...); score the pairs (A1[i] @ A2[i], B1[i] @ B2[i]) only, and average."),
    ),
    Check(
        "predicted_induction_pattern",
        {
            "induction-2l L0H0 -> L1H0, 3 repeated sequences of 25": _prediction_case(
                INDUCTION_2L, lambda env: repeated_batch(env, INDUCTION_2L, 3, 12, 222), 0, 0, 1, 0),
            "induction-2l L0H1 -> L1H2, 2 repeated sequences of 15": _prediction_case(
                INDUCTION_2L, lambda env: repeated_batch(env, INDUCTION_2L, 2, 7, 223), 0, 1, 1, 2),
            "array-2l1h L0H0 -> L1H0, 4 examples": _prediction_case(
                ARRAY_2L1H, lambda env: _arrays(env, 4, 224), 0, 0, 1, 0),
            "induction-2l L1H3 -> L1H1 (any pair of heads), 2 sequences of 11": _prediction_case(
                INDUCTION_2L, lambda env: repeated_batch(env, INDUCTION_2L, 2, 5, 225), 1, 3, 1, 1),
            "toy-gpt, standard positions (ValueError)": Raises(ValueError, _prediction_case(
                TOY_GPT, _random_tokens(TOY_GPT, 2, 8, 241), 0, 0, 1, 0)),
            "array-2l1h, 12 tokens > n_ctx 11 (ValueError)": Raises(ValueError, _prediction_case(
                ARRAY_2L1H, _random_tokens(ARRAY_2L1H, 2, 12, 242), 0, 0, 1, 0)),
        },
        hints=(
            "Combine a previous-token head's positional pattern with an induction head's weights: which token does "
            "each key end up carrying?",
            "Move the token embeddings by the earlier head's positional pattern, send them through its OV and the "
            "induction head's keys, score against plain token queries, mask and normalise.",
            "moved = positional pattern of the earlier head [key, source] applied to W_E[tokens] (einsum "
            "'kj,bjm->bkm'); keys = moved @ W_V[prev] @ W_O[prev] @ W_K[layer, head]; queries = W_E[tokens] @ "
            "W_Q[layer, head]; scale by 1/sqrt(d_head), mask the future, softmax over keys."),
    ),
    Check(
        "argmax_agreement",
        {
            "L1H0 of induction-2l vs a noisy copy, from query 11": _agreement_case,
            "array-2l1h layer 0 vs layer 1, from query 3": _array_agreement_case,
            "patterns of 6 and 7 positions (ValueError)": Raises(ValueError, _patterns_of_other_shapes),
            "first_query 6 of 6 positions (ValueError)": Raises(ValueError, _no_query_after_first_query),
        },
        exact_types=True, hints=(
            "How do you tell whether two attention patterns pick the same key, and which queries count?",
            "Find the most attended key of each query in both patterns, keep queries from the first counted one on, "
            "and average the agreements into a plain number.",
            "Take argmax over keys (the last dim) of both patterns, keep queries first_query.. only (dim 1), and "
            "average the matches over batch and queries into a Python float."),
        mistakes=(Mistake(_AGREEMENT_ONE_LATE, "agreement_one_late"),
                  Mistake(_AGREEMENT_ONE_EARLY, "agreement_one_early")),
    ),
]
