"""The word-level vocabulary of `toy-gpt`: names, places, objects, template words and the numbers 0-199.

Token ids follow the order of VOCAB: `<bos>` is 0 (also end-of-text and padding), then punctuation and template
words, names, places, objects, and the numbers, where the number n has token id NUMBER_OFFSET + n.
"""

from __future__ import annotations

BOS_WORD = "<bos>"
BOS_TOKEN = 0

NAMES: tuple[str, ...] = (
    "Mary", "John", "Alice", "Bob", "Clara", "David", "Emma", "Frank", "Grace", "Henry",
    "Iris", "Jack", "Kate", "Leo", "Lucy", "Max", "Nina", "Oscar", "Paula", "Quinn",
    "Rosa", "Sam", "Tara", "Victor", "Wendy", "Xavier", "Yara", "Zack", "Anna", "Ben",
)  # fmt: skip
PLACES: tuple[str, ...] = (
    "store", "park", "school", "garden", "station", "office",
    "market", "library", "beach", "museum", "kitchen", "harbour",
)  # fmt: skip
OBJECTS: tuple[str, ...] = (
    "ring", "book", "drink", "kite", "basket", "letter",
    "lamp", "scarf", "ticket", "apple", "hammer", "candle",
)  # fmt: skip
MAX_NUMBER = 199
TEMPLATE_WORDS: tuple[str, ...] = (
    ",", ".", "and", "the", "a", "to", "at", "in", "into", "One", "day", "Then", "Later", "Afterwards",
    "Yesterday", "So", "Today", "went", "arrived", "walked", "were", "met", "stayed", "ate", "worked",
    "gave", "handed", "passed", "sent", "threw", "offered", "brought", "was", "likes", "saw", "found",
    "had", "with", "near", "is", "next",
)  # fmt: skip

VOCAB: list[str] = [BOS_WORD, *TEMPLATE_WORDS, *NAMES, *PLACES, *OBJECTS] + [str(n) for n in range(MAX_NUMBER + 1)]
"""The word of each token id of toy-gpt."""
NUMBER_OFFSET = len(VOCAB) - (MAX_NUMBER + 1)
D_VOCAB = len(VOCAB)
TOKEN_ID: dict[str, int] = {word: i for i, word in enumerate(VOCAB)}

if len(TOKEN_ID) != len(VOCAB):
    raise RuntimeError("toy-gpt vocabulary has duplicate words")


def encode(words: str) -> list[int]:
    """Token ids of whitespace-separated `words` (no BOS added); unknown words are an error."""
    unknown = [w for w in words.split() if w not in TOKEN_ID]
    if unknown:
        raise ValueError(f"words not in the toy-gpt vocabulary: {unknown}")
    return [TOKEN_ID[w] for w in words.split()]


def decode(tokens: list[int]) -> str:
    """The words of token ids, space-separated."""
    return " ".join(VOCAB[t] for t in tokens)
