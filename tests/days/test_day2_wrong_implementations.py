"""Day 2 grading rejects plausible wrong answers with a message that points at the mistake, and accepts correct
answers written differently from the reference solution.

Each wrong implementation is a mistake of one kind: a numeric slip (a missing scale, a wrong sign or order), a
hard-coded value (a layer, head, k or size from the notebook's story), a broken contract (wrong type or dtype), or a
wrong axis or position. Grading must say "failed" and the message must contain the given phrase (from the comparison
engine's diagnosis, the check's hint or its validator); wrong values must miss by a margin (error over tolerance) of
at least 10. Every correct alternative must pass every case with a margin of at most 0.1.
"""

from __future__ import annotations

import functools
import inspect

import pytest
import torch
from transformer_lens import FactoredMatrix

from margins import CORRECT_MARGIN, all_hints, case_margin, grade, is_clear_rejection, margins

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---- the ValueErrors the docstrings promise, written once for the correct alternatives ------------------------------------
def _invalid(*, circuit=None, k=None, circuits=None, model=None, n_positions=None, cache=None, tokens=None,
             predicted=None, actual=None, first_query=None, exercise=""):
    """The documented argument checks, independent of the solutions: the first that fails, as a message, or None."""
    cfg = model.cfg if model is not None else None
    shortformer = cfg is not None and cfg.positional_embedding_type == "shortformer"
    if exercise == "circuit_summary" and not 1 <= k <= min(circuit.ldim, circuit.rdim, circuit.mdim):
        return f"k {k} out of range"
    if exercise == "top_k_copying_accuracy" and (circuits.shape[-1] != circuits.shape[-2]
                                                 or not 1 <= k <= circuits.shape[-1]):
        return "not square, or k out of range"
    if exercise == "eigenvalue_copying_scores" and cfg.d_vocab != cfg.d_vocab_out:
        return "the OV circuit is not square"
    if exercise == "positional_attention" and (not shortformer or not 1 <= n_positions <= cfg.n_ctx):
        return "positions not shortformer, or n_positions out of range"
    if exercise == "decompose_attention_input" and not (cfg.attn_only and cfg.normalization_type is None
                                                        and shortformer):
        return "not an attention-only shortformer model without normalisation"
    if exercise == "predicted_induction_pattern" and (not shortformer or tokens.shape[1] > cfg.n_ctx):
        return "positions not shortformer, or too many tokens"
    if exercise == "argmax_agreement" and (predicted.shape != actual.shape
                                           or not 0 <= first_query < predicted.shape[1]):
        return "patterns of different shapes, or no query at or after first_query"
    return None


def _raising_as_documented(exercise):
    """Wrap a correct alternative so that it raises the ValueError its docstring promises."""
    def wrap(function):
        @functools.wraps(function)
        def checked(*args, **kwargs):
            names = inspect.signature(function).bind(*args, **kwargs).arguments
            problem = _invalid(exercise=exercise, **{key: value for key, value in names.items()
                                                     if key in inspect.signature(_invalid).parameters})
            if problem:
                raise ValueError(problem)
            return function(*args, **kwargs)

        return checked

    return wrap


def _causal(scores: torch.Tensor) -> torch.Tensor:
    n = scores.shape[-1]
    future = torch.triu(torch.ones(n, n, dtype=torch.bool, device=scores.device), diagonal=1)
    return scores.masked_fill(future, float("-inf"))


# ---- circuit_summary --------------------------------------------------------------------------------------------------
def summary_by_materialising(circuit, k):
    full = circuit.AB
    return {"frobenius_norm": full.norm(dim=(-2, -1)), "singular_values": torch.linalg.svdvals(full)[..., :k],
            "corner": full[..., :k, :k]}


def summary_by_multiplying_the_factors(circuit, k):
    full = torch.einsum("...ij,...jk->...ik", circuit.A, circuit.B)
    return {"frobenius_norm": full.norm(dim=(-2, -1)), "singular_values": circuit.S[..., :k],
            "corner": full[..., :k, :k]}


def summary_with_smallest_singular_values(circuit, k):
    return {"frobenius_norm": circuit.norm(), "singular_values": circuit.S[..., -k:],
            "corner": circuit.A[..., :k, :] @ circuit.B[..., :, :k]}


def summary_with_transposed_corner(circuit, k):
    return {"frobenius_norm": circuit.norm(), "singular_values": circuit.S[..., :k],
            "corner": (circuit.A[..., :k, :] @ circuit.B[..., :, :k]).transpose(-1, -2)}


def summary_with_k_hard_coded(circuit, k):
    return {"frobenius_norm": circuit.norm(), "singular_values": circuit.S[..., :3],
            "corner": circuit.A[..., :3, :] @ circuit.B[..., :, :3]}


def summary_norm_over_the_whole_batch(circuit, k):
    return {"frobenius_norm": circuit.S.pow(2).sum().sqrt(), "singular_values": circuit.S[..., :k],
            "corner": circuit.A[..., :k, :] @ circuit.B[..., :, :k]}


@_raising_as_documented("circuit_summary")
def summary_from_gram_matrices(circuit, k):
    """Correct: ||AB||_F^2 = sum((A^T A) * (B B^T)); singular values of AB = those of R @ B with A = QR."""
    gram_a = circuit.A.transpose(-1, -2) @ circuit.A
    gram_b = circuit.B @ circuit.B.transpose(-1, -2)
    r = torch.linalg.qr(circuit.A).R
    return {"frobenius_norm": (gram_a * gram_b).sum(dim=(-2, -1)).sqrt(),
            "singular_values": torch.linalg.svdvals(r @ circuit.B)[..., :k], "corner": circuit.get_corner(k)}


@_raising_as_documented("circuit_summary")
def summary_from_the_svd(circuit, k):
    """Correct: U, S, V of the factored matrix, corner rebuilt from them (row- and column-sliced)."""
    u, s, v = circuit.svd()
    corner = (u[..., :k, :] * s[..., None, :]) @ v[..., :k, :].transpose(-1, -2)
    return {"frobenius_norm": s.norm(dim=-1), "singular_values": s[..., :k], "corner": corner}


# ---- head_full_ov_circuit ---------------------------------------------------------------------------------------------
def full_ov_transposed(model, layer, head):
    return (model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U).T


