"""Seeded data generators of the course. Every sampler takes a `torch.Generator`; none touches global RNG state.

- `repeated_tokens`: BOS + random tokens repeated twice (the induction probe, days 1-3).
- `induction_corpus`: the synthetic language of induction-2l, its INDUCTION_CANDIDATES and held-out stories.
- `array_indexing`: the day-4 task `BOS a0 a1 a2 NL idx elt NL b0 b1 b2`: its constants (the sampler, loss and
  accuracy are day-4 exercises; the training recipe keeps its own in `curriculum.models.recipes`).
- `toy_vocab`, `ioi`, `number_sequences`, `toy_corpus`: toy-gpt's vocabulary, IOI prompts and number sequences
  (with held-out splits), and its training mixture (day 5).
"""
