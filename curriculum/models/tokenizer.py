"""Word-level tokenizers for the zoo models: one token per whitespace-separated word.

The tokenizer files are written next to the weights and loaded with `AutoTokenizer.from_pretrained(<model dir>)`,
which is what transformer_lens needs (it re-reads the tokenizer from its `name_or_path`).
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


def save_word_tokenizer(
    directory: str | Path,
    vocab: list[str],
    bos_token: str,
    unk_token: str | None = None,
) -> None:
    """Write `tokenizer.json` and `tokenizer_config.json` for a word-level vocabulary.

    `vocab[i]` gets token id i. `bos_token` doubles as end-of-text and padding token (as in GPT-2), so
    transformer_lens never has to invent one. Without `unk_token`, an unknown word is an error, not a silent id.
    The tokenizer itself never adds BOS: transformer_lens prepends it (`cfg.default_prepend_bos`).
    """
    if len(set(vocab)) != len(vocab):
        raise ValueError("vocabulary has duplicate words")
    specials = [bos_token] + ([unk_token] if unk_token else [])
    missing = [s for s in specials if s not in vocab]
    if missing:
        raise ValueError(f"special tokens {missing} are not in the vocabulary")
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token=unk_token))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # Word pieces are joined by spaces when decoding a sequence; a single token decodes to its word.
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=bos_token,
        eos_token=bos_token,
        pad_token=bos_token,
        unk_token=unk_token,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(str(directory))
    # transformers 5 writes its own class name; the 4.x name loads under both major versions.
    config_path = Path(directory) / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