def full_ov_of_L1H0_always(model, layer, head):
    return model.W_E @ model.W_V[1, 0] @ model.W_O[1, 0] @ model.W_U


def full_ov_with_biases(model, layer, head):
    values = model.W_E @ model.W_V[layer, head] + model.b_V[layer, head]
    return (values @ model.W_O[layer, head] + model.b_O[layer]) @ model.W_U + model.b_U


def full_ov_as_numpy(model, layer, head):
    return (model.W_E @ model.W_V[layer, head] @ model.W_O[layer, head] @ model.W_U).detach().numpy()


def full_ov_through_the_keys(model, layer, head):
    return model.W_E @ model.W_K[layer, head] @ model.W_O[layer, head] @ model.W_U


def full_ov_right_to_left(model, layer, head):
    """Correct: the same product, associated the other way, in float64."""
    right = model.W_O[layer, head].double() @ model.W_U.double()
    return (model.W_E.double() @ (model.W_V[layer, head].double() @ right)).float()


def full_ov_by_einsum(model, layer, head):
    """Correct: one einsum over the four matrices."""
    return torch.einsum("tm,md,dn,nv->tv", model.W_E, model.W_V[layer, head], model.W_O[layer, head], model.W_U)


# ---- top_k_copying_accuracy -------------------------------------------------------------------------------------------
def copying_over_columns(circuits, k):
    top = circuits.topk(k, dim=-2).indices  # [..., k, column]
    columns = torch.arange(circuits.shape[-1])
    return (top == columns).any(dim=-2).float().mean(dim=-1)


def copying_with_argmax_only(circuits, k):
    return (circuits.argmax(dim=-1) == torch.arange(circuits.shape[-1])).float().mean(dim=-1)


def copying_counts(circuits, k):
    top = circuits.topk(k, dim=-1).indices
    return (top == torch.arange(circuits.shape[-1])[:, None]).any(dim=-1).float().sum(dim=-1)


def copying_as_integers(circuits, k):
    top = circuits.topk(k, dim=-1).indices
    return (top == torch.arange(circuits.shape[-1])[:, None]).any(dim=-1).sum(dim=-1) // circuits.shape[-1]


def copying_pooled_over_heads(circuits, k):
    top = circuits.topk(k, dim=-1).indices
    return (top == torch.arange(circuits.shape[-1])[:, None]).any(dim=-1).float().mean()


@_raising_as_documented("top_k_copying_accuracy")
def copying_by_rank(circuits, k):
    """Correct: the diagonal is in the top k when fewer than k entries of its row are larger."""
    diagonal = circuits.diagonal(dim1=-2, dim2=-1)[..., None]
    return ((circuits > diagonal).sum(dim=-1) < k).double().mean(dim=-1)


@_raising_as_documented("top_k_copying_accuracy")
def copying_by_sorting(circuits, k):
    """Correct: sort each row, compare the diagonal with the k-th largest value."""
    kth_largest = circuits.sort(dim=-1, descending=True).values[..., k - 1]
    return (circuits.diagonal(dim1=-2, dim2=-1) >= kth_largest).float().mean(dim=-1)


# ---- eigenvalue_copying_scores ----------------------------------------------------------------------------------------
def _full_ov_eigenvalues(model):
    return FactoredMatrix(model.W_E @ model.W_V, model.W_O @ model.W_U).eigenvalues


def eigenvalue_scores_with_the_size_of_the_sum(model):
    eigenvalues = _full_ov_eigenvalues(model)
    return eigenvalues.sum(dim=-1).abs() / eigenvalues.abs().sum(dim=-1)


def eigenvalue_scores_of_W_OV_alone(model):
    eigenvalues = FactoredMatrix(model.W_V, model.W_O).eigenvalues
    return eigenvalues.sum(dim=-1).real / eigenvalues.abs().sum(dim=-1)


def eigenvalue_scores_for_two_layers(model):
    scores = torch.zeros(2, model.cfg.n_heads)
    for layer in range(2):
        eigenvalues = FactoredMatrix(model.W_E @ model.W_V[layer], model.W_O[layer] @ model.W_U).eigenvalues
        scores[layer] = eigenvalues.sum(dim=-1).real / eigenvalues.abs().sum(dim=-1)
    return scores


def eigenvalue_scores_left_complex(model):
    eigenvalues = _full_ov_eigenvalues(model)
    return eigenvalues.sum(dim=-1) / eigenvalues.abs().sum(dim=-1)


def eigenvalue_scores_head_major(model):
    eigenvalues = _full_ov_eigenvalues(model)
    return (eigenvalues.sum(dim=-1).real / eigenvalues.abs().sum(dim=-1)).T


@_raising_as_documented("eigenvalue_copying_scores")
def eigenvalue_scores_from_the_small_matrix(model):
    """Correct: eigvals of (W_O W_U)(W_E W_V), the d_head x d_head product, in float64."""
    small = (model.W_O @ model.W_U).double() @ (model.W_E @ model.W_V).double()
    eigenvalues = torch.linalg.eigvals(small)
    return (eigenvalues.real.sum(dim=-1) / eigenvalues.abs().sum(dim=-1)).float()


@_raising_as_documented("eigenvalue_copying_scores")
def eigenvalue_scores_head_by_head(model):
    """Correct: one factored matrix per head, scores gathered in a loop."""
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            circuit = FactoredMatrix(model.W_E, model.W_V[layer, head]) @ model.W_O[layer, head] @ model.W_U
            eigenvalues = circuit.eigenvalues
            scores[layer, head] = eigenvalues.real.sum() / eigenvalues.abs().sum()
    return scores


# ---- positional_attention ---------------------------------------------------------------------------------------------
def _positional_scores(model, layer, head, n, biases=True, scale=True):
    queries = model.W_pos[:n] @ model.W_Q[layer, head] + (model.b_Q[layer, head] if biases else 0.0)
    keys = model.W_pos[:n] @ model.W_K[layer, head] + (model.b_K[layer, head] if biases else 0.0)
    return queries @ keys.T / (model.cfg.d_head**0.5 if scale else 1.0)


def positional_without_scale(model, layer, head, n_positions):
    return _causal(_positional_scores(model, layer, head, n_positions, scale=False)).softmax(-1)


