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
