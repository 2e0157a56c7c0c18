"""Recipe of `toy-gpt` (day 5): a small GPT-2-style model that does IOI and continues number sequences."""

from __future__ import annotations

from typing import Any

import torch
from transformer_lens import HookedTransformer

from curriculum.data import toy_vocab
from curriculum.data.ioi import IOIPrompts, ioi_logit_diff, ioi_prompts, varied_ioi_rows
from curriculum.data.toy_vocab import NAMES, TOKEN_ID
from curriculum.data.number_sequences import LENGTHS, next_number_accuracy, number_sequences
from curriculum.data.toy_corpus import IOI_SHARE, NUMBER_SHARE, ROW_LEN, toy_gpt_batch, toy_gpt_loss
from curriculum.models import measure as m
from curriculum.models.recipes import Bar, Recipe

EVAL_SEED = 4_242
IOI_PROMPTS = 500
SEQUENCES_PER_LENGTH = 100
TOP_HEADS = 5


def s1_replaced(prompts: IOIPrompts, generator: torch.Generator) -> torch.Tensor:
    """The prompts' tokens with S1 replaced by a third name (neither IO nor S): no name repeats any more."""
    tokens = prompts.tokens.clone()
    for i in range(len(prompts)):
        while True:
            name = TOKEN_ID[NAMES[int(torch.randint(len(NAMES), (1,), generator=generator))]]
            if name not in (int(prompts.io_tokens[i]), int(prompts.s_tokens[i])):
                break
        tokens[i, prompts.s1_positions[i]] = name
    return tokens


def ioi_direct_effects(model: HookedTransformer, n: int = IOI_PROMPTS, seed: int = EVAL_SEED) -> torch.Tensor:
    """Mean direct effect of every head on the IOI logit difference, on `n` held-out prompts: [layer, head]."""
    prompts = ioi_prompts(n, torch.Generator().manual_seed(seed), split="held_out")
    end = torch.full((n,), prompts.tokens.shape[1] - 1)
    return m.head_direct_effects(model, prompts.tokens, end, prompts.io_tokens, prompts.s_tokens)


@torch.no_grad()
def measure(model: HookedTransformer) -> dict[str, Any]:
    """IOI logit difference on held-out prompts, next-number accuracy on held-out sequences, and the heads with the
    largest direct effect on the IOI logit difference."""
    generator = torch.Generator().manual_seed(EVAL_SEED)
    prompts = ioi_prompts(IOI_PROMPTS, generator, split="held_out")
    logit_diff = ioi_logit_diff(model(prompts.tokens.to(model.cfg.device)).cpu(), prompts)
    abc = s1_replaced(prompts, torch.Generator().manual_seed(EVAL_SEED + 1))
    abc_logit_diff = ioi_logit_diff(model(abc.to(model.cfg.device)).cpu(), prompts)
    varied = varied_ioi_rows(IOI_PROMPTS, torch.Generator().manual_seed(EVAL_SEED + 2), split="held_out")
    varied_correct = [
        int(model(torch.tensor([row[:-1]], device=model.cfg.device))[0, -1].argmax()) == row[-1] for row in varied
    ]
    accuracies = []
    for length in range(LENGTHS[0], LENGTHS[1] + 1):
        sequences = number_sequences(SEQUENCES_PER_LENGTH, length, generator, split="held_out")
        accuracies.append(next_number_accuracy(model(sequences.tokens.to(model.cfg.device)), sequences))
    return {
        "ioi_mean_logit_diff": logit_diff.mean().item(),
        "ioi_fraction_io_above_s": (logit_diff > 0).float().mean().item(),
        "ioi_mean_logit_diff_abba": logit_diff[prompts.is_abba].mean().item(),
        "ioi_mean_logit_diff_baba": logit_diff[~prompts.is_abba].mean().item(),
        "ioi_mean_logit_diff_s1_replaced": abc_logit_diff.mean().item(),
        "varied_ioi_accuracy": sum(varied_correct) / len(varied_correct),
        "next_number_accuracy": sum(accuracies) / len(accuracies),
        "top_heads_by_direct_effect_on_ioi_logit_diff": m.top_heads(ioi_direct_effects(model), TOP_HEADS),
    }


