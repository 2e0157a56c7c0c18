"""Indirect-object identification (IOI) prompts for `toy-gpt` (day 5), with a held-out split.

Every template has the same shape, so that a position means the same thing in every prompt:

    position  0     1-2    3   4    5   6-8          9      10  11  12    13     14      15
              <bos> Then , X   and  Y   went to the  PLACE  ,   S   gave  a      OBJECT  to

X and Y are the two names; S (position 11) repeats one of them and the answer is the other, the indirect object IO.
ABBA prompts have X = IO, Y = S; BABA prompts have X = S, Y = IO. The logit difference is logit(IO) - logit(S) at the
last position (END_POSITION).

Held-out split: an unordered name pair is held out when `held_out_pair` says so, and a (template, place, object)
combination when `held_out_combination` does. Training prompts use neither; held-out prompts use both, so every held-out
prompt pairs two names never seen together in a sentence frame never seen in training. (Each name, template, place
and object on its own is seen in training.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from curriculum.data.toy_vocab import BOS_TOKEN, NAMES, OBJECTS, PLACES, TOKEN_ID, VOCAB

TEMPLATES: tuple[str, ...] = (
    "Then , X and Y went to the PLACE , S gave a OBJECT to",
    "Later , X and Y arrived at the PLACE , S handed a OBJECT to",
    "One day X and Y walked into the PLACE , S passed a OBJECT to",
    "Afterwards , X and Y were at the PLACE , S gave the OBJECT to",
    "Yesterday , X and Y met at the PLACE , S sent a OBJECT to",
    "So , X and Y stayed in the PLACE , S threw a OBJECT to",
    "Then , X and Y ate at the PLACE , S offered a OBJECT to",
    "Today , X and Y worked at the PLACE , S brought a OBJECT to",
)
"""Sentence frames; X, Y, S, PLACE and OBJECT are filled in."""

X_POSITION, Y_POSITION, PLACE_POSITION, S2_POSITION, OBJECT_POSITION, END_POSITION = 3, 5, 9, 11, 14, 15
PROMPT_LEN = END_POSITION + 1
"""Tokens in a prompt, BOS included (the answer is not part of the prompt)."""

Split = Literal["train", "held_out"]
Order = Literal["mixed", "ABBA", "BABA"]


def held_out_pair(a: int, b: int) -> bool:
    """Whether the unordered pair of name indices {a, b} is reserved for evaluation (about a fifth of the pairs)."""
    return (a * b + a + b) % 5 == 2


def held_out_combination(template: int, place: int, obj: int) -> bool:
    """Whether a (template, place, object) combination is reserved for evaluation (a fifth of them)."""
    return (3 * template + 5 * place + obj) % 5 == 0


@dataclass(frozen=True)
class IOIPrompts:
    """A batch of IOI prompts. Positions are the same in every prompt (see the module docstring)."""

    tokens: Int[Tensor, "batch 16"]
    io_tokens: Int[Tensor, "batch"]
    s_tokens: Int[Tensor, "batch"]
    io_positions: Int[Tensor, "batch"]
    s1_positions: Int[Tensor, "batch"]
    templates: Int[Tensor, "batch"]
    is_abba: Bool[Tensor, "batch"]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def texts(self) -> list[str]:
        """The prompts as text, without BOS."""
        return [" ".join(VOCAB[t] for t in row[1:].tolist()) for row in self.tokens]

    def with_answers(self) -> Int[Tensor, "batch 17"]:
        """The prompts followed by their answer (the IO name): what toy-gpt is trained on."""
        return torch.cat([self.tokens, self.io_tokens[:, None]], dim=1)


def _sample_names(split: Split, generator: torch.Generator) -> tuple[int, int]:
    """Two distinct name indices whose pair belongs to `split`."""
    while True:
        a, b = torch.randperm(len(NAMES), generator=generator)[:2].tolist()
        if held_out_pair(a, b) == (split == "held_out"):
            return a, b


def _sample_frame(split: Split, generator: torch.Generator) -> tuple[int, int, int]:
    """A (template, place, object) combination belonging to `split`."""
    while True:
        t = int(torch.randint(len(TEMPLATES), (1,), generator=generator))
        p = int(torch.randint(len(PLACES), (1,), generator=generator))
        o = int(torch.randint(len(OBJECTS), (1,), generator=generator))
        if held_out_combination(t, p, o) == (split == "held_out"):
            return t, p, o


def ioi_prompts(
    n: int,
    generator: torch.Generator,
    split: Split = "held_out",
    order: Order = "mixed",
    template: int | None = None,
) -> IOIPrompts:
    """`n` IOI prompts of `split`. `order` picks ABBA, BABA or both (alternating); `template` fixes the frame."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', got {split!r}")
    if order not in ("mixed", "ABBA", "BABA"):
        raise ValueError(f"order must be 'mixed', 'ABBA' or 'BABA', got {order!r}")
    if template is not None and not 0 <= template < len(TEMPLATES):
        raise ValueError(f"template must lie in [0, {len(TEMPLATES)}), got {template}")
    rows, io, s, io_pos, s1_pos, templates, abba = [], [], [], [], [], [], []
    for i in range(n):
        a, b = _sample_names(split, generator)
        while True:
            t, p, o = _sample_frame(split, generator)
            if template is None or t == template:
                break
        is_abba = order == "ABBA" or (order == "mixed" and i % 2 == 0)
        io_name, s_name = NAMES[a], NAMES[b]
        x, y = (io_name, s_name) if is_abba else (s_name, io_name)
        words = TEMPLATES[t].split()
        fill = {"X": x, "Y": y, "S": s_name, "PLACE": PLACES[p], "OBJECT": OBJECTS[o]}
        rows.append([BOS_TOKEN] + [TOKEN_ID[fill.get(w, w)] for w in words])
        io.append(TOKEN_ID[io_name])
        s.append(TOKEN_ID[s_name])
        io_pos.append(X_POSITION if is_abba else Y_POSITION)
        s1_pos.append(Y_POSITION if is_abba else X_POSITION)
        templates.append(t)
        abba.append(is_abba)
    return IOIPrompts(
        tokens=torch.tensor(rows),
        io_tokens=torch.tensor(io),
        s_tokens=torch.tensor(s),
        io_positions=torch.tensor(io_pos),
        s1_positions=torch.tensor(s1_pos),
        templates=torch.tensor(templates),
        is_abba=torch.tensor(abba),
    )


