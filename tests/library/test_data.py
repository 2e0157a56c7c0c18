"""The course's data generators: shapes, token ranges, task structure, held-out splits and determinism."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from curriculum.data import array_indexing as arr
from curriculum.data import induction_corpus as corpus
from curriculum.data import ioi, number_sequences, toy_corpus, toy_vocab
from curriculum.data.repeated_tokens import repeated_tokens
from curriculum.models.recipes import array_indexing_data as arr_training


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# Determinism: every generator gives the same output for the same seed, and a different one for another seed.
SAMPLERS = {
    "repeated_tokens": lambda g: repeated_tokens(4, 10, 100, g),
    "array_indexing": lambda g: arr_training.array_indexing_batch(16, g),
    "induction_corpus": lambda g: corpus.induction_corpus_batch(8, g),
    "ioi": lambda g: ioi.ioi_prompts(8, g).tokens,
    "number_sequences": lambda g: number_sequences.number_sequences(8, 5, g).tokens,
    "toy_corpus": lambda g: toy_corpus.toy_gpt_batch(16, g),
}


@pytest.mark.parametrize("name", SAMPLERS)
def test_generators_are_deterministic_and_ignore_global_rng(name):
    sample = SAMPLERS[name]
    torch.manual_seed(1)
    first = sample(gen(7))
    torch.manual_seed(2)
    assert torch.equal(first, sample(gen(7)))
    assert not torch.equal(first, sample(gen(8)))


def test_repeated_tokens_repeat_and_skip_special_tokens():
    tokens = repeated_tokens(32, 20, 50, gen(), bos_token=0, first_token=1)
    assert tokens.shape == (32, 41)
    assert (tokens[:, 0] == 0).all()
    assert torch.equal(tokens[:, 1:21], tokens[:, 21:])
    assert tokens[:, 1:].min() >= 1 and tokens.max() < 50
    with pytest.raises(ValueError):
        repeated_tokens(2, 5, 10, gen(), first_token=10)


def test_array_indexing_examples_follow_the_task():
    tokens = arr_training.array_indexing_batch(2000, gen())
    assert tokens.shape == (2000, 11)
    assert (tokens[:, 0] == arr.BOS_TOKEN).all()
    assert (tokens[:, 4] == arr.NL_TOKEN).all() and (tokens[:, 7] == arr.NL_TOKEN).all()
    array, idx, elt, answer = tokens[:, 1:4], tokens[:, 5], tokens[:, 6], tokens[:, 8:]
    expected = array.clone()
    expected[torch.arange(2000), idx] = elt
    assert torch.equal(answer, expected)
    assert set(idx.tolist()) == {0, 1, 2}, "idx is drawn per example"
    assert len(set(elt.tolist())) == arr.MAX_NUM, "elt is drawn per example"


def test_the_learner_facing_array_module_holds_the_constants_only():
    """The sampler, the loss and the accuracy are day 4's exercises: their code lives in the recipe, not here."""
    assert not any(hasattr(arr, name) for name in ("array_indexing_batch", "array_indexing_loss",
                                                   "array_indexing_accuracy"))


def test_array_indexing_loss_is_cross_entropy_at_the_answer_positions():
    tokens = arr_training.array_indexing_batch(8, gen())
    logits = torch.randn(8, 11, arr.MAX_NUM, generator=gen(1))
    manual = torch.stack(
        [F.cross_entropy(logits[:, pos].double(), tokens[:, pos + 1]) for pos in arr.ANSWER_POSITIONS]
    ).mean()
    assert arr_training.array_indexing_loss(logits, tokens).item() == pytest.approx(manual.item())
    perfect = F.one_hot(tokens[:, 1:].clamp(max=arr.MAX_NUM - 1), arr.MAX_NUM).float() * 100
    perfect = torch.cat([perfect, torch.zeros(8, 1, arr.MAX_NUM)], dim=1)
    assert arr_training.array_indexing_accuracy(perfect, tokens).tolist() == [1.0, 1.0, 1.0]


