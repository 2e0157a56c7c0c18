"""The synthetic language of `induction-2l`: a corpus in which hard induction pays, most of all after "names".

Vocabulary (VOCAB): id 0 is BOS_WORD, then N_WORDS made-up lowercase words ("bako", "tirem", ...), then
N_NAMES capitalised made-up names ("Zorvi", ...). Every sequence starts with BOS and has SEQ_LEN tokens.

A training sequence is one of two kinds:
- a *story* (1 - repeat_fraction of the batch): text of a fixed language over the lowercase words in which each word
  is drawn from the BIGRAM_BRANCHING likely successors of the word LAG = 2 places back (two interleaved bigram
  chains: the previous token predicts the next, which makes a previous-token head pay early). A few names are
  introduced, each always followed by the same randomly chosen word within that story ("Zorvi kelu ... Zorvi
  kelu"), and one span of the story is repeated verbatim later on. The word after a name is unpredictable the
  first time and certain from the second time on: only induction predicts it. These names are
  INDUCTION_CANDIDATES, the tokens for which induction pays most (day 3).
- a *repeat* (repeat_fraction of the batch): random tokens (words and names), the same block repeated until the
  sequence is full (block lengths vary), which makes induction pay from the first steps of training.

`held_out_stories` gives stories from a seed never used in training; `unigram_entropy` the entropy of the stories'
word distribution, the loss of the best model that ignores context.

Design notes, from CPU runs of the induction-2l recipe: with a plain bigram language (next word predicted by the
current one) and 25-50% repeated blocks, no previous-token head formed in 800 steps; with LAG = 2 one formed within
300 and induction on repeated lowercase words followed by step 1000. Repeat blocks drawn from lowercase words only
gave induction that failed on sequences containing names, hence names in the blocks.

Why the shipped model's previous-token head works in the first 64 positions only: with every first copy there (blocks
of at most 63 tokens, spans copied from the first half of a story), induction never needs a previous-token head
later, and stories do not need one either (their LAG-2 structure is served by layer-1 heads). Measured on 127-token
repeated sequences (chunks of 16 positions), the shipped model's L0H0 scores 1.0, 1.0, 1.0, 0.90, 0.47, 0.35, 0.36,
0.36 and its second-copy loss is 0.48, 0.42, 0.40, 1.75 nats. `late_copies` puts first copies anywhere (December 2026,
seed 0, CPU):
- from scratch on `late_copy_batch` (2500 steps): no layer-0 previous-token head formed at all (the layer-1 heads
  became previous-token heads in stories; no induction head; training loss 3.9 against 2.0);
- fine-tuning the shipped weights on it (AdamW lr 1e-3, 800 steps, prefix anywhere in the room left): L0H0 0.86 in
  64-79 but 0.39-0.49 after; second-copy loss 1.27, 0.74, 0.58, 0.54 (worse in the first half);
- the same with half the repeated rows left without a prefix and prefixes in the upper half (1200 steps): L0H0 1.0 to
  position 63, 0.97 in 64-79, then 0.52, 0.49, 0.41; second-copy loss 0.85, 0.65, 0.59, 0.56; induction score on the
  card's 50-token probe 0.65 against 0.81.
Neither met 0.9 per chunk, and both made induction worse where the shipped model is good, so the shipped model stays.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from jaxtyping import Bool, Int
from torch import Tensor

SEQ_LEN = 128
N_WORDS = 160
N_NAMES = 32
BOS_WORD = "<bos>"
BOS_TOKEN = 0
FIRST_WORD_TOKEN = 1
FIRST_NAME_TOKEN = FIRST_WORD_TOKEN + N_WORDS
D_VOCAB = 1 + N_WORDS + N_NAMES

BIGRAM_BRANCHING = 4
BIGRAM_PROBS = (0.5, 0.25, 0.15, 0.1)
LAG = 2
"""A word is predicted by the word LAG places back: with LAG 2 a previous-token head pays from the start."""
LANGUAGE_SEED = 1234
"""Seeds the (fixed) word spellings and bigram table: the language itself, not the samples."""
HELD_OUT_SEED = 987_654_321
"""Seed of held-out stories; training draws from seeds far from it."""

DEFAULT_REPEAT_FRACTION = 0.5
NAMES_PER_STORY = (2, 5)
MENTIONS_PER_NAME = (2, 4)
REPEATED_SPAN_LEN = (8, 24)
REPEAT_BLOCK_LEN = (8, 63)

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


def _made_up_words(count: int, generator: torch.Generator, syllables: int) -> list[str]:
    """Distinct pronounceable words of `syllables` consonant-vowel syllables (optionally ending in a consonant)."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < count:
        picks = torch.randint(0, 1000, (2 * syllables + 1,), generator=generator).tolist()
        word = "".join(_CONSONANTS[picks[2 * i] % 14] + _VOWELS[picks[2 * i + 1] % 5] for i in range(syllables))
        if picks[-1] % 3 == 0:
            word += _CONSONANTS[picks[-1] % 14]
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@lru_cache(maxsize=1)
def _language() -> tuple[tuple[str, ...], Tensor]:
    """The vocabulary and the bigram successor table [N_WORDS, BIGRAM_BRANCHING] (word token ids)."""
    generator = torch.Generator().manual_seed(LANGUAGE_SEED)
    words = _made_up_words(N_WORDS + N_NAMES, generator, syllables=2)
    lowercase, names = words[:N_WORDS], [w.capitalize() for w in words[N_WORDS:]]
    successors = torch.stack(
        [torch.randperm(N_WORDS, generator=generator)[:BIGRAM_BRANCHING] for _ in range(N_WORDS)]
    )
    vocab = (BOS_WORD, *lowercase, *names)
    return vocab, successors + FIRST_WORD_TOKEN