def positional_divided_by_d_head(model, layer, head, n_positions):
    scores = _positional_scores(model, layer, head, n_positions, scale=False) / model.cfg.d_head
    return _causal(scores).softmax(-1)


def positional_without_biases(model, layer, head, n_positions):
    return _causal(_positional_scores(model, layer, head, n_positions, biases=False)).softmax(-1)


def positional_without_mask(model, layer, head, n_positions):
    return _positional_scores(model, layer, head, n_positions).softmax(-1)


def positional_softmax_over_queries(model, layer, head, n_positions):
    return _causal(_positional_scores(model, layer, head, n_positions)).softmax(-2)


def positional_over_the_whole_context(model, layer, head, n_positions):
    return _causal(_positional_scores(model, layer, head, model.cfg.n_ctx)).softmax(-1)


@_raising_as_documented("positional_attention")
def positional_with_a_factored_matrix(model, layer, head, n_positions):
    """Correct: the QK circuit as a FactoredMatrix between position embeddings, bias terms added by hand."""
    positions = model.W_pos[:n_positions]
    qk = FactoredMatrix(positions @ model.W_Q[layer, head], (positions @ model.W_K[layer, head]).T)
    b_q, b_k = model.b_Q[layer, head], model.b_K[layer, head]
    scores = qk.AB + (positions @ model.W_K[layer, head] @ b_q)[None, :] \
        + (positions @ model.W_Q[layer, head] @ b_k)[:, None] + b_q @ b_k
    scores = scores / model.cfg.d_head**0.5
    return torch.where(torch.ones_like(scores, dtype=torch.bool).tril(), scores, -1e9).softmax(-1)


@_raising_as_documented("positional_attention")
def positional_by_einsum(model, layer, head, n_positions):
    """Correct: einsum, mask built with tril, in float64."""
    queries = (model.W_pos[:n_positions] @ model.W_Q[layer, head] + model.b_Q[layer, head]).double()
    keys = (model.W_pos[:n_positions] @ model.W_K[layer, head] + model.b_K[layer, head]).double()
    scores = torch.einsum("qd,kd->qk", queries, keys) / model.cfg.d_head**0.5
    allowed = torch.tril(torch.ones(n_positions, n_positions, dtype=torch.bool))
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1).float()


def positional_without_the_documented_checks(model, layer, head, n_positions):  # computes on any model, no ValueError
    return positional_by_einsum.__wrapped__(model, layer, head, n_positions)


def agreement_without_the_documented_checks(predicted, actual, first_query):  # nan when no query counts
    return (predicted.argmax(-1)[:, first_query:] == actual.argmax(-1)[:, first_query:]).float().mean().item()


# ---- previous_position_score ------------------------------------------------------------------------------------------
def previous_above_the_diagonal(patterns):
    return patterns.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=-1)


def previous_divided_by_all_queries(patterns):
    return patterns.diagonal(offset=-1, dim1=-2, dim2=-1).sum(dim=-1) / patterns.shape[-1]


def previous_for_four_dim_patterns_only(patterns):
    return patterns.diagonal(offset=-1, dim1=2, dim2=3).mean(dim=-1)


def previous_as_a_float(patterns):
    return patterns.diagonal(offset=-1, dim1=-2, dim2=-1).mean().item()


def previous_by_indexing(patterns):
    """Correct: gather [q, q - 1] with advanced indexing."""
    queries = torch.arange(1, patterns.shape[-1])
    return patterns[..., queries, queries - 1].mean(dim=-1)


def previous_by_masking(patterns):
    """Correct: a mask of the sub-diagonal, summed and divided by n - 1."""
    n = patterns.shape[-1]
    mask = torch.diag(torch.ones(n - 1), diagonal=-1).to(patterns.dtype)
    return (patterns * mask).sum(dim=(-2, -1)) / (n - 1)


# ---- decompose_attention_input ----------------------------------------------------------------------------------------
def _heads(model, cache, layer):
    return [torch.einsum("bphd,hdm->hbpm", cache["z", earlier], model.W_O[earlier]) for earlier in range(layer)]


def sources_without_positions(model, cache, layer):
    embed = cache["embed"]
    bias = model.b_O[:layer].sum(dim=0).expand_as(embed)
    return torch.cat([embed[None], *_heads(model, cache, layer), bias[None]])


def sources_with_heads_first(model, cache, layer):
    embed = cache["embed"]
    bias = model.b_O[:layer].sum(dim=0).expand_as(embed)
    return torch.cat([*_heads(model, cache, layer), embed[None], bias[None], cache["pos_embed"][None]])


def sources_for_layer_1_always(model, cache, layer):
    return sources_with_layer(model, cache, 1)


def sources_with_layer(model, cache, layer):
    embed = cache["embed"]
    bias = model.b_O[:layer].sum(dim=0).expand_as(embed)
    return torch.cat([embed[None], *_heads(model, cache, layer), bias[None], cache["pos_embed"][None]])


def sources_with_the_current_layers_W_O(model, cache, layer):
    embed = cache["embed"]
    heads = [torch.einsum("bphd,hdm->hbpm", cache["z", earlier], model.W_O[layer]) for earlier in range(layer)]
    bias = model.b_O[:layer].sum(dim=0).expand_as(embed)
    return torch.cat([embed[None], *heads, bias[None], cache["pos_embed"][None]])


def sources_from_the_residual_stream(model, cache, layer):
    """A shortcut that loses the split: the whole stream as one source, plus the positions."""
    return torch.stack([cache["resid_pre", layer], cache["pos_embed"]])


@_raising_as_documented("decompose_attention_input")
def sources_head_by_head(model, cache, layer):
    """Correct: a loop over heads, position embeddings from W_pos."""
    embed = cache["embed"]
    parts = [embed]
    for earlier in range(layer):
        for head in range(model.cfg.n_heads):
            parts.append(cache["z", earlier][:, :, head] @ model.W_O[earlier, head])
    parts.append(torch.zeros_like(embed) + sum((model.b_O[earlier] for earlier in range(layer)),
                                               torch.zeros(model.cfg.d_model)))
    parts.append(model.W_pos[: embed.shape[1]].expand_as(embed))
    return torch.stack(parts)


