"""Day 1 grading rejects plausible wrong answers, with a message that points at the mistake.

Each wrong implementation below is a mistake learners make; grading must say "failed" and its message must contain
the given phrase (from the comparison engine's diagnosis or from the check's hint).
"""

from __future__ import annotations

import pytest
import torch

from checks import grade

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---- describe_model ---------------------------------------------------------------------------------------------------
def describe_model_total_heads(model):
    cfg = model.cfg
    params = sum(p.numel() for name, p in model.named_parameters() if ".attn." in name)
    return {"n_layers": cfg.n_layers, "n_heads": cfg.n_layers * cfg.n_heads, "d_model": cfg.d_model,
            "d_head": cfg.d_head, "d_vocab": cfg.d_vocab, "n_ctx": cfg.n_ctx, "attention_params": params}


def describe_model_without_biases(model):
    cfg = model.cfg
    params = sum(p.numel() for name, p in model.named_parameters() if ".attn.W_" in name)
    return {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model,
            "d_head": cfg.d_head, "d_vocab": cfg.d_vocab, "n_ctx": cfg.n_ctx, "attention_params": params}


# ---- tokenize ---------------------------------------------------------------------------------------------------------
def tokenize_without_bos(model, text):
    return model.to_tokens(text, prepend_bos=False), model.to_str_tokens(text, prepend_bos=False)


def tokenize_by_splitting_words(model, text):
    return model.to_tokens(text), text.split()


# ---- next_token_accuracy ----------------------------------------------------------------------------------------------
def accuracy_without_shift(model, tokens):
    return (model(tokens).argmax(-1) == tokens).float().mean().item()


def accuracy_shifted_the_wrong_way(model, tokens):
    return (model(tokens)[:, 1:].argmax(-1) == tokens[:, :-1]).float().mean().item()


# ---- attention_pattern_from_qk ---------------------------------------------------------------------------------------
def _causal_mask(seq):
    return torch.triu(torch.ones(seq, seq, dtype=torch.bool), diagonal=1)


def pattern_without_scale(q, k):
    scores = torch.einsum("qhd,khd->hqk", q, k)
    return scores.masked_fill(_causal_mask(q.shape[0]), float("-inf")).softmax(-1)


def pattern_without_causal_mask(q, k):
    return (torch.einsum("qhd,khd->hqk", q, k) / q.shape[-1] ** 0.5).softmax(-1)


def pattern_softmax_over_queries(q, k):
    scores = torch.einsum("qhd,khd->hqk", q, k) / q.shape[-1] ** 0.5
    return scores.masked_fill(_causal_mask(q.shape[0]), float("-inf")).softmax(-2)


# ---- the three detectors ----------------------------------------------------------------------------------------------
def _per_layer(cache, n_layers, score):
    return torch.stack([score(cache["pattern", layer]) for layer in range(n_layers)])


def current_scores_including_position_0(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p.diagonal(dim1=-2, dim2=-1).mean(dim=(0, 2)))


def current_scores_one_below_the_diagonal(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2)))


def previous_scores_above_the_diagonal(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p.diagonal(offset=1, dim1=-2, dim2=-1).mean(dim=(0, 2)))


def previous_scores_summed_over_positions(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1).mean(0))


def first_scores_including_position_0(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p[:, :, :, 0].mean(dim=(0, 2)))


def first_scores_to_the_last_key(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p[:, :, 1:, -1].mean(dim=(0, 2)))


# ---- generate_repeated_tokens -----------------------------------------------------------------------------------------
def repeated_without_bos(model, half_len, batch, generator, first_token):
    half = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    return torch.cat([half, half], dim=1)


def repeated_with_two_draws(model, half_len, batch, generator, first_token):
    first = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    second = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, first, second], dim=1)


def repeated_from_the_whole_vocabulary(model, half_len, batch, generator, first_token):
    half = torch.randint(0, model.cfg.d_vocab, (batch, half_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, half, half], dim=1)


# ---- per_token_loss ---------------------------------------------------------------------------------------------------
def loss_from_raw_logits(logits, tokens):
    return -logits[:, :-1].gather(-1, tokens[:, 1:, None])[..., 0]


def loss_of_the_current_token(logits, tokens):
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, :-1, None])[..., 0]


def log_probs_instead_of_loss(logits, tokens):
    return logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


# ---- induction_scores -------------------------------------------------------------------------------------------------
def _stripe_scores(model, tokens, select):
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)

    def record(pattern, hook):
        scores[hook.layer()] = select(pattern)

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), record)])
    return scores


def induction_attending_to_the_first_occurrence(model, tokens, half_len):
    select = lambda p: p.diagonal(offset=-half_len, dim1=-2, dim2=-1)[..., -half_len:].mean(dim=(0, 2))  # noqa: E731
    return _stripe_scores(model, tokens, select)


def induction_over_the_whole_stripe(model, tokens, half_len):
    select = lambda p: p.diagonal(offset=1 - half_len, dim1=-2, dim2=-1).mean(dim=(0, 2))  # noqa: E731
    return _stripe_scores(model, tokens, select)


def induction_from_a_cache(model, tokens, half_len):
    _, cache = model.run_with_cache(tokens)
    stripes = [cache["pattern", layer].diagonal(offset=1 - half_len, dim1=-2, dim2=-1)[..., -half_len:]
               for layer in range(model.cfg.n_layers)]
    return torch.stack([stripe.mean(dim=(0, 2)) for stripe in stripes])