def test_induction_corpus_names_keep_their_follower_within_a_story():
    stories = corpus.stories(64, gen())
    assert stories.shape == (64, corpus.SEQ_LEN) and (stories[:, 0] == corpus.BOS_TOKEN).all()
    candidates = set(corpus.INDUCTION_CANDIDATES)
    mentions = 0
    for story in stories.tolist():
        followers: dict[int, set[int]] = {}
        for token, nxt in zip(story, story[1:]):
            if token in candidates:
                followers.setdefault(token, set()).add(nxt)
        mentions += len(followers)
        assert all(len(f) == 1 for f in followers.values())
    assert mentions >= 2 * 64


def test_induction_corpus_vocabulary_and_candidates():
    assert len(corpus.VOCAB) == corpus.D_VOCAB == len(set(corpus.VOCAB))
    assert corpus.VOCAB[corpus.BOS_TOKEN] == "<bos>"
    assert all(corpus.VOCAB[t][0].isupper() for t in corpus.INDUCTION_CANDIDATES)
    assert corpus.induction_candidate_mask().sum() == corpus.N_NAMES
    batch = corpus.induction_corpus_batch(40, gen(), repeat_fraction=0.5)
    assert batch.max() < corpus.D_VOCAB and (batch[:, 1:] != corpus.BOS_TOKEN).all()