def ioi_logit_diff(logits: Float[Tensor, "batch seq vocab"], prompts: IOIPrompts) -> Float[Tensor, "batch"]:
    """logit(IO) - logit(S) at the last position of each prompt."""
    end = logits[:, END_POSITION]
    rows = torch.arange(end.shape[0], device=end.device)
    return end[rows, prompts.io_tokens.to(end.device)] - end[rows, prompts.s_tokens.to(end.device)]


assert all(len(t.split()) == END_POSITION for t in TEMPLATES), "every template must have the same length"
assert all(
    [t.split()[i - 1] for i in (X_POSITION, Y_POSITION, PLACE_POSITION, S2_POSITION, OBJECT_POSITION)]
    == ["X", "Y", "PLACE", "S", "OBJECT"]
    for t in TEMPLATES
), "every template must have its slots at the same positions"


# Varied prompts. The fixed templates above let a model solve IOI without noticing the repetition: the name at
# position 11 is always S, so "push down the name at position 11" is enough. The varied prompts move every slot
# (openings of 0-3 words, an optional sentence between the clauses), change the second clause (S is not always the
# word before the verb) and add three-name prompts in which two names repeat: only the repetition tells S from IO.
# toy-gpt's card measures its accuracy on them (it was trained on the fixed templates only).

