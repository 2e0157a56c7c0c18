"""Recipe of `induction-2l` (days 1-3): a 2-layer attention-only shortformer model with induction heads."""

from __future__ import annotations

import math
from typing import Any

import torch
from transformer_lens import HookedTransformer

from curriculum.data import induction_corpus as corpus
from curriculum.data.repeated_tokens import repeated_tokens
from curriculum.models import measure as m
from curriculum.models.recipes import Bar, Recipe

EVAL_SEED = 31_337
EVAL_BATCH = 64
HALF_LEN = 50
HEAD_THRESHOLD = 0.3
"""Heads listed as previous-token or induction heads score at least this."""


@torch.no_grad()
def measure(model: HookedTransformer) -> dict[str, Any]:
    """Repeated-token losses and head scores on 64 fresh sequences of BOS + 50 random tokens repeated twice,
    and the loss on held-out stories against the corpus's unigram entropy."""
    generator = torch.Generator().manual_seed(EVAL_SEED)
    tokens = repeated_tokens(
        EVAL_BATCH, HALF_LEN, corpus.D_VOCAB, generator, bos_token=corpus.BOS_TOKEN, first_token=1
    )
    losses = m.next_token_losses(model, tokens)  # position i predicts token i + 1
    patterns = m.attention_patterns(model, tokens)
    prev_scores = m.previous_token_scores(patterns)
    ind_scores = m.induction_scores(patterns, HALF_LEN)
    stories = corpus.held_out_stories(EVAL_BATCH)
    story_losses = m.next_token_losses(model, stories)
    after_candidate = corpus.induction_candidate_mask()[stories[:, :-1]]
    first_half = losses[:, :HALF_LEN].mean().item()
    unigram = corpus.unigram_entropy()
    return {
        "repeated_first_half_loss": first_half,
        "repeated_first_half_loss_over_ln_vocab": first_half / math.log(corpus.D_VOCAB),
        "repeated_second_half_loss": losses[:, HALF_LEN:].mean().item(),
        "max_previous_token_score_layer0": prev_scores[0].max().item(),
        "max_induction_score_layer1": ind_scores[1].max().item(),
        "previous_token_heads": m.heads_above(prev_scores, HEAD_THRESHOLD),
        "induction_heads": m.heads_above(ind_scores, HEAD_THRESHOLD),
        "held_out_story_loss": story_losses.mean().item(),
        "unigram_entropy": unigram,
        "held_out_loss_over_unigram_entropy": story_losses.mean().item() / unigram,
        "held_out_loss_after_candidates": story_losses[after_candidate].mean().item(),
    }


RECIPE = Recipe(
    name="induction-2l",
    config=dict(
        n_layers=2,
        n_heads=4,
        d_model=128,
        d_head=32,
        n_ctx=corpus.SEQ_LEN,
        d_vocab=corpus.D_VOCAB,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="shortformer",
        act_fn=None,
        default_prepend_bos=True,
    ),
    vocab=corpus.VOCAB,
    bos_word=corpus.BOS_WORD,
    sample_batch=corpus.induction_corpus_batch,
    loss=m.mean_cross_entropy,
    measure=measure,
    bars=(
        Bar("repeated_second_half_loss", maximum=1.0),
        Bar("repeated_first_half_loss_over_ln_vocab", minimum=0.8),
        Bar("max_previous_token_score_layer0", minimum=0.5),
        Bar("max_induction_score_layer1", minimum=0.5),
        Bar("held_out_loss_over_unigram_entropy", maximum=0.75),
    ),
    description=f"""\
The induction model of days 1-3: 2 layers of attention only (4 heads each, d_model 128, d_head 32), shortformer
positional embeddings (positions enter queries and keys, never the residual stream), and no LayerNorm, so that every
circuit is a plain product of weight matrices. Context {corpus.SEQ_LEN} tokens; vocabulary {corpus.D_VOCAB} words:
`<bos>` (id 0), {corpus.N_WORDS} made-up lowercase words and {corpus.N_NAMES} made-up capitalised names.

Trained on the synthetic language of `curriculum.data.induction_corpus` (`induction_corpus_batch`):
{1 - corpus.DEFAULT_REPEAT_FRACTION:.0%} *stories* and {corpus.DEFAULT_REPEAT_FRACTION:.0%} blocks of random words
and names repeated until the context is full. In a story each word is drawn from the {corpus.BIGRAM_BRANCHING} likely
successors of the word two places back (so a previous-token head pays from the first steps); 2-5 names each appear
2-4 times, always followed by the same random word within the story; and one span of 8-24 words is repeated verbatim
later on. The names are the `INDUCTION_CANDIDATES` of day 3: after a name, only induction predicts the next word.

Repeated-token figures: 64 sequences of `<bos>` + 50 random non-BOS tokens repeated twice (seed {EVAL_SEED});
loss on the first half is over the predictions of tokens 1-50, on the second half over tokens 51-100 (the first of
these, the start of the repeat, cannot be predicted). Previous-token score: mean attention to the previous position;
induction score: mean attention from each position of the repeat to the token after the earlier occurrence of its
token. Held-out text: stories from `held_out_stories()` (a seed no training run uses).

Tokens: `model.to_tokens(text)` prepends `<bos>`; text is split on whitespace and a word outside the vocabulary is an
error. `model.to_str_tokens` reads tokens back as words.
""",
    steps=2500,
    batch_size=32,
    lr=2e-3,
    weight_decay=0.01,
    warmup_steps=100,
    seed=0,
)