@_raising_as_documented("decompose_attention_input")
def sources_with_the_bias_by_subtraction(model, cache, layer):
    """Correct: the bias term as whatever the residual stream holds beyond the embedding and the heads."""
    embed = cache["embed"]
    heads = [torch.einsum("bpHd,Hdm->Hbpm", cache["z", earlier], model.W_O[earlier]) for earlier in range(layer)]
    bias = cache["resid_pre", layer] - embed - sum((h.sum(dim=0) for h in heads), torch.zeros_like(embed))
    return torch.stack([embed, *[h for stack in heads for h in stack], bias, cache["pos_embed"]])


# ---- decompose_queries_keys -------------------------------------------------------------------------------------------
def qk_with_bias_in_every_term(sources, model, layer, head):
    return sources @ model.W_Q[layer, head] + model.b_Q[layer, head], sources @ model.W_K[layer, head] + model.b_K[
        layer, head]


def _bias_term(sources, bias):
    return bias.expand(1, *sources.shape[1:-1], bias.shape[-1])


def qk_with_the_bias_term_first(sources, model, layer, head):
    q_bias, k_bias = _bias_term(sources, model.b_Q[layer, head]), _bias_term(sources, model.b_K[layer, head])
    return (torch.cat([q_bias, sources @ model.W_Q[layer, head]]),
            torch.cat([k_bias, sources @ model.W_K[layer, head]]))


def qk_swapped(sources, model, layer, head):
    queries = torch.cat([sources @ model.W_Q[layer, head], _bias_term(sources, model.b_Q[layer, head])])
    keys = torch.cat([sources @ model.W_K[layer, head], _bias_term(sources, model.b_K[layer, head])])
    return keys, queries


def qk_of_L1H0_always(sources, model, layer, head):
    queries = torch.cat([sources @ model.W_Q[1, 0], _bias_term(sources, model.b_Q[1, 0])])
    keys = torch.cat([sources @ model.W_K[1, 0], _bias_term(sources, model.b_K[1, 0])])
    return queries, keys


def qk_by_einsum(sources, model, layer, head):
    """Correct: einsum per source, the bias term built with zeros_like."""
    queries = torch.einsum("sbpm,md->sbpd", sources, model.W_Q[layer, head])
    keys = torch.einsum("sbpm,md->sbpd", sources, model.W_K[layer, head])
    return (torch.cat([queries, torch.zeros_like(queries[:1]) + model.b_Q[layer, head]]),
            torch.cat([keys, torch.zeros_like(keys[:1]) + model.b_K[layer, head]]))


def qk_as_a_list(sources, model, layer, head):
    """Correct: a list instead of a tuple, built source by source."""
    queries = [source @ model.W_Q[layer, head] for source in sources]
    keys = [source @ model.W_K[layer, head] for source in sources]
    queries.append(torch.ones_like(queries[0]) * model.b_Q[layer, head])
    keys.append(torch.ones_like(keys[0]) * model.b_K[layer, head])
    return [torch.stack(queries), torch.stack(keys)]


# ---- decompose_attention_scores ---------------------------------------------------------------------------------------
def scores_without_scale(queries, keys):
    return torch.einsum("ibqd,jbkd->ijbqk", queries, keys)


def scores_with_the_causal_mask(queries, keys):
    return _causal(torch.einsum("ibqd,jbkd->ijbqk", queries, keys) / queries.shape[-1] ** 0.5)


def scores_query_and_key_swapped(queries, keys):
    return torch.einsum("ibqd,jbkd->ijbkq", queries, keys) / queries.shape[-1] ** 0.5


def scores_terms_swapped(queries, keys):
    return torch.einsum("ibqd,jbkd->jibqk", queries, keys) / queries.shape[-1] ** 0.5


def scores_divided_by_d_head(queries, keys):
    return torch.einsum("ibqd,jbkd->ijbqk", queries, keys) / queries.shape[-1]


def scores_scaled_for_the_notebooks_d_head(queries, keys):
    return torch.einsum("ibqd,jbkd->ijbqk", queries, keys) / 32**0.5


def scores_by_broadcast_matmul(queries, keys):
    """Correct: broadcasting matmul instead of einsum."""
    return queries[:, None] @ keys[None].transpose(-1, -2) / queries.shape[-1] ** 0.5


def scores_scaled_first(queries, keys):
    """Correct: scale each side by d_head ** -0.25, then einsum with other letters."""
    scale = queries.shape[-1] ** -0.25
    return torch.einsum("xnad,ynbd->xynab", queries * scale, keys * scale)


# ---- k_composition_circuit --------------------------------------------------------------------------------------------
def _k_circuit(model, prev_layer, prev_head, layer, head):
    queries = model.W_E @ model.W_Q[layer, head]
    keys = model.W_E @ model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head] @ model.W_K[layer, head]
    return queries, keys


def k_circuit_transposed(model, prev_layer, prev_head, layer, head):
    queries, keys = _k_circuit(model, prev_layer, prev_head, layer, head)
    return keys @ queries.T / model.cfg.d_head**0.5


def k_circuit_without_scale(model, prev_layer, prev_head, layer, head):
    queries, keys = _k_circuit(model, prev_layer, prev_head, layer, head)
    return queries @ keys.T


def k_circuit_with_ov_on_the_query_side(model, prev_layer, prev_head, layer, head):
    ov = model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head]
    queries = model.W_E @ ov @ model.W_Q[layer, head]
    keys = model.W_E @ model.W_K[layer, head]
    return queries @ keys.T / model.cfg.d_head**0.5


def k_circuit_divided_by_d_head(model, prev_layer, prev_head, layer, head):
    ov = model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head]
    return (model.W_E @ model.W_Q[layer, head]) @ (model.W_E @ ov @ model.W_K[layer, head]).T / model.cfg.d_head


def k_circuit_of_L0H0_into_L1H0_always(model, prev_layer, prev_head, layer, head):
    queries, keys = _k_circuit(model, 0, 0, 1, 0)
    return queries @ keys.T / model.cfg.d_head**0.5


def k_circuit_as_a_factored_matrix(model, prev_layer, prev_head, layer, head):
    queries, keys = _k_circuit(model, prev_layer, prev_head, layer, head)
    return FactoredMatrix(queries, keys.T / model.cfg.d_head**0.5)