OPENINGS: tuple[str, ...] = ("", "Then ,", "Later ,", "One day", "Afterwards ,", "Yesterday ,", "So ,", "Today ,",
                             "Later , One day")  # fmt: skip
FIRST_CLAUSES: tuple[str, ...] = ("X and Y went to the PLACE", "X and Y arrived at the PLACE", "X and Y were at the PLACE",
                                  "X was with Y in the PLACE", "X met Y at the PLACE", "X saw Y near the PLACE",
                                  "X and Y ate at the PLACE", "X and Y worked at the PLACE")  # fmt: skip
THREE_NAME_CLAUSES: tuple[str, ...] = ("X , Y and Z went to the PLACE", "X , Y and Z met at the PLACE",
                                       "X was with Y and Z in the PLACE")  # fmt: skip
INTERLUDES: tuple[str, ...] = ("", "", ". the OBJECT was in the PLACE", ", the PLACE is next to the PLACE")
SECOND_CLAUSES: tuple[str, ...] = (", S gave a OBJECT to", ", S handed the OBJECT to", ". S sent a OBJECT to",
                                   ". Then S threw a OBJECT to", ". S had a OBJECT and gave the OBJECT to",
                                   ", S found a OBJECT and passed the OBJECT to", "and S offered a OBJECT to")  # fmt: skip
THREE_NAME_SECOND_CLAUSES: tuple[str, ...] = (", S and T gave a OBJECT to", ". S was with T and brought a OBJECT to",
                                              ", S saw T and handed a OBJECT to")  # fmt: skip
VARIED_MAX_LEN = 23
"""Most tokens in a varied prompt with its answer, BOS included."""


def varied_ioi_rows(
    n: int, generator: torch.Generator, split: Split = "train", three_name_share: float = 0.3
) -> list[list[int]]:
    """`n` varied IOI training prompts followed by their answer (BOS first, at most VARIED_MAX_LEN tokens each).

    Two-name prompts name IO and S once each in the first clause (either order) and repeat S in the second; three-name
    prompts name three people and repeat two of them; the answer is always the one name that is not repeated. Name
    pairs belong to `split`: in "train" no pair is one that `held_out_pair` reserves, in "held_out" every pair is."""

    def pick(options: tuple[str, ...]) -> str:
        return options[int(torch.randint(len(options), (1,), generator=generator))]

    rows: list[list[int]] = []
    while len(rows) < n:
        three = float(torch.rand((), generator=generator)) < three_name_share
        k = 3 if three else 2
        names = torch.randperm(len(NAMES), generator=generator)[:k].tolist()
        pairs = [held_out_pair(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
        if (any(pairs) if split == "train" else not all(pairs)):
            continue
        io, repeated = names[0], names[1:]
        order = torch.randperm(k, generator=generator).tolist()
        listed = [names[i] for i in order]
        fill = dict(zip("XYZ", (NAMES[i] for i in listed)))
        again = [repeated[i] for i in torch.randperm(len(repeated), generator=generator).tolist()]
        fill.update(zip("ST", (NAMES[i] for i in again)))
        first = pick(THREE_NAME_CLAUSES if three else FIRST_CLAUSES)
        second = pick(THREE_NAME_SECOND_CLAUSES if three else SECOND_CLAUSES)
        text = " ".join(part for part in (pick(OPENINGS), first, pick(INTERLUDES), second) if part)
        words = []
        for w in text.split():
            if w == "PLACE":
                w = PLACES[int(torch.randint(len(PLACES), (1,), generator=generator))]
            elif w == "OBJECT":
                w = OBJECTS[int(torch.randint(len(OBJECTS), (1,), generator=generator))]
            words.append(fill.get(w, w))
        row = [BOS_TOKEN] + [TOKEN_ID[w] for w in words] + [TOKEN_ID[NAMES[io]]]
        if len(row) <= VARIED_MAX_LEN:
            rows.append(row)
    return rows