VOCAB: list[str] = list(_language()[0])
"""The word of each token id of induction-2l."""
INDUCTION_CANDIDATES: list[int] = list(range(FIRST_NAME_TOKEN, D_VOCAB))
"""Token ids of the names: after them, only induction predicts the next token."""
INDUCTION_CANDIDATE_WORDS: list[str] = VOCAB[FIRST_NAME_TOKEN:]


def induction_candidate_mask() -> Bool[Tensor, "d_vocab"]:
    """True at the token ids of INDUCTION_CANDIDATES (the `good_induction_candidate` table of day 3)."""
    mask = torch.zeros(D_VOCAB, dtype=torch.bool)
    mask[INDUCTION_CANDIDATES] = True
    return mask


def _bigram_text(batch: int, length: int, generator: torch.Generator) -> Int[Tensor, "batch length"]:
    """Samples of the language: each word is drawn from the successors of the word two places back (two
    interleaved bigram chains), so the previous token, not the current one, predicts the next."""
    successors = _language()[1]
    probs = torch.tensor(BIGRAM_PROBS)
    tokens = torch.empty(batch, length, dtype=torch.long)
    tokens[:, :LAG] = torch.randint(FIRST_WORD_TOKEN, FIRST_NAME_TOKEN, (batch, LAG), generator=generator)
    choices = torch.multinomial(probs, batch * length, replacement=True, generator=generator).view(batch, length)
    for pos in range(LAG, length):
        tokens[:, pos] = successors[tokens[:, pos - LAG] - FIRST_WORD_TOKEN, choices[:, pos]]
    return tokens


def _randint(bounds: tuple[int, int], generator: torch.Generator) -> int:
    """A uniform integer in the inclusive range `bounds`."""
    return int(torch.randint(bounds[0], bounds[1] + 1, (1,), generator=generator))