def k_circuit_by_einsum(model, prev_layer, prev_head, layer, head):
    """Correct: one einsum through W_QK of the later head."""
    w_qk = model.W_Q[layer, head] @ model.W_K[layer, head].T
    ov = model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head]
    return torch.einsum("am,mn,on,bo->ab", model.W_E, w_qk, ov, model.W_E) / model.cfg.d_head**0.5


def k_circuit_factored_then_multiplied(model, prev_layer, prev_head, layer, head):
    """Correct: a FactoredMatrix chain, multiplied out at the end, in float64."""
    w_e = model.W_E.double()
    circuit = FactoredMatrix(w_e @ model.W_Q[layer, head].double(), model.W_K[layer, head].double().T) \
        @ model.W_O[prev_layer, prev_head].double().T @ model.W_V[prev_layer, prev_head].double().T @ w_e.T
    return (circuit.AB / model.cfg.d_head**0.5).float()


# ---- composition_scores -----------------------------------------------------------------------------------------------
def _frobenius(matrices):
    return matrices.norm(dim=(-2, -1))


def composition_right_first(left, right):
    products = torch.einsum("jab,ibc->ijac", right, left)
    return _frobenius(products) / (_frobenius(left)[:, None] * _frobenius(right)[None])


def composition_normalised_by_the_left_only(left, right):
    products = torch.einsum("iab,jbc->ijac", left, right)
    return _frobenius(products) / _frobenius(left)[:, None]


def composition_with_spectral_norms(left, right):
    products = torch.einsum("iab,jbc->ijac", left, right)
    spectral = lambda m: torch.linalg.matrix_norm(m, ord=2)  # noqa: E731
    return spectral(products) / (spectral(left)[:, None] * spectral(right)[None])


def composition_transposed(left, right):
    products = torch.einsum("iab,jbc->jiac", left, right)
    return _frobenius(products) / (_frobenius(right)[:, None] * _frobenius(left)[None])


def composition_in_a_loop(left, right):
    """Correct (though the exercise asks for one einsum): a loop over pairs."""
    scores = torch.zeros(left.shape[0], right.shape[0])
    for i, a in enumerate(left):
        for j, b in enumerate(right):
            scores[i, j] = torch.linalg.matrix_norm(a @ b) / (torch.linalg.matrix_norm(a) * torch.linalg.matrix_norm(b))
    return scores


def composition_by_one_einsum_of_all_products(left, right):
    """Correct, though it holds every [left, right, d_model, d_model] product at once: the values are right."""
    products = torch.einsum("iab,jbc->ijac", left, right)
    return _frobenius(products) / (_frobenius(left)[:, None] * _frobenius(right)[None])


def composition_by_broadcasting(left, right):
    """Correct: normalise first, then a broadcast matmul."""
    left_unit = left / _frobenius(left)[:, None, None]
    right_unit = right / _frobenius(right)[:, None, None]
    return _frobenius(left_unit[:, None] @ right_unit[None])


# ---- random_composition_baseline --------------------------------------------------------------------------------------
def _paired_mean(left, right):
    return (_frobenius(left @ right) / (_frobenius(left) * _frobenius(right))).mean().item()


def baseline_drawn_in_another_order(d_model, d_head, n_samples, generator):
    a1 = torch.randn(n_samples, d_model, d_head, generator=generator)
    b1 = torch.randn(n_samples, d_model, d_head, generator=generator)
    a2 = torch.randn(n_samples, d_head, d_model, generator=generator)
    b2 = torch.randn(n_samples, d_head, d_model, generator=generator)
    return _paired_mean(a1 @ a2, b1 @ b2)


def baseline_from_uniform_entries(d_model, d_head, n_samples, generator):
    a1 = torch.rand(n_samples, d_model, d_head, generator=generator)
    a2 = torch.rand(n_samples, d_head, d_model, generator=generator)
    b1 = torch.rand(n_samples, d_model, d_head, generator=generator)
    b2 = torch.rand(n_samples, d_head, d_model, generator=generator)
    return _paired_mean(a1 @ a2, b1 @ b2)


def baseline_from_the_global_generator(d_model, d_head, n_samples, generator):
    a1, a2 = torch.randn(n_samples, d_model, d_head), torch.randn(n_samples, d_head, d_model)
    b1, b2 = torch.randn(n_samples, d_model, d_head), torch.randn(n_samples, d_head, d_model)
    return _paired_mean(a1 @ a2, b1 @ b2)


def baseline_of_full_rank_matrices(d_model, d_head, n_samples, generator):
    left = torch.randn(n_samples, d_model, d_model, generator=generator)
    right = torch.randn(n_samples, d_model, d_model, generator=generator)
    return _paired_mean(left, right)


def baseline_with_the_notebook_shapes(d_model, d_head, n_samples, generator):
    a1 = torch.randn(n_samples, 128, 32, generator=generator)
    a2 = torch.randn(n_samples, 32, 128, generator=generator)
    b1 = torch.randn(n_samples, 128, 32, generator=generator)
    b2 = torch.randn(n_samples, 32, 128, generator=generator)
    return _paired_mean(a1 @ a2, b1 @ b2)


def baseline_sample_by_sample(d_model, d_head, n_samples, generator):
    """Correct: the same draws, scored one sample at a time in float64."""
    draws = [torch.randn(n_samples, d_model, d_head, generator=generator),
             torch.randn(n_samples, d_head, d_model, generator=generator),
             torch.randn(n_samples, d_model, d_head, generator=generator),
             torch.randn(n_samples, d_head, d_model, generator=generator)]
    a1, a2, b1, b2 = (draw.double() for draw in draws)
    scores = [torch.linalg.matrix_norm(a1[i] @ a2[i] @ b1[i] @ b2[i])
              / (torch.linalg.matrix_norm(a1[i] @ a2[i]) * torch.linalg.matrix_norm(b1[i] @ b2[i]))
              for i in range(n_samples)]
    return float(sum(scores) / n_samples)


def baseline_with_factored_matrices(d_model, d_head, n_samples, generator):
    """Correct: the same draws kept factored; norms from FactoredMatrix."""
    a1 = torch.randn(n_samples, d_model, d_head, generator=generator)
    a2 = torch.randn(n_samples, d_head, d_model, generator=generator)
    b1 = torch.randn(n_samples, d_model, d_head, generator=generator)
    b2 = torch.randn(n_samples, d_head, d_model, generator=generator)
    left, right = FactoredMatrix(a1, a2), FactoredMatrix(b1, b2)
    return ((left @ right).norm() / (left.norm() * right.norm())).mean().item()


