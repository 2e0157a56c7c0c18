"""Day 1 grading is right about plausible learners: wrong answers are rejected with a message that points at the
mistake, by a clear margin, and correct alternatives (different but valid code) are accepted with room to spare.

Each wrong implementation is a mistake learners make, of one of four kinds: a numeric slip, a value hard-coded from
one input (which another case then exposes), a broken contract (dtype or type, hooks, config or caches left behind,
inputs edited), or a wrong axis or position. Grading must say "failed", its message (diagnosis and hint) must
contain the given phrase, and the failing case's margin (error over tolerance) must be at least 10; every correct
alternative must pass with a margin of at most 0.1 on every case.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from margins import CORRECT_MARGIN, WRONG_MARGIN, all_hints, case_margin, grade, margins

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


def induction_one_key_after_the_stripe(model, tokens, half_len):
    select = lambda p: p.diagonal(offset=2 - half_len, dim1=-2, dim2=-1)[..., -half_len:].mean(dim=(0, 2))  # noqa: E731
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



# ---- more wrong implementations: hard-coded values and broken contracts ------------------------------------------------
def _describe(model, **changes):
    cfg = model.cfg
    summary = {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model, "d_head": cfg.d_head,
               "d_vocab": cfg.d_vocab, "n_ctx": cfg.n_ctx,
               "attention_params": sum(p.numel() for name, p in model.named_parameters() if ".attn." in name)}
    summary.update(changes)
    return summary


def describe_model_n_ctx_and_d_model_swapped(model):
    return _describe(model, d_model=model.cfg.n_ctx, n_ctx=model.cfg.d_model)


def describe_model_with_two_layers(model):
    return _describe(model, n_layers=2)


def describe_model_count_as_tensor(model):
    return _describe(model, attention_params=torch.tensor(_describe(model)["attention_params"]))


def tokenize_with_bos_zero(model, text):
    tokens = model.to_tokens(text, prepend_bos=False)
    return torch.cat([torch.zeros_like(tokens[:, :1]), tokens], dim=1), ["<bos>", *model.to_str_tokens(text, prepend_bos=False)]


def tokenize_as_lists(model, text):
    return model.to_tokens(text).tolist(), model.to_str_tokens(text)


def tokenize_without_batch_dim(model, text):
    return model.to_tokens(text)[0], model.to_str_tokens(text)


def accuracy_with_a_hard_coded_count(model, tokens):
    return ((model(tokens)[:, :-1].argmax(-1) == tokens[:, 1:]).sum() / (6 * 63)).item()


def accuracy_as_a_tensor(model, tokens):
    return (model(tokens)[:, :-1].argmax(-1) == tokens[:, 1:]).float().mean()


def pattern_scaled_by_a_hard_coded_d_head(q, k):
    scores = torch.einsum("qhd,khd->hqk", q, k) / 32**0.5
    return scores.masked_fill(_causal_mask(q.shape[0]), float("-inf")).softmax(-1)


def pattern_divided_by_d_head(q, k):
    scores = torch.einsum("qhd,khd->hqk", q, k) / q.shape[-1]
    return scores.masked_fill(_causal_mask(q.shape[0]), float("-inf")).softmax(-1)


def pattern_scaling_q_in_place(q, k):
    q /= q.shape[-1] ** 0.5
    scores = torch.einsum("qhd,khd->hqk", q, k)
    return scores.masked_fill(_causal_mask(q.shape[0]), float("-inf")).softmax(-1)


def current_scores_of_two_layers(cache, n_layers):
    return _per_layer(cache, 2, lambda p: p.diagonal(dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, 2)))


def current_scores_divided_by_seq(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p.diagonal(dim1=-2, dim2=-1)[..., 1:].sum(-1).mean(0) / p.shape[-1])


def current_scores_as_a_list(cache, n_layers):
    return [cache["pattern", layer].diagonal(dim1=-2, dim2=-1)[..., 1:].mean(dim=(0, 2)) for layer in range(n_layers)]


def previous_scores_of_two_layers(cache, n_layers):
    return _per_layer(cache, 2, lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2)))


def previous_scores_as_numpy(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(0, 2))).numpy()


def first_scores_of_two_layers(cache, n_layers):
    return _per_layer(cache, 2, lambda p: p[:, :, 1:, 0].mean(dim=(0, 2)))


def first_scores_as_lists(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p[:, :, 1:, 0].mean(dim=(0, 2))).tolist()


def first_scores_averaged_over_heads_too(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p[:, :, 1:, 0].mean().expand(p.shape[1]))


def repeated_with_bos_zero(model, half_len, batch, generator, first_token):
    half = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.long), half, half], dim=1)


def repeated_as_int32(model, half_len, batch, generator, first_token):
    half = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id)
    return torch.cat([bos, half, half], dim=1).int()


def loss_over_a_hard_coded_vocabulary(logits, tokens):
    return -logits[:, :-1, :193].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]


def loss_averaged_over_positions(logits, tokens):
    return -logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0].mean(-1)


def induction_with_half_len_20(model, tokens, half_len):
    return solution_induction_scores(model, tokens, 20)


def induction_from_a_hand_built_cache(model, tokens, half_len):
    patterns = {}

    def store(pattern, hook):
        patterns[hook.layer()] = pattern.clone()

    model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(lambda n: n.endswith("hook_pattern"), store)])
    return torch.stack([patterns[layer].diagonal(offset=1 - half_len, dim1=-2, dim2=-1)[..., -half_len:].mean(dim=(0, 2))
                        for layer in range(model.cfg.n_layers)])


def induction_leaving_its_hooks(model, tokens, half_len):
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)

    def record(pattern, hook):
        scores[hook.layer()] = pattern.diagonal(offset=1 - half_len, dim1=-2, dim2=-1)[..., -half_len:].mean(dim=(0, 2))

    for layer in range(model.cfg.n_layers):
        model.blocks[layer].attn.hook_pattern.add_hook(record)
    model(tokens, return_type=None)
    return scores


def induction_leaving_use_attn_result_on(model, tokens, half_len):
    model.set_use_attn_result(True)
    return solution_induction_scores(model, tokens, half_len)


def attribution_ignoring_layernorm(model, cache, tokens):
    n = tokens.shape[0] - 1
    heads = torch.stack([torch.einsum("phd,hdm->phm", cache["z", layer][0, :n], model.W_O[layer])
                         for layer in range(model.cfg.n_layers)], dim=1)
    stack = torch.cat([cache["embed"][0, :n, None], heads.flatten(1, 2)], dim=1)
    return torch.einsum("pcm,mp->pc", stack, model.W_U[:, tokens[1:]])


def attribution_transposed(model, cache, tokens):
    return _attribution(model, cache, tokens[1:]).T


def zero_ablation_of_two_layers(model, tokens):
    clean = model(tokens, return_type="loss")
    changes = torch.zeros(2, model.cfg.n_heads)
    for layer in range(2):
        for head in range(model.cfg.n_heads):
            ablated = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[
                (f"blocks.{layer}.attn.hook_z", lambda z, hook, head=head: _zero(z.clone(), head))])
            changes[layer, head] = ablated - clean
    return changes


def zero_ablation_leaving_a_hook(model, tokens):
    changes = _loss_changes(model, tokens, _zero)
    model.blocks[0].attn.hook_z.add_hook(lambda z, hook: z)
    return changes


def mean_ablation_of_two_layers(model, tokens):
    def ablate(z, head):
        z[:, :, head] = z[:, :, head].mean(dim=0, keepdim=True)
        return z

    return _loss_changes(model, tokens, ablate)[:2]


def _mean_ablation_through_results(model, tokens, restore):
    model.set_use_attn_result(True)
    try:
        clean = model(tokens, return_type="loss")
        changes = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
        for layer in range(model.cfg.n_layers):
            for head in range(model.cfg.n_heads):
                def hook(result, hook, head=head):
                    result = result.clone()
                    result[:, :, head] = result[:, :, head].mean(dim=0, keepdim=True)
                    return result

                ablated = model.run_with_hooks(tokens, return_type="loss",
                                               fwd_hooks=[(f"blocks.{layer}.attn.hook_result", hook)])
                changes[layer, head] = ablated - clean
    finally:
        if restore:
            model.set_use_attn_result(False)
    return changes


def mean_ablation_leaving_use_attn_result_on(model, tokens):
    return _mean_ablation_through_results(model, tokens, restore=False)


# ---- correct alternatives -----------------------------------------------------------------------------------------------
def describe_model_from_weight_shapes(model):
    weights = (model.W_Q, model.W_K, model.W_V, model.W_O, model.b_Q, model.b_K, model.b_V, model.b_O)
    cfg = model.cfg
    return {"n_layers": cfg.n_layers, "n_heads": cfg.n_heads, "d_model": cfg.d_model, "d_head": cfg.d_head,
            "d_vocab": cfg.d_vocab, "n_ctx": cfg.n_ctx, "attention_params": int(sum(w.numel() for w in weights))}


def describe_model_by_blocks(model):
    params = 0
    for block in model.blocks:
        params += sum(p.numel() for p in block.attn.parameters())
    return {key: getattr(model.cfg, key) for key in ("n_layers", "n_heads", "d_model", "d_head", "d_vocab", "n_ctx")} | {
        "attention_params": params}


def tokenize_strings_from_the_tokens(model, text):
    tokens = model.to_tokens(text)
    return tokens, model.to_str_tokens(tokens[0])


def tokenize_with_an_explicit_bos(model, text):
    tokens = model.to_tokens(text, prepend_bos=False)
    bos = torch.full((1, 1), model.tokenizer.bos_token_id, dtype=tokens.dtype)
    return torch.cat([bos, tokens], dim=1), [model.tokenizer.bos_token, *model.to_str_tokens(text, prepend_bos=False)]


def accuracy_in_float64(model, tokens):
    return (model(tokens).argmax(-1)[:, :-1] == tokens[:, 1:]).double().mean().item()


def accuracy_from_counts(model, tokens):
    correct = model(tokens)[:, :-1].argmax(-1).eq(tokens[:, 1:])
    return int(correct.sum()) / correct.numel()


def pattern_with_a_large_negative_mask(q, k):
    scores = torch.einsum("qhd,khd->hqk", q, k) / q.shape[-1] ** 0.5
    return scores.masked_fill(_causal_mask(q.shape[0]), -1e9).softmax(-1)


def pattern_with_matmul_and_tril(q, k):
    scores = q.permute(1, 0, 2) @ k.permute(1, 2, 0) / torch.tensor(q.shape[-1], dtype=q.dtype).sqrt()
    allowed = torch.ones(q.shape[0], q.shape[0], dtype=torch.bool).tril()
    return torch.where(allowed, scores, torch.tensor(float("-inf"))).softmax(dim=-1)


def current_scores_by_indexing(cache, n_layers):
    def score(p):
        seq = p.shape[-1]
        positions = torch.arange(1, seq)
        return p[:, :, positions, positions].mean(dim=(0, 2))

    return _per_layer(cache, n_layers, score)


def current_scores_with_a_mask(cache, n_layers):
    def score(p):
        seq = p.shape[-1]
        mask = torch.eye(seq)
        mask[0, 0] = 0
        return (p * mask).sum(dim=(-2, -1)).mean(0) / (seq - 1)

    return _per_layer(cache, n_layers, score)


def previous_scores_by_indexing(cache, n_layers):
    def score(p):
        queries = torch.arange(1, p.shape[-1])
        return p[:, :, queries, queries - 1].mean(dim=(0, 2))

    return _per_layer(cache, n_layers, score)


def previous_scores_with_a_shifted_eye(cache, n_layers):
    def score(p):
        seq = p.shape[-1]
        return (p * torch.diag(torch.ones(seq - 1), -1)).sum(dim=(-2, -1)).mean(0) / (seq - 1)

    return _per_layer(cache, n_layers, score)


def first_scores_summed_and_divided(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p[:, :, 1:, 0].sum(dim=(0, 2)) / (p.shape[0] * (p.shape[-1] - 1)))


def first_scores_in_float64(cache, n_layers):
    return _per_layer(cache, n_layers, lambda p: p[..., 1:, 0].double().mean(dim=(0, 2)))


def repeated_with_repeat(model, half_len, batch, generator, first_token):
    half = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    return torch.cat([half.new_full((batch, 1), model.tokenizer.bos_token_id), half.repeat(1, 2)], dim=1)


def repeated_with_tile(model, half_len, batch, generator, first_token):
    half = torch.randint(first_token, model.cfg.d_vocab, (batch, half_len), generator=generator)
    bos = model.to_tokens("", prepend_bos=True)[:, :1].expand(batch, 1).to(half.dtype)
    return torch.cat([bos, half.tile(1, 2)], dim=-1)


def loss_with_cross_entropy(logits, tokens):
    batch, seq, vocab = logits.shape
    return F.cross_entropy(logits[:, :-1].reshape(-1, vocab), tokens[:, 1:].reshape(-1), reduction="none").view(
        batch, seq - 1)


def loss_with_logsumexp(logits, tokens):
    logits = logits[:, :-1]
    return logits.logsumexp(-1) - logits.gather(-1, tokens[:, 1:, None])[..., 0]


def solution_induction_scores(model, tokens, half_len):
    return _stripe_scores(model, tokens, lambda p: p.diagonal(offset=1 - half_len, dim1=-2, dim2=-1)[..., -half_len:]
                          .mean(dim=(0, 2)))


def induction_by_indexing_per_layer(model, tokens, half_len):
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    queries = torch.arange(half_len + 1, 2 * half_len + 1)

    def hook_for(layer):
        def record(pattern, hook):
            scores[layer] = pattern[:, :, queries, queries - half_len + 1].mean(dim=(0, 2))
        return record

    hooks = [(f"blocks.{layer}.attn.hook_pattern", hook_for(layer)) for layer in range(model.cfg.n_layers)]
    model.run_with_hooks(tokens, return_type=None, fwd_hooks=hooks)
    return scores


def induction_with_the_hooks_context(model, tokens, half_len):
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)

    def record(pattern, hook):
        stripe = pattern.diagonal(offset=1 - half_len, dim1=-2, dim2=-1)
        scores[hook.layer()] = stripe[..., 2:].sum(dim=-1).mean(0) / half_len

    with model.hooks(fwd_hooks=[(lambda n: "hook_pattern" in n, record)]):
        model(tokens, return_type=None)
    return scores


def attribution_with_stack_head_results(model, cache, tokens):
    heads = cache.stack_head_results(layer=-1)  # [component, batch, pos, d_model], L0H0, L0H1, ...
    stack = torch.cat([cache["embed"][None], heads])
    if model.cfg.normalization_type is not None:
        stack = cache.apply_ln_to_stack(stack, layer=-1)
    directions = model.W_U[:, tokens[1:]]  # [d_model, seq-1]
    return torch.einsum("cpm,mp->pc", stack[:, 0, :-1], directions)


def attribution_through_full_logits(model, cache, tokens):
    n = tokens.shape[0] - 1
    parts = [cache["embed"][0, :n]]
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            parts.append(cache["z", layer][0, :n, head] @ model.W_O[layer, head])
    stack = torch.stack(parts, dim=1)
    if model.cfg.normalization_type == "LN":
        stack = (stack - stack.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][0, :n, None]
    logits = stack @ model.W_U  # [pos, component, d_vocab]
    return logits.gather(-1, tokens[1:, None, None].expand(-1, logits.shape[1], 1))[..., 0]


def zero_ablation_of_values(model, tokens):
    def zero_value(v, hook, head):
        v = v.clone()
        v[:, :, head] = 0.0
        return v

    clean = model(tokens, return_type="loss")
    changes = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            ablated = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[
                (f"blocks.{layer}.attn.hook_v", lambda v, hook, head=head: zero_value(v, hook, head))])
            changes[layer, head] = ablated - clean
    return changes


def zero_ablation_with_explicit_cross_entropy(model, tokens):
    def loss(logits):
        return F.cross_entropy(logits[:, :-1].flatten(0, 1), tokens[:, 1:].flatten())

    clean = loss(model(tokens))
    changes = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)
    for layer in range(model.cfg.n_layers):
        for head in range(model.cfg.n_heads):
            logits = model.run_with_hooks(tokens, fwd_hooks=[
                (f"blocks.{layer}.attn.hook_z", lambda z, hook, head=head: _zero(z.clone(), head))])
            changes[layer, head] = loss(logits) - clean
    return changes


def mean_ablation_through_results(model, tokens):
    return _mean_ablation_through_results(model, tokens, restore=True)


def mean_ablation_with_a_sum(model, tokens):
    def ablate(z, head):
        z[:, :, head] = z[:, :, head].sum(dim=0, keepdim=True) / z.shape[0]
        return z

    return _loss_changes(model, tokens, ablate)


SLIP, HARD_CODED, CONTRACT, AXIS = "numeric slip", "hard-coded value", "broken contract", "wrong axis or position"
WRONG_IMPLEMENTATIONS = [
    ("describe_model", describe_model_total_heads, SLIP, "output['n_heads']"),
    ("describe_model", describe_model_without_biases, SLIP, "output['attention_params']"),
    ("describe_model", describe_model_n_ctx_and_d_model_swapped, HARD_CODED, "keys 'd_model' and 'n_ctx' are swapped"),
    ("describe_model", describe_model_with_two_layers, HARD_CODED, "output['n_layers']: expected 4, got 2"),
    ("describe_model", describe_model_count_as_tensor, CONTRACT, "promises a Python int"),
    ("tokenize", tokenize_without_bos, AXIS, "wrong shape"),
    ("tokenize", tokenize_by_splitting_words, SLIP, "output[1]"),
    ("tokenize", tokenize_with_bos_zero, HARD_CODED, "got 0, expected 50"),
    ("tokenize", tokenize_as_lists, CONTRACT, "expected a tensor"),
    ("tokenize", tokenize_without_batch_dim, AXIS, "dimensions of size 1"),
    ("next_token_accuracy", accuracy_without_shift, AXIS, "position i + 1"),
    ("next_token_accuracy", accuracy_shifted_the_wrong_way, AXIS, "position i + 1"),
    ("next_token_accuracy", accuracy_with_a_hard_coded_count, HARD_CODED, "toy-gpt"),
    ("next_token_accuracy", accuracy_as_a_tensor, CONTRACT, "promises a Python float"),
    ("attention_pattern_from_qk", pattern_without_scale, SLIP, "no scale at all"),
    ("attention_pattern_from_qk", pattern_divided_by_d_head, SLIP, "divided by d_head itself"),
    ("attention_pattern_from_qk", pattern_without_causal_mask, SLIP, "-inf"),
    ("attention_pattern_from_qk", pattern_softmax_over_queries, AXIS, "key dimension"),
    ("attention_pattern_from_qk", pattern_scaled_by_a_hard_coded_d_head, HARD_CODED, "d_head 128"),
    ("attention_pattern_from_qk", pattern_scaling_q_in_place, CONTRACT, "modified its input 'q' in place"),
    ("current_token_scores", current_scores_including_position_0, AXIS, "skip query position 0"),
    ("current_token_scores", current_scores_one_below_the_diagonal, AXIS, "main diagonal"),
    ("current_token_scores", current_scores_of_two_layers, HARD_CODED, "wrong shape: expected (4, 4), got (2, 4)"),
    ("current_token_scores", current_scores_divided_by_seq, SLIP, "constant factor"),
    ("current_token_scores", current_scores_as_a_list, CONTRACT, "expected a tensor"),
    ("previous_token_scores", previous_scores_above_the_diagonal, AXIS, "offset=-1"),
    ("previous_token_scores", previous_scores_summed_over_positions, SLIP, "constant factor"),
    ("previous_token_scores", previous_scores_of_two_layers, HARD_CODED, "wrong shape: expected (4, 4), got (2, 4)"),
    ("previous_token_scores", previous_scores_as_numpy, CONTRACT, "torch.from_numpy"),
    ("first_token_scores", first_scores_including_position_0, AXIS, "query positions 1..seq-1"),
    ("first_token_scores", first_scores_to_the_last_key, AXIS, "key position 0"),
    ("first_token_scores", first_scores_of_two_layers, HARD_CODED, "wrong shape: expected (4, 4), got (2, 4)"),
    ("first_token_scores", first_scores_as_lists, CONTRACT, "expected a tensor"),
    ("first_token_scores", first_scores_averaged_over_heads_too, SLIP, "differ beyond the tolerance"),
    ("generate_repeated_tokens", repeated_without_bos, AXIS, "wrong shape"),
    ("generate_repeated_tokens", repeated_with_two_draws, SLIP, "the same half again"),
    ("generate_repeated_tokens", repeated_from_the_whole_vocabulary, HARD_CODED, "torch.randint(first_token"),
    ("generate_repeated_tokens", repeated_with_bos_zero, HARD_CODED, "got 0, expected 50"),
    ("generate_repeated_tokens", repeated_as_int32, CONTRACT, "dtype torch.int32"),
    ("per_token_loss", loss_from_raw_logits, SLIP, "log_softmax"),
    ("per_token_loss", loss_of_the_current_token, AXIS, "tokens[:, 1:]"),
    ("per_token_loss", log_probs_instead_of_loss, SLIP, "sign flipped"),
    ("per_token_loss", loss_over_a_hard_coded_vocabulary, HARD_CODED, "toy-gpt (d_vocab 296)"),
    ("per_token_loss", loss_averaged_over_positions, CONTRACT, "fewer dimensions"),
    ("induction_scores", induction_attending_to_the_first_occurrence, AXIS, "one key before the induction stripe"),
    ("induction_scores", induction_one_key_after_the_stripe, AXIS, "one key after the induction stripe"),
    ("induction_scores", induction_over_the_whole_stripe, AXIS, "last half_len entries"),
    ("induction_scores", induction_with_half_len_20, HARD_CODED, "half_len 7"),
    ("induction_scores", induction_from_a_cache, CONTRACT, "run_with_cache"),
    ("induction_scores", induction_from_a_hand_built_cache, CONTRACT, "a cache built by hand"),
    ("induction_scores", induction_leaving_its_hooks, CONTRACT, "left hooks attached"),
    ("induction_scores", induction_leaving_use_attn_result_on, CONTRACT, "use_attn_result: False -> True"),
    ("direct_logit_attribution", attribution_to_the_current_token, AXIS, "the logits at position i predict the token "
                                                                         "at position i + 1"),
    ("direct_logit_attribution", attribution_with_heads_in_head_major_order, AXIS, "another order along dim 1"),
    ("direct_logit_attribution", attribution_with_the_sign_flipped, SLIP, "sign flipped"),
    ("direct_logit_attribution", attribution_ignoring_layernorm, HARD_CODED, "toy-gpt (LayerNorm"),
    ("direct_logit_attribution", attribution_transposed, CONTRACT, "permuted as (1, 0)"),
    ("zero_ablation_loss_change", zero_ablation_clean_minus_ablated, SLIP, "sign flipped"),
    ("zero_ablation_loss_change", zero_ablation_of_the_whole_layer, AXIS, "only z[:, :, head]"),
    ("zero_ablation_loss_change", zero_ablation_of_two_layers, HARD_CODED, "wrong shape: expected (4, 4), got (2, 4)"),
    ("zero_ablation_loss_change", zero_ablation_leaving_a_hook, CONTRACT, "left hooks attached"),
    ("mean_ablation_loss_change", mean_ablation_over_positions, AXIS, "not over positions"),
    ("mean_ablation_loss_change", mean_ablation_with_zeros, SLIP, "mean over the batch"),
    ("mean_ablation_loss_change", mean_ablation_of_two_layers, HARD_CODED, "wrong shape: expected (4, 4), got (2, 4)"),
    ("mean_ablation_loss_change", mean_ablation_leaving_use_attn_result_on, CONTRACT, "use_attn_result"),
]

DIAGNOSED = {wrong.__name__ for wrong in (
    pattern_without_scale, pattern_divided_by_d_head, induction_attending_to_the_first_occurrence,
    induction_one_key_after_the_stripe, attribution_to_the_current_token)}

CORRECT_ALTERNATIVES = [
    ("describe_model", describe_model_from_weight_shapes),
    ("describe_model", describe_model_by_blocks),
    ("tokenize", tokenize_strings_from_the_tokens),
    ("tokenize", tokenize_with_an_explicit_bos),
    ("next_token_accuracy", accuracy_in_float64),
    ("next_token_accuracy", accuracy_from_counts),
    ("attention_pattern_from_qk", pattern_with_a_large_negative_mask),
    ("attention_pattern_from_qk", pattern_with_matmul_and_tril),
    ("current_token_scores", current_scores_by_indexing),
    ("current_token_scores", current_scores_with_a_mask),
    ("previous_token_scores", previous_scores_by_indexing),
    ("previous_token_scores", previous_scores_with_a_shifted_eye),
    ("first_token_scores", first_scores_summed_and_divided),
    ("first_token_scores", first_scores_in_float64),
    ("generate_repeated_tokens", repeated_with_repeat),
    ("generate_repeated_tokens", repeated_with_tile),
    ("per_token_loss", loss_with_cross_entropy),
    ("per_token_loss", loss_with_logsumexp),
    ("induction_scores", induction_by_indexing_per_layer),
    ("induction_scores", induction_with_the_hooks_context),
    ("direct_logit_attribution", attribution_with_stack_head_results),
    ("direct_logit_attribution", attribution_through_full_logits),
    ("zero_ablation_loss_change", zero_ablation_of_values),
    ("zero_ablation_loss_change", zero_ablation_with_explicit_cross_entropy),
    ("mean_ablation_loss_change", mean_ablation_through_results),
    ("mean_ablation_loss_change", mean_ablation_with_a_sum),
]


@pytest.mark.parametrize("exercise, wrong, kind, phrase", WRONG_IMPLEMENTATIONS,
                         ids=[wrong.__name__ for _, wrong, _, _ in WRONG_IMPLEMENTATIONS])
def test_grading_rejects_wrong_implementation(exercise, wrong, kind, phrase):
    outcome = grade(wrong, name=exercise, device="cpu")
    assert outcome.status == "failed", f"{wrong.__name__} was graded {outcome.status!r}: {outcome.message}"
    text = f"{outcome.message}\n{all_hints(outcome)}"
    assert phrase in text, f"message does not point at the mistake ({phrase!r}):\n{text}"
    if wrong.__name__ in DIAGNOSED:  # named by the check's declared mistakes, in the diagnosis itself, not a hint
        assert phrase in outcome.message, outcome.message
    if kind != CONTRACT:
        assert outcome.hint, "a wrong value comes with the course's hint"  # a contract broken on the right values has no numeric margin; it fails whatever the numbers
        margin = case_margin(wrong, exercise, outcome.case, device="cpu")  # the case that rejected it
        assert margin >= WRONG_MARGIN, f"{wrong.__name__} fails case {outcome.case!r} by a margin of only {margin:.3g}"


@pytest.mark.parametrize("exercise, correct", CORRECT_ALTERNATIVES,
                         ids=[correct.__name__ for _, correct in CORRECT_ALTERNATIVES])
def test_grading_accepts_correct_alternative(exercise, correct):
    outcome = grade(correct, name=exercise, device="cpu")
    assert outcome.status == "passed", f"{correct.__name__}: {outcome.status}: {outcome.message}"
    found = margins(correct, exercise, device="cpu")
    assert max(found.values()) <= CORRECT_MARGIN, f"{correct.__name__} passes too narrowly: {found}"


def test_every_day1_exercise_has_four_kinds_of_wrong_implementation_and_two_correct_ones():
    from checks.specs.day1 import CHECKS

    for check in CHECKS:
        wrong = [entry for entry in WRONG_IMPLEMENTATIONS if entry[0] == check.name]
        assert len(wrong) >= 4 and len({kind for _, _, kind, _ in wrong}) >= 3, (check.name, wrong)
        assert sum(exercise == check.name for exercise, _ in CORRECT_ALTERNATIVES) >= 2, check.name