def _add_names_and_repeat(story: Int[Tensor, "seq"], generator: torch.Generator, late_copies: bool = False) -> None:
    """In place: introduce names with a fixed follower each, then repeat one span verbatim later on. The span's
    first copy starts in the first half of the story, or, with `late_copies`, anywhere that leaves room for the
    repeat after it."""
    body = story[1:]  # never touch BOS
    n_names = _randint(NAMES_PER_STORY, generator)
    names = torch.randperm(N_NAMES, generator=generator)[:n_names] + FIRST_NAME_TOKEN
    followers = torch.randint(FIRST_WORD_TOKEN, FIRST_NAME_TOKEN, (n_names,), generator=generator)
    # Mentions sit at even offsets of disjoint 2-token slots, so no mention overwrites another.
    slots = torch.randperm(len(body) // 2 - 1, generator=generator)
    used = 0
    for name, follower in zip(names.tolist(), followers.tolist()):
        for slot in slots[used : used + _randint(MENTIONS_PER_NAME, generator)].tolist():
            body[2 * slot], body[2 * slot + 1] = name, follower
        used += MENTIONS_PER_NAME[1]
    # Even lengths and offsets copy whole slots onto whole slots, so every name keeps its single follower.
    span = 2 * _randint((REPEATED_SPAN_LEN[0] // 2, REPEATED_SPAN_LEN[1] // 2), generator)
    last_source = (len(body) - 2 * span) // 2 if late_copies else (len(body) // 2 - span) // 2
    source = 2 * _randint((0, last_source), generator)
    target = 2 * _randint(((source + span + 1) // 2, (len(body) - span) // 2), generator)
    body[target : target + span] = body[source : source + span].clone()


def _repeat_block(length: int, generator: torch.Generator, late_copies: bool = False) -> Int[Tensor, "length"]:
    """Random words and names (every token but BOS), one block repeated until `length` tokens; with `late_copies`,
    after a random prefix of (length - 2 * block_len) / 2 to length - 2 * block_len tokens, so that the block's first
    copy sits in the second half of the places it can start.

    Without a prefix every first copy lies in the first REPEAT_BLOCK_LEN[1] positions, and induction never needs a
    previous-token head after them.
    """
    block_len = _randint(REPEAT_BLOCK_LEN, generator)
    room = length - 2 * block_len
    prefix_len = _randint((room // 2, room), generator) if late_copies else 0
    prefix = torch.randint(FIRST_WORD_TOKEN, D_VOCAB, (prefix_len,), generator=generator)
    block = torch.randint(FIRST_WORD_TOKEN, D_VOCAB, (block_len,), generator=generator)
    return torch.cat([prefix, block.repeat(length // block_len + 1)])[:length]


def stories(batch: int, generator: torch.Generator, late_copies: bool = False) -> Int[Tensor, "batch seq"]:
    """`batch` stories of SEQ_LEN tokens (BOS first): bigram text with names and one repeated span."""
    tokens = torch.cat([torch.full((batch, 1), BOS_TOKEN), _bigram_text(batch, SEQ_LEN - 1, generator)], dim=1)
    for story in tokens:
        _add_names_and_repeat(story, generator, late_copies)
    return tokens


def induction_corpus_batch(
    batch: int, generator: torch.Generator, repeat_fraction: float = DEFAULT_REPEAT_FRACTION, late_copies: bool = False
) -> Int[Tensor, "batch seq"]:
    """A training batch: stories, with a `repeat_fraction` share of repeated random blocks (rows shuffled). With
    `late_copies`, first copies of repeated spans and blocks can start anywhere in the context."""
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    if not 0.0 <= repeat_fraction <= 1.0:
        raise ValueError(f"repeat_fraction must lie in [0, 1], got {repeat_fraction}")
    n_repeats = round(batch * repeat_fraction)
    tokens = stories(batch, generator, late_copies)
    for i, row in enumerate(torch.randperm(batch, generator=generator)[:n_repeats].tolist()):
        # With late_copies, every other repeated row still starts its block at position 1: the positions the first
        # phase trained stay trained.
        tokens[row, 1:] = _repeat_block(SEQ_LEN - 1, generator, late_copies and i % 2 == 0)
    return tokens


def late_copy_batch(batch: int, generator: torch.Generator) -> Int[Tensor, "batch seq"]:
    """The training mixture with first copies anywhere in the context (the retraining attempts in the notes)."""
    return induction_corpus_batch(batch, generator, late_copies=True)


def held_out_stories(batch: int = 64) -> Int[Tensor, "batch seq"]:
    """Stories drawn from HELD_OUT_SEED, a seed no training run uses: the held-out text of the corpus."""
    return stories(batch, torch.Generator().manual_seed(HELD_OUT_SEED))


def unigram_entropy(n_sequences: int = 512) -> float:
    """Entropy (nats) of the word distribution of stories (after BOS), estimated on `n_sequences` held-out stories."""
    tokens = stories(n_sequences, torch.Generator().manual_seed(HELD_OUT_SEED + 1))[:, 1:]
    counts = torch.bincount(tokens.flatten(), minlength=D_VOCAB).double()
    probs = counts[counts > 0] / counts.sum()
    return float(-(probs * probs.log()).sum())


def decode(tokens: Int[Tensor, "seq"]) -> str:
    """The words of a token sequence, space-separated (for looking at samples without a model)."""
    return " ".join(VOCAB[t] for t in tokens.tolist())


assert math.isclose(sum(BIGRAM_PROBS), 1.0) and len(BIGRAM_PROBS) == BIGRAM_BRANCHING