# ---- predicted_induction_pattern --------------------------------------------------------------------------------------
def _moves(model, layer, head, seq):
    return _causal(_positional_scores(model, layer, head, seq)).softmax(-1)


def _prediction(model, tokens, prev_layer, prev_head, layer, head, moved_embeddings=None, mask=True,
                query_from_moved=False):
    embeddings = model.W_E[tokens]
    if moved_embeddings is None:
        moved_embeddings = torch.einsum("kj,bjm->bkm", _moves(model, prev_layer, prev_head, tokens.shape[1]),
                                        embeddings)
    ov = model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head]
    keys = moved_embeddings @ ov @ model.W_K[layer, head]
    queries = (moved_embeddings @ ov if query_from_moved else embeddings) @ model.W_Q[layer, head]
    if query_from_moved:
        keys = embeddings @ model.W_K[layer, head]
    scores = queries @ keys.transpose(-1, -2) / model.cfg.d_head**0.5
    return (_causal(scores) if mask else scores).softmax(-1)


def prediction_with_the_moves_transposed(model, tokens, prev_layer, prev_head, layer, head):
    moves = _moves(model, prev_layer, prev_head, tokens.shape[1])
    moved = torch.einsum("jk,bjm->bkm", moves, model.W_E[tokens])
    return _prediction(model, tokens, prev_layer, prev_head, layer, head, moved_embeddings=moved)


def prediction_with_the_exact_previous_token(model, tokens, prev_layer, prev_head, layer, head):
    embeddings = model.W_E[tokens]
    moved = torch.cat([embeddings[:, :1], embeddings[:, :-1]], dim=1)  # "L0H0 attends to k - 1, exactly"
    return _prediction(model, tokens, prev_layer, prev_head, layer, head, moved_embeddings=moved)


def prediction_without_the_causal_mask(model, tokens, prev_layer, prev_head, layer, head):
    return _prediction(model, tokens, prev_layer, prev_head, layer, head, mask=False)


def prediction_with_the_roles_swapped(model, tokens, prev_layer, prev_head, layer, head):
    return _prediction(model, tokens, prev_layer, prev_head, layer, head, query_from_moved=True)


def prediction_for_L0H0_into_L1H0_always(model, tokens, prev_layer, prev_head, layer, head):
    return _prediction(model, tokens, 0, 0, 1, 0)


@_raising_as_documented("predicted_induction_pattern")
def prediction_from_a_token_table(model, tokens, prev_layer, prev_head, layer, head):
    """Correct: the K-composition circuit as a [token, token] table, gathered and mixed by the positional pattern."""
    table = (model.W_E @ model.W_Q[layer, head]) @ (
        model.W_E @ model.W_V[prev_layer, prev_head] @ model.W_O[prev_layer, prev_head] @ model.W_K[layer, head]).T
    seq = tokens.shape[1]
    pairs = table[tokens[:, :, None], tokens[:, None, :]]  # [batch, query, source]: query token x source token
    scores = torch.einsum("bqj,kj->bqk", pairs, _moves(model, prev_layer, prev_head, seq)) / model.cfg.d_head**0.5
    return _causal(scores).softmax(-1)


@_raising_as_documented("predicted_induction_pattern")
def prediction_with_one_hot_tokens(model, tokens, prev_layer, prev_head, layer, head):
    """Correct: embeddings as one-hot @ W_E, moves computed with torch.where, in float64."""
    seq = tokens.shape[1]
    one_hot = torch.nn.functional.one_hot(tokens, model.cfg.d_vocab).double()
    w = {name: getattr(model, name).double() for name in ("W_E", "W_Q", "W_K", "W_V", "W_O", "W_pos", "b_Q", "b_K")}
    positions = w["W_pos"][:seq]
    pos_q = positions @ w["W_Q"][prev_layer, prev_head] + w["b_Q"][prev_layer, prev_head]
    pos_k = positions @ w["W_K"][prev_layer, prev_head] + w["b_K"][prev_layer, prev_head]
    allowed = torch.ones(seq, seq, dtype=torch.bool).tril()
    moves = torch.where(allowed, pos_q @ pos_k.T / model.cfg.d_head**0.5, -torch.inf).softmax(-1)
    embeddings = one_hot @ w["W_E"]
    keys = (moves @ embeddings) @ w["W_V"][prev_layer, prev_head] @ w["W_O"][prev_layer, prev_head] \
        @ w["W_K"][layer, head]
    queries = embeddings @ w["W_Q"][layer, head]
    scores = queries @ keys.transpose(-1, -2) / model.cfg.d_head**0.5
    return torch.where(allowed, scores, -torch.inf).softmax(-1).float()


# ---- argmax_agreement -------------------------------------------------------------------------------------------------
def agreement_over_queries(predicted, actual, first_query):
    return (predicted[:, first_query:].argmax(-2) == actual[:, first_query:].argmax(-2)).float().mean().item()


def agreement_from_query_0(predicted, actual, first_query):
    return (predicted.argmax(-1) == actual.argmax(-1)).float().mean().item()


def agreement_one_query_late(predicted, actual, first_query):
    start = first_query + 1
    return (predicted[:, start:].argmax(-1) == actual[:, start:].argmax(-1)).float().mean().item()


def agreement_one_query_early(predicted, actual, first_query):
    start = first_query - 1
    return (predicted[:, start:].argmax(-1) == actual[:, start:].argmax(-1)).float().mean().item()


def agreement_as_a_count(predicted, actual, first_query):
    return int((predicted[:, first_query:].argmax(-1) == actual[:, first_query:].argmax(-1)).sum())


def agreement_in_percent(predicted, actual, first_query):
    return 100 * (predicted[:, first_query:].argmax(-1) == actual[:, first_query:].argmax(-1)).float().mean().item()


@_raising_as_documented("argmax_agreement")
def agreement_in_a_loop(predicted, actual, first_query):
    """Correct: count matches sequence by sequence, query by query."""
    matches = total = 0
    for p, a in zip(predicted, actual):
        for query in range(first_query, p.shape[0]):
            matches += int(p[query].argmax() == a[query].argmax())
            total += 1
    return matches / total