RECIPE = Recipe(
    name="toy-gpt",
    config=dict(
        n_layers=4,
        n_heads=4,
        d_model=128,
        d_head=32,
        d_mlp=512,
        act_fn="gelu_new",
        normalization_type="LN",
        positional_embedding_type="standard",
        n_ctx=32,
        d_vocab=toy_vocab.D_VOCAB,
        default_prepend_bos=True,
    ),
    vocab=toy_vocab.VOCAB,
    bos_word=toy_vocab.BOS_WORD,
    sample_batch=toy_gpt_batch,
    loss=toy_gpt_loss,
    measure=measure,
    bars=(
        Bar("ioi_mean_logit_diff", minimum=3.0),
        Bar("ioi_fraction_io_above_s", minimum=0.95),
        Bar("next_number_accuracy", minimum=0.9),
    ),
    description=f"""\
The circuit-discovery model of day 5: GPT-2 style (LayerNorm, MLPs with GELU, learned absolute positions), 4 layers,
4 heads per layer, d_model 128, d_head 32, d_mlp 512, context 32, and a word-level vocabulary of {toy_vocab.D_VOCAB}
words: `<bos>`, punctuation and template words, {len(toy_vocab.NAMES)} names, {len(toy_vocab.PLACES)} places,
{len(toy_vocab.OBJECTS)} objects and the numbers 0-{toy_vocab.MAX_NUMBER}.

Trained on the mixture of `curriculum.data.toy_corpus.toy_gpt_batch`, one item per row of {ROW_LEN} tokens:
{IOI_SHARE:.0%} IOI sentences with their answer from 8 templates in both ABBA and BABA order (`curriculum.data.ioi`,
training split), {NUMBER_SHARE:.0%} arithmetic number sequences of 5-16 numbers with a constant step of 1-9
(`curriculum.data.number_sequences`, training split) and {1 - IOI_SHARE - NUMBER_SHARE:.0%} filler sentences about
the same names, places and objects. Loss: cross-entropy of every next token except padding.

IOI figures: {IOI_PROMPTS} held-out prompts (`ioi_prompts(..., split="held_out")`, seed {EVAL_SEED}): name pairs and
(template, place, object) combinations that training never shows. Logit difference = logit(IO) - logit(S) at the
last position. Direct effect of a head: its output at the last position, through the final LayerNorm (scale frozen
from the clean run) onto the unembedding direction IO - S, averaged over the prompts
(`curriculum.models.recipes.toy_gpt.ioi_direct_effects`). `ioi_mean_logit_diff_s1_replaced`: the same prompts with
S1 replaced by a third name (`s1_replaced`), so that no name repeats: a model that finds S by its repetition loses
its logit difference; this one raises it, since it suppresses whatever name stands at S2's position (the two fixed
templates allow that shortcut). `varied_ioi_accuracy`: argmax accuracy on {IOI_PROMPTS} held-out prompts of other
shapes (`curriculum.data.ioi.varied_ioi_rows`: names at other positions, other clause orders, three names), which
training never shows. Number figures: {SEQUENCES_PER_LENGTH} held-out
sequences of each length {LENGTHS[0]}-{LENGTHS[1]} (start, step pairs that no training sequence starts with; see
`held_out_progression`); accuracy of the argmax next number.

Tokens: `model.to_tokens(text)` prepends `<bos>`; text is split on whitespace (punctuation is separate words:
"Then , Mary and John went to the store , John gave a ring to") and a word outside the vocabulary is an error.
""",
    steps=3000,
    batch_size=64,
    lr=1e-3,
    weight_decay=0.01,
    warmup_steps=100,
    seed=0,
)