# ---- direct_logit_attribution ----------------------------------------------------------------------------------------
def _attribution(model, cache, target_tokens, head_major=False):
    n = target_tokens.shape[0]
    heads = torch.stack([torch.einsum("phd,hdm->phm", cache["z", layer][0, :n], model.W_O[layer])
                         for layer in range(model.cfg.n_layers)], dim=1)  # [pos, layer, head, d_model]
    if head_major:
        heads = heads.transpose(1, 2)
    stack = torch.cat([cache["embed"][0, :n, None], heads.flatten(1, 2)], dim=1)
    if model.cfg.normalization_type in ("LN", "LNPre"):
        stack = stack - stack.mean(-1, keepdim=True)
    if model.cfg.normalization_type is not None:
        stack = stack / cache["ln_final.hook_scale"][0, :n, None]
    return torch.einsum("pcm,mp->pc", stack, model.W_U[:, target_tokens])


def attribution_to_the_current_token(model, cache, tokens):
    return _attribution(model, cache, tokens[:-1])


def attribution_with_heads_in_head_major_order(model, cache, tokens):
    return _attribution(model, cache, tokens[1:], head_major=True)


def attribution_with_the_sign_flipped(model, cache, tokens):
    return -_attribution(model, cache, tokens[1:])


# ---- ablations --------------------------------------------------------------------------------------------------------
def _loss_changes(model, tokens, ablate, clean_minus_ablated=False):
    clean = model(tokens, return_type="loss")
    changes = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            def hook(z, hook, head=head):
                return ablate(z.clone(), head)

            ablated = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
            changes[layer, head] = clean - ablated if clean_minus_ablated else ablated - clean
    return changes


def _zero(z, head):
    z[:, :, head] = 0.0
    return z


def zero_ablation_clean_minus_ablated(model, tokens):
    return _loss_changes(model, tokens, _zero, clean_minus_ablated=True)


def zero_ablation_of_the_whole_layer(model, tokens):
    return _loss_changes(model, tokens, lambda z, head: torch.zeros_like(z))


def mean_ablation_over_positions(model, tokens):
    def ablate(z, head):
        z[:, :, head] = z[:, :, head].mean(dim=1, keepdim=True)
        return z

    return _loss_changes(model, tokens, ablate)


def mean_ablation_with_zeros(model, tokens):
    return _loss_changes(model, tokens, _zero)


WRONG_IMPLEMENTATIONS = [
    ("describe_model", describe_model_total_heads, "output['n_heads']"),
    ("describe_model", describe_model_without_biases, "output['attention_params']"),
    ("tokenize", tokenize_without_bos, "wrong shape"),
    ("tokenize", tokenize_by_splitting_words, "output[1]: expected"),
    ("next_token_accuracy", accuracy_without_shift, "position i + 1"),
    ("next_token_accuracy", accuracy_shifted_the_wrong_way, "position i + 1"),
    ("attention_pattern_from_qk", pattern_without_scale, "sqrt(d_head)"),
    ("attention_pattern_from_qk", pattern_without_causal_mask, "-inf"),
    ("attention_pattern_from_qk", pattern_softmax_over_queries, "key dimension"),
    ("current_token_scores", current_scores_including_position_0, "skip query position 0"),
    ("current_token_scores", current_scores_one_below_the_diagonal, "main diagonal"),
    ("previous_token_scores", previous_scores_above_the_diagonal, "offset=-1"),
    ("previous_token_scores", previous_scores_summed_over_positions, "constant factor"),
    ("first_token_scores", first_scores_including_position_0, "query positions 1..seq-1"),
    ("first_token_scores", first_scores_to_the_last_key, "key position 0"),
    ("generate_repeated_tokens", repeated_without_bos, "wrong shape"),
    ("generate_repeated_tokens", repeated_with_two_draws, "the same half again"),
    ("generate_repeated_tokens", repeated_from_the_whole_vocabulary, "torch.randint(first_token"),
    ("per_token_loss", loss_from_raw_logits, "log_softmax"),
    ("per_token_loss", loss_of_the_current_token, "tokens[:, 1:]"),
    ("per_token_loss", log_probs_instead_of_loss, "negate"),
    ("induction_scores", induction_attending_to_the_first_occurrence, "offset -(half_len - 1)"),
    ("induction_scores", induction_over_the_whole_stripe, "last half_len entries"),
    ("induction_scores", induction_from_a_cache, "run_with_cache"),
    ("direct_logit_attribution", attribution_to_the_current_token, "tokens[i + 1]"),
    ("direct_logit_attribution", attribution_with_heads_in_head_major_order, "L0H0, L0H1"),
    ("direct_logit_attribution", attribution_with_the_sign_flipped, "sign flipped"),
    ("zero_ablation_loss_change", zero_ablation_clean_minus_ablated, "sign flipped"),
    ("zero_ablation_loss_change", zero_ablation_of_the_whole_layer, "only z[:, :, head]"),
    ("mean_ablation_loss_change", mean_ablation_over_positions, "not over positions"),
    ("mean_ablation_loss_change", mean_ablation_with_zeros, "mean over the batch"),
]


@pytest.mark.parametrize(
    "exercise, wrong, phrase", WRONG_IMPLEMENTATIONS, ids=[wrong.__name__ for _, wrong, _ in WRONG_IMPLEMENTATIONS]
)
def test_grading_rejects_wrong_implementation(exercise, wrong, phrase):
    outcome = grade(wrong, name=exercise)
    assert outcome.status == "failed", f"{wrong.__name__} was graded {outcome.status!r}: {outcome.message}"
    text = f"{outcome.message}\n{outcome.hint}"
    assert phrase in text, f"message does not point at the mistake ({phrase!r}):\n{text}"


def test_every_day1_exercise_has_two_wrong_implementations():
    from checks.specs.day1 import CHECKS

    counts = {check.name: 0 for check in CHECKS}
    for exercise, _, _ in WRONG_IMPLEMENTATIONS:
        counts[exercise] += 1
    assert all(count >= 2 for count in counts.values()), counts