def _latest_first_copy(row: torch.Tensor, min_len: int = 8) -> int:
    """The latest position at which a span of at least `min_len` tokens starts that the row repeats later on."""
    latest = -1
    for lag in range(min_len, len(row) // 2 + 1):
        same = (row[lag:] == row[:-lag]).tolist()  # same[i]: token i + lag repeats token i
        run = 0
        for i, match in enumerate(same):
            run = run + 1 if match else 0
            if run == min_len:
                latest = max(latest, i - min_len + 1)
    return latest


def test_induction_corpus_puts_first_copies_across_the_whole_context():
    """Induction needs a previous-token head wherever a first copy can sit: repeated blocks start anywhere (after a
    random prefix), not only in the first 64 positions (the cause of a previous-token head that worked only there)."""
    repeats = corpus.induction_corpus_batch(128, gen(), repeat_fraction=1.0, late_copies=True)
    latest = [_latest_first_copy(row) for row in repeats]
    assert min(latest) >= 1  # every row repeats a block
    assert sum(start > 64 for start in latest) > 0.05 * len(latest)  # about 10% of rows; none without late_copies


def test_induction_corpus_unigram_entropy_is_well_below_uniform():
    entropy = corpus.unigram_entropy(64)
    assert 4.0 < entropy < math.log(corpus.N_WORDS + corpus.N_NAMES)


def test_ioi_prompts_have_fixed_positions_and_the_right_answers():
    prompts = ioi.ioi_prompts(50, gen(), split="train")
    assert prompts.tokens.shape == (50, ioi.PROMPT_LEN)
    rows = torch.arange(50)
    assert torch.equal(prompts.tokens[rows, prompts.io_positions], prompts.io_tokens)
    assert torch.equal(prompts.tokens[rows, prompts.s1_positions], prompts.s_tokens)
    assert torch.equal(prompts.tokens[:, ioi.S2_POSITION], prompts.s_tokens)
    assert (prompts.io_tokens != prompts.s_tokens).all()
    assert prompts.is_abba.sum() == 25, "mixed order alternates ABBA and BABA"
    assert all(text.endswith(" to") for text in prompts.texts())


def test_ioi_held_out_split_shares_no_name_pair_or_frame_with_training():
    def pairs_and_frames(prompts):
        names = {toy_vocab.TOKEN_ID[n]: i for i, n in enumerate(toy_vocab.NAMES)}
        places = {toy_vocab.TOKEN_ID[p]: i for i, p in enumerate(toy_vocab.PLACES)}
        objects = {toy_vocab.TOKEN_ID[o]: i for i, o in enumerate(toy_vocab.OBJECTS)}
        pairs = {frozenset((names[a], names[b])) for a, b in zip(prompts.io_tokens.tolist(), prompts.s_tokens.tolist())}
        frames = {
            (t, places[p], objects[o])
            for t, p, o in zip(
                prompts.templates.tolist(),
                prompts.tokens[:, ioi.PLACE_POSITION].tolist(),
                prompts.tokens[:, ioi.OBJECT_POSITION].tolist(),
            )
        }
        return pairs, frames

    train_pairs, train_frames = pairs_and_frames(ioi.ioi_prompts(400, gen(), split="train"))
    held_pairs, held_frames = pairs_and_frames(ioi.ioi_prompts(400, gen(), split="held_out"))
    assert not train_pairs & held_pairs and not train_frames & held_frames
    assert len(held_pairs) > 20 and len(held_frames) > 20
    all_pairs = list(itertools.combinations(range(len(toy_vocab.NAMES)), 2))
    assert 0.1 < sum(ioi.held_out_pair(a, b) for a, b in all_pairs) / len(all_pairs) < 0.3


def test_number_sequences_are_arithmetic_and_held_out():
    seqs = number_sequences.number_sequences(100, 6, gen(), split="held_out")
    numbers = torch.cat([seqs.tokens[:, 1:], seqs.answers[:, None]], dim=1) - toy_vocab.NUMBER_OFFSET
    steps = numbers.diff(dim=1)
    assert (steps == steps[:, :1]).all() and (steps >= 1).all() and numbers.max() <= toy_vocab.MAX_NUMBER
    starts_and_steps = zip(numbers[:, 0].tolist(), steps[:, 0].tolist())
    assert all(number_sequences.held_out_progression(start, step) for start, step in starts_and_steps)
    assert seqs.texts()[0].split()[0] == str(numbers[0, 0].item())


def test_toy_corpus_rows_use_only_the_training_splits():
    batch = toy_corpus.toy_gpt_batch(256, gen())
    assert batch.shape == (256, toy_corpus.ROW_LEN) and (batch[:, 0] == toy_vocab.BOS_TOKEN).all()
    assert batch.max() < toy_vocab.D_VOCAB
    number_rows = batch[:, 1] >= toy_vocab.NUMBER_OFFSET
    for row in batch[number_rows].tolist():
        start, second = row[1] - toy_vocab.NUMBER_OFFSET, row[2] - toy_vocab.NUMBER_OFFSET
        assert not number_sequences.held_out_progression(start, second - start)
    logits = torch.zeros(256, toy_corpus.ROW_LEN, toy_vocab.D_VOCAB)
    assert toy_corpus.toy_gpt_loss(logits, batch).item() == pytest.approx(math.log(toy_vocab.D_VOCAB))


def test_vocabularies_decode_as_words():
    assert toy_vocab.decode(toy_vocab.encode("Mary gave a ring to 17")) == "Mary gave a ring to 17"
    assert toy_vocab.VOCAB[toy_vocab.NUMBER_OFFSET + 17] == "17"
    with pytest.raises(ValueError, match="not in the toy-gpt vocabulary"):
        toy_vocab.encode("Mary gave a unicorn")
    assert corpus.decode(corpus.stories(1, gen())[0]).startswith("<bos> ")
    assert arr.VOCAB[arr.BOS_TOKEN] == "BOS" and arr.VOCAB[arr.NL_TOKEN] == "NL"


def test_varied_ioi_rows_answer_the_one_name_that_does_not_repeat():
    names = {toy_vocab.TOKEN_ID[name] for name in toy_vocab.NAMES}
    for split in ("train", "held_out"):
        rows = ioi.varied_ioi_rows(200, gen(), split=split)
        positions = set()
        for row in rows:
            assert row[0] == toy_vocab.BOS_TOKEN and len(row) <= ioi.VARIED_MAX_LEN
            counts = {t: row[:-1].count(t) for t in row[:-1] if t in names}
            once = [t for t, n in counts.items() if n == 1]
            assert once == [row[-1]] and all(n in (1, 2) for n in counts.values())
            pairs = [(a, b) for a in counts for b in counts if a < b]
            index = {toy_vocab.TOKEN_ID[name]: i for i, name in enumerate(toy_vocab.NAMES)}
            held = [ioi.held_out_pair(index[a], index[b]) for a, b in pairs]
            assert all(held) if split == "held_out" else not any(held)
            positions.add(row.index(row[-1]))
        assert len(positions) >= 4  # IO stands at many positions, unlike the fixed frames' 3 and 5