@_raising_as_documented("argmax_agreement")
def agreement_by_max_indices(predicted, actual, first_query):
    """Correct: torch.max's indices, summed then divided."""
    same = predicted.max(dim=-1).indices[:, first_query:] == actual.max(dim=-1).indices[:, first_query:]
    return same.sum().item() / same.numel()


WRONG_IMPLEMENTATIONS = [
    ("circuit_summary", summary_by_materialising, "multiplied out the full matrix"),
    ("circuit_summary", summary_by_multiplying_the_factors, "multiplied out the full matrix"),
    ("circuit_summary", summary_with_smallest_singular_values, "k largest singular values"),
    ("circuit_summary", summary_with_transposed_corner, "swapped (transposed)"),
    ("circuit_summary", summary_with_k_hard_coded, "wrong shape"),
    ("circuit_summary", summary_norm_over_the_whole_batch, "over the last dim only"),
    ("head_full_ov_circuit", full_ov_transposed, "transposed"),
    ("head_full_ov_circuit", full_ov_of_L1H0_always, "W_V[layer, head]"),
    ("head_full_ov_circuit", full_ov_with_biases, "no biases"),
    ("head_full_ov_circuit", full_ov_as_numpy, "torch.from_numpy"),
    ("head_full_ov_circuit", full_ov_through_the_keys, "W_E @ W_V[layer, head]"),
    ("top_k_copying_accuracy", copying_over_columns, "for each column (output token)"),
    ("top_k_copying_accuracy", copying_with_argmax_only, "topk(k, dim=-1)"),
    ("top_k_copying_accuracy", copying_counts, "constant factor"),
    ("top_k_copying_accuracy", copying_as_integers, "wrong dtype"),
    ("top_k_copying_accuracy", copying_pooled_over_heads, "keeping every leading batch dimension"),
    ("eigenvalue_copying_scores", eigenvalue_scores_with_the_size_of_the_sum, "keeps the sum's real part"),
    ("eigenvalue_copying_scores", eigenvalue_scores_of_W_OV_alone, "W_E @ W_V"),
    ("eigenvalue_copying_scores", eigenvalue_scores_for_two_layers, "wrong shape"),
    ("eigenvalue_copying_scores", eigenvalue_scores_left_complex, "dtype"),
    ("eigenvalue_copying_scores", eigenvalue_scores_head_major, "transposed"),
    ("positional_attention", positional_without_scale, "sqrt(d_head)"),
    ("positional_attention", positional_without_biases, "without the query and key biases"),
    ("positional_attention", positional_divided_by_d_head, "divided by d_head: the model divides them by the square"),
    ("positional_attention", positional_without_mask, "-inf"),
    ("positional_attention", positional_softmax_over_queries, "softmax over keys"),
    ("positional_attention", positional_over_the_whole_context, "wrong shape"),
    ("previous_position_score", previous_above_the_diagonal, "diagonal(offset=-1"),
    ("previous_position_score", previous_divided_by_all_queries, "the n - 1 queries that have one"),
    ("previous_position_score", previous_for_four_dim_patterns_only, "raised IndexError"),
    ("previous_position_score", previous_as_a_float, "expected a tensor"),
    ("decompose_attention_input", sources_without_positions, "off by one"),
    ("decompose_attention_input", sources_with_heads_first, "Order: [embed, L0H0"),
    ("decompose_attention_input", sources_for_layer_1_always, "wrong shape"),
    ("decompose_attention_input", sources_with_the_current_layers_W_O, "z @ W_O"),
    ("decompose_attention_input", sources_from_the_residual_stream, "wrong shape"),
    ("decompose_queries_keys", qk_with_bias_in_every_term, "off by one"),
    ("decompose_queries_keys", qk_with_the_bias_term_first, "one extra last term"),
    ("decompose_queries_keys", qk_swapped, "output[0]"),
    ("decompose_queries_keys", qk_of_L1H0_always, "sources[i] @ W_Q[layer, head]"),
    ("decompose_attention_scores", scores_without_scale, "= sqrt(32)"),
    ("decompose_attention_scores", scores_with_the_causal_mask, "no causal mask"),
    ("decompose_attention_scores", scores_query_and_key_swapped, "swapped (transposed)"),
    ("decompose_attention_scores", scores_terms_swapped, "transposed"),
    ("decompose_attention_scores", scores_divided_by_d_head, "= 1/sqrt(32)"),
    ("decompose_attention_scores", scores_scaled_for_the_notebooks_d_head, "sqrt(d_head)"),
    ("k_composition_circuit", k_circuit_transposed, "swapped (transposed)"),
    ("k_composition_circuit", k_circuit_without_scale, "= sqrt(32)"),
    ("k_composition_circuit", k_circuit_with_ov_on_the_query_side, "that is Q-composition"),
    ("k_composition_circuit", k_circuit_divided_by_d_head, "divides the scores by d_head"),
    ("k_composition_circuit", k_circuit_of_L0H0_into_L1H0_always, "Rows are query tokens"),
    ("k_composition_circuit", k_circuit_as_a_factored_matrix, "FactoredMatrix"),
    ("composition_scores", composition_right_first, "the other way round (right before left)"),
    ("composition_scores", composition_normalised_by_the_left_only, "over the product of the two matrices' own norms"),
    ("composition_scores", composition_with_spectral_norms, "Frobenius"),
    ("composition_scores", composition_transposed, "transposed"),
    ("random_composition_baseline", baseline_drawn_in_another_order, "in that order"),
    ("random_composition_baseline", baseline_from_uniform_entries, "torch.randn(shape, generator=generator)"),
    ("random_composition_baseline", baseline_from_the_global_generator, "generator=generator"),
    ("random_composition_baseline", baseline_of_full_rank_matrices, "A1 [n, d_model, d_head]"),
    ("random_composition_baseline", baseline_with_the_notebook_shapes, "A1 [n, d_model, d_head]"),
    ("predicted_induction_pattern", prediction_with_the_moves_transposed, "'kj,bjm->bkm'"),
    ("predicted_induction_pattern", prediction_with_the_exact_previous_token, "positional pattern of the earlier"),
    ("predicted_induction_pattern", prediction_without_the_causal_mask, "mask the future"),
    ("predicted_induction_pattern", prediction_with_the_roles_swapped, "queries = W_E[tokens]"),
    ("predicted_induction_pattern", prediction_for_L0H0_into_L1H0_always, "W_K[layer, head]"),
    ("argmax_agreement", agreement_over_queries, "argmax over keys (the last dim)"),
    ("argmax_agreement", agreement_from_query_0, "first_query.. only"),
    ("argmax_agreement", agreement_one_query_late, "from first_query + 1 on"),
    ("argmax_agreement", agreement_one_query_early, "from first_query - 1 on"),
    ("argmax_agreement", agreement_as_a_count, "expected a float"),
    ("argmax_agreement", agreement_in_percent, "constant factor"),
    ("argmax_agreement", agreement_without_the_documented_checks, "says it raises ValueError"),
    ("positional_attention", positional_without_the_documented_checks, "says it raises ValueError"),
]

