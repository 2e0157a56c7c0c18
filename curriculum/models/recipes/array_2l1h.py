"""Recipe of `array-2l1h` (day 4): the array-indexing model, in the exact configuration of Connor Kissane's
array-indexing practice problem (from his mech-interp practice notebooks)."""

from __future__ import annotations

from typing import Any

import torch
from transformer_lens import HookedTransformer

from curriculum.data import array_indexing as task
from curriculum.models.recipes import array_indexing_data as data
from curriculum.models.recipes import Bar, Recipe

EVAL_SEED = 20_240_404
EVAL_EXAMPLES = 10_000


@torch.no_grad()
def measure(model: HookedTransformer) -> dict[str, Any]:
    """Accuracy at each answer position, and the training loss, on EVAL_EXAMPLES fresh examples."""
    tokens = data.array_indexing_batch(EVAL_EXAMPLES, torch.Generator().manual_seed(EVAL_SEED))
    logits = model(tokens.to(model.cfg.device)).cpu()
    accuracy = data.array_indexing_accuracy(logits, tokens)
    return {
        "accuracy_b0": float(accuracy[0]),
        "accuracy_b1": float(accuracy[1]),
        "accuracy_b2": float(accuracy[2]),
        "answer_loss": float(data.array_indexing_loss(logits, tokens)),
    }


RECIPE = Recipe(
    name="array-2l1h",
    config=dict(
        n_layers=2,
        n_heads=1,
        d_model=128,
        d_head=128,
        n_ctx=task.SEQ_LEN,
        d_vocab=task.D_VOCAB,
        d_vocab_out=task.MAX_NUM,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="shortformer",
        act_fn=None,
        default_prepend_bos=True,
    ),
    vocab=task.VOCAB,
    bos_word="BOS",
    sample_batch=data.array_indexing_batch,
    loss=data.array_indexing_loss,
    measure=measure,
    bars=tuple(Bar(f"accuracy_b{i}", minimum=0.999) for i in range(3)),
    description=f"""\
The array-indexing model of day 4, in the configuration of Connor Kissane's array-indexing practice problem (from
his mech-interp practice notebooks): 2 layers, 1 head per layer, d_model 128, d_head 128, attention only, no
LayerNorm, shortformer positional embeddings, context 11, 52 input tokens (the numbers 0-49, `BOS` = 50, `NL` = 51)
and 50 output tokens (the numbers).

Task: `BOS a0 a1 a2 NL idx elt NL b0 b1 b2`, where `b` is `a` with `a[idx] = elt`. Trained on fresh random examples
(a, idx and elt drawn per example) with the cross-entropy at the three answer positions only. Evaluated on
{EVAL_EXAMPLES:,} fresh examples (seed {EVAL_SEED}); an accuracy of 0.9999 is one wrong answer in those 10,000.

Tokens: `model.to_tokens("1 2 3 NL 2 4 NL 1 2 4")` prepends `BOS` (id 50), giving the 11 tokens of an example, and
`model.to_str_tokens` reads them back as `BOS 1 2 3 NL 2 4 NL 1 2 4`. A word outside the vocabulary is an error.
""",
    steps=600,
    batch_size=256,
    lr=1e-3,
    weight_decay=0.01,
    warmup_steps=100,
    seed=0,
)