CORRECT_ALTERNATIVES = [
    ("circuit_summary", summary_from_gram_matrices),
    ("circuit_summary", summary_from_the_svd),
    ("head_full_ov_circuit", full_ov_right_to_left),
    ("head_full_ov_circuit", full_ov_by_einsum),
    ("top_k_copying_accuracy", copying_by_rank),
    ("top_k_copying_accuracy", copying_by_sorting),
    ("eigenvalue_copying_scores", eigenvalue_scores_from_the_small_matrix),
    ("eigenvalue_copying_scores", eigenvalue_scores_head_by_head),
    ("positional_attention", positional_with_a_factored_matrix),
    ("positional_attention", positional_by_einsum),
    ("previous_position_score", previous_by_indexing),
    ("previous_position_score", previous_by_masking),
    ("decompose_attention_input", sources_head_by_head),
    ("decompose_attention_input", sources_with_the_bias_by_subtraction),
    ("decompose_queries_keys", qk_by_einsum),
    ("decompose_queries_keys", qk_as_a_list),
    ("decompose_attention_scores", scores_by_broadcast_matmul),
    ("decompose_attention_scores", scores_scaled_first),
    ("k_composition_circuit", k_circuit_by_einsum),
    ("k_composition_circuit", k_circuit_factored_then_multiplied),
    ("composition_scores", composition_in_a_loop),
    ("composition_scores", composition_by_broadcasting),
    ("composition_scores", composition_by_one_einsum_of_all_products),
    ("random_composition_baseline", baseline_sample_by_sample),
    ("random_composition_baseline", baseline_with_factored_matrices),
    ("predicted_induction_pattern", prediction_from_a_token_table),
    ("predicted_induction_pattern", prediction_with_one_hot_tokens),
    ("argmax_agreement", agreement_in_a_loop),
    ("argmax_agreement", agreement_by_max_indices),
]


@pytest.mark.parametrize(
    "exercise, wrong, phrase", WRONG_IMPLEMENTATIONS, ids=[wrong.__name__ for _, wrong, _ in WRONG_IMPLEMENTATIONS]
)
def test_grading_rejects_wrong_implementation(exercise, wrong, phrase):
    outcome = grade(wrong, name=exercise, device="cpu")
    assert outcome.status == "failed", f"{wrong.__name__} was graded {outcome.status!r}: {outcome.message}"
    text = f"{outcome.message}\n{all_hints(outcome)}"
    assert phrase in text, f"message does not point at the mistake ({phrase!r}):\n{text}"
    margin = case_margin(wrong, exercise, outcome.case, device="cpu")  # the case that rejected it
    assert is_clear_rejection(margin), (
        f"{wrong.__name__} fails case {outcome.case!r} by a margin of only {margin:.3g}")


@pytest.mark.parametrize(
    "exercise, correct", CORRECT_ALTERNATIVES, ids=[correct.__name__ for _, correct in CORRECT_ALTERNATIVES]
)
def test_grading_accepts_correct_alternative(exercise, correct):
    outcome = grade(correct, name=exercise, device="cpu")
    assert outcome.status == "passed", f"{correct.__name__} was graded {outcome.status!r}: {outcome.message}"
    found = margins(correct, exercise, device="cpu")
    assert max(found.values()) <= CORRECT_MARGIN, f"{correct.__name__} passes too narrowly: {found}"


# Issue 18: seven typical Day 2 mistakes, the grader's diagnosis of each, and whether it points at the mistake. The
# phrase must be in the diagnosis itself (the message a learner sees without asking for hints). All seven point.
TYPICAL_MISTAKES = [
    ("argmax_agreement", agreement_one_query_late, "This counts the queries from first_query + 1 on", "yes"),
    ("positional_attention", positional_divided_by_d_head, "the scores divided by d_head", "yes"),
    ("positional_attention", positional_without_biases, "without the query and key biases", "yes"),
    ("previous_position_score", previous_divided_by_all_queries, "divides the previous-position attention by the "
                                                                 "number of positions n", "yes"),
    ("top_k_copying_accuracy", copying_over_columns, "for each column (output token)", "yes"),
    ("composition_scores", composition_right_first, "multiplies each pair the other way round", "yes"),
    ("k_composition_circuit", k_circuit_with_ov_on_the_query_side, "on the query side: that is Q-composition", "yes"),
]


@pytest.mark.parametrize("exercise, wrong, phrase, points", TYPICAL_MISTAKES,
                         ids=[wrong.__name__ for _, wrong, _, _ in TYPICAL_MISTAKES])
def test_typical_day2_mistakes_are_named_in_the_diagnosis(exercise, wrong, phrase, points):
    outcome = grade(wrong, name=exercise, device="cpu")
    assert outcome.status == "failed"
    assert (phrase in outcome.message) == (points == "yes"), outcome.message
    if exercise == "argmax_agreement":  # a fraction one query short is no "constant factor" (issue 24's probe)
        assert "constant factor" not in outcome.message, outcome.message


def test_every_day2_exercise_has_four_wrong_implementations_and_two_correct_alternatives():
    from checks.specs.day2 import CHECKS

    wrong = {check.name: 0 for check in CHECKS}
    correct = {check.name: 0 for check in CHECKS}
    for exercise, _, _ in WRONG_IMPLEMENTATIONS:
        wrong[exercise] += 1
    for exercise, _ in CORRECT_ALTERNATIVES:
        correct[exercise] += 1
    assert all(count >= 4 for count in wrong.values()), wrong
    assert all(count >= 2 for count in correct.values()), correct
