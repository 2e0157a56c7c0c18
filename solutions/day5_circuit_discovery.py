# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Day 5: circuit discovery on `toy-gpt`
#
# Days 1 to 4 studied models small enough to read almost whole. Today's model, `toy-gpt`, is a GPT-2-style
# transformer (4 layers of 4 heads, LayerNorm, MLPs) with a word-level vocabulary, trained on two tasks:
#
# - **indirect object identification (IOI)**: `Then , Mary and John went to the store , John gave a ring to` ->
#   `Mary`. Two names are introduced; one of them (the *subject*, S) comes back; the answer is the other one (the
#   *indirect object*, IO). Wang et al. 2022, "Interpretability in the Wild", found the circuit that does this in
#   GPT-2 small;
# - **number sequences**: `3 7 11 15` -> `19`.
#
# The question of the day: *which parts of the model carry each behaviour?* A set of heads (at chosen positions)
# that, on its own, reproduces the behaviour is a **circuit**. We will
#
# 1. build the IOI dataset with the positions of its names, and a corrupted twin for patching;
# 2. measure the behaviour with the logit difference IO - S, and compute the range it usually lies in;
# 3. name "the output of head L.H at position p" and read or replace exactly that with hooks;
# 4. split the final logit difference into the direct effect of every component;
# 5. patch every head at every position from the clean run into the corrupted one;
# 6. path-patch: a head's effect through the final residual stream only, and through the queries, keys or values
#    of chosen receiver heads;
# 7. mean-ablate everything outside a circuit and score the circuit's **faithfulness**;
# 8. find a circuit by greedy pruning, first one forward pass per candidate, then many candidates per pass;
# 9. check its **minimality**;
# 10. run the same tools on number sequences;
# 11. capstone: find where the IO logit comes from and what the late heads do, with three more functions of yours.
#
# The course follows Redwood Research's REMIX curriculum (its day 5 studies IOI in GPT-2 small with Redwood's circuit
# library) and the IOI paper it builds on; section 8's greedy pruning follows a public mean-ablation study of number
# sequences in GPT-2 medium. `toy-gpt` is far smaller than GPT-2 and, as section 2 shows, solves IOI by a shortcut,
# so its circuit is not the paper's: the day measures how it differs.
#
# Every function in a cell marked as an exercise is graded: run `check(function_name)` in the notebook, or
# `pytest --day 5` in a terminal.

# %%
from __future__ import annotations

import os
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in Jupyter without ipywidgets

import re

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer

from curriculum.library import plotting

MAIN = __name__ == "__main__"
if MAIN:
    from checks import check  # noqa: F401  (check(fn) grades one exercise and prints the verdict)

# %% [markdown]
# ## 1. The IOI dataset
#
# `curriculum.data.ioi` writes IOI prompts from 8 sentence frames, in two orders: **ABBA** (`Then , Mary and John
# ... , John gave a ring to`, the IO comes first) and **BABA** (`Then , John and Mary ... , John gave ...`). All
# frames have exactly 15 words, so every prompt is 16 tokens long with `<bos>`: the model was trained that way,
# which lets us batch prompts without padding and compare a position across prompts. The *roles* still move: in
# ABBA the IO sits at position 3 and the first S at 5, in BABA the other way round.
#
# For every prompt we want the positions of **IO**, **S1** (the first mention of S), **S2** (the second) and
# **end** (the last token, where the answer is predicted). Find them from the tokens, not from the template: the
# function must work on any prompt, including prompts padded on the right with `<bos>` tokens (id 0), as a batch of
# prompts of different lengths would be.

# %% tags=["exercise"]
def ioi_positions(
    tokens: Int[Tensor, "batch seq"], io_tokens: Int[Tensor, "batch"], s_tokens: Int[Tensor, "batch"]
) -> Int[Tensor, "batch 4"]:
    """Positions of (IO, S1, S2, end) in each prompt, as int64.

    IO: the (only) position holding io_tokens[b]; S1, S2: the first and second positions holding s_tokens[b]; end:
    the position of the last token that is not padding (id 0; position 0 is the `<bos>` token).
    """
    positions = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens)
    is_io = tokens == io_tokens[:, None]
    is_s = tokens == s_tokens[:, None]
    io = torch.where(is_io, positions, tokens.shape[1]).min(dim=1).values
    s1 = torch.where(is_s, positions, tokens.shape[1]).min(dim=1).values
    s2 = torch.where(is_s & (positions > s1[:, None]), positions, tokens.shape[1]).min(dim=1).values
    end = torch.where(tokens != 0, positions, 0).max(dim=1).values
    return torch.stack([io, s1, s2, end], dim=1)


# %% [markdown]
# Patching needs a **corrupted** version of each prompt that differs in the one thing we care about. The *ABC*
# corruption puts a third name C in place of S2: `Then , Mary and John went to the store , Kate gave a ring to`.
# The sentence is still fluent, but nothing now says which of Mary and John is the indirect object, so the logit
# difference IO - S should collapse to about zero. Draw C uniformly among the names that are neither IO nor S, with
# one call to the generator for the whole batch, as the docstring says.

# %% tags=["exercise"]
def abc_corruption(
    tokens: Int[Tensor, "batch seq"],
    positions: Int[Tensor, "batch 4"],
    name_tokens: Int[Tensor, "names"],
    generator: torch.Generator,
) -> Int[Tensor, "batch seq"]:
    """A copy of `tokens` with a third name C at each prompt's S2 position.

    positions: (IO, S1, S2, end) per prompt, as `ioi_positions` returns. name_tokens: the names C is drawn from
    (each prompt's IO and S among them). C is drawn uniformly at random among the entries of `name_tokens` other than
    the prompt's IO and S tokens, independently per prompt, every random number from `generator` (the same generator
    state gives the same output). Returns int64 [batch, seq]; the input is not modified.
    """
    batch = tokens.shape[0]
    draws = torch.randint(0, len(name_tokens) - 2, (batch,), generator=generator)
    io = tokens[torch.arange(batch), positions[:, 0]]
    s = tokens[torch.arange(batch), positions[:, 2]]
    corrupted = tokens.clone()
    for b in range(batch):
        others = name_tokens[(name_tokens != io[b]) & (name_tokens != s[b])]
        corrupted[b, positions[b, 2]] = others[draws[b]]
    return corrupted


# %%
if MAIN:
    from curriculum.data.ioi import END_POSITION, S2_POSITION, ioi_prompts
    from curriculum.data.toy_vocab import NAMES, TOKEN_ID
    from curriculum.models import load_model

    torch.set_grad_enabled(False)
    model = load_model("toy-gpt")
    name_tokens = torch.tensor([TOKEN_ID[name] for name in NAMES])
    prompts = ioi_prompts(30, torch.Generator().manual_seed(5))
    clean_tokens = prompts.tokens
    io_tokens, s_tokens = prompts.io_tokens, prompts.s_tokens
    positions = ioi_positions(clean_tokens, io_tokens, s_tokens)
    corrupted_tokens = abc_corruption(clean_tokens, positions, name_tokens, torch.Generator().manual_seed(6))
    end = positions[:, 3]
    for b in range(2):
        print(" ".join(model.to_str_tokens(clean_tokens[b])), "| IO, S1, S2, end =", positions[b].tolist())
        print(" ".join(model.to_str_tokens(corrupted_tokens[b])))

# %% [markdown]
# ## 2. The logit difference
#
# Our measure of the behaviour is the **logit difference** `logit(IO) - logit(S)` at the end position. It is a
# difference of logits, so it does not depend on the other 294 tokens and equals the log-odds between the two
# names. To reuse the function for number sequences later, call the two tokens *correct* and *wrong*.

# %% tags=["exercise"]
def logit_diff(
    logits: Float[Tensor, "batch seq d_vocab"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
) -> Float[Tensor, "batch"]:
    """The logit of the correct token minus that of the wrong token, read at each prompt's own end position.

    float32, one value per prompt [batch]."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    end_logits = logits[rows, end_positions]
    return end_logits[rows, correct_tokens] - end_logits[rows, wrong_tokens]


# %% [markdown]
# Redwood Research's REMIX curriculum (day 5, on GPT-2 small) ends its IOI set-up with a sanity check: does the measured
# logit difference "sit in its usual range"? Rather than typing a range, compute one from the per-prompt values: the
# central interval holding a fraction `coverage` of them (the `(1 - coverage) / 2` and `(1 + coverage) / 2` quantiles,
# linearly interpolated as `torch.quantile` does).

# %% tags=["exercise"]
def usual_range(logit_diffs: Float[Tensor, "batch"], coverage: float) -> Float[Tensor, "2"]:
    """(low, high): the central interval holding a fraction `coverage` of the per-prompt values, its ends the
    quantiles at (1 - coverage) / 2 and (1 + coverage) / 2, linearly interpolated between the sorted values.

    A tensor [2] of the input's dtype; ValueError unless 0 < coverage < 1."""
    if not 0 < coverage < 1:
        raise ValueError(f"coverage must lie in (0, 1), got {coverage}")
    quantiles = torch.tensor([(1 - coverage) / 2, (1 + coverage) / 2], dtype=logit_diffs.dtype,
                             device=logit_diffs.device)
    return torch.quantile(logit_diffs, quantiles)


# %%
if MAIN:
    clean_logits, clean_cache = model.run_with_cache(clean_tokens)
    corrupted_logits = model(corrupted_tokens)
    clean_ld = logit_diff(clean_logits, io_tokens, s_tokens, end)
    corrupted_ld = logit_diff(corrupted_logits, io_tokens, s_tokens, end)
    reference = ioi_prompts(200, torch.Generator().manual_seed(7))
    reference_ld = logit_diff(model(reference.tokens), reference.io_tokens, reference.s_tokens,
                              torch.full((200,), 15))
    low, high = usual_range(reference_ld, 0.9).tolist()
    print(f"clean logit difference {clean_ld.mean():.2f} (per prompt {clean_ld.min():.2f} .. {clean_ld.max():.2f})")
    print(f"ABC-corrupted logit difference {corrupted_ld.mean():.2f}")
    print(f"usual range (90% of 200 other held-out prompts): {low:.2f} .. {high:.2f}; "
          f"clean mean inside: {low <= clean_ld.mean() <= high}, corrupted mean inside: "
          f"{low <= corrupted_ld.mean() <= high}")
    plotting.show(plotting.bar(clean_ld, title="Logit difference IO - S per clean prompt", xaxis="prompt"))

# %% [markdown]
# ### Does the model need the repetition?
#
# In IOI, what tells S from IO is that S comes back. Two more corruptions test whether `toy-gpt` uses that: replace
# **S1** by a third name (no name repeats any more: a model that finds S by its repetition should lose its logit
# difference), and put the **IO** name at S2 (now IO is the repeated name).

# %%
if MAIN:
    rows = torch.arange(len(clean_tokens))
    s1_replaced = clean_tokens.clone()
    s1_replaced[rows, positions[:, 1]] = corrupted_tokens[rows, positions[:, 2]]  # the ABC run's third name, at S1
    io_at_s2 = clean_tokens.clone()
    io_at_s2[rows, positions[:, 2]] = io_tokens
    s1_replaced_ld = logit_diff(model(s1_replaced), io_tokens, s_tokens, end)
    io_at_s2_ld = logit_diff(model(io_at_s2), io_tokens, s_tokens, end)
    _, layer0 = model.run_with_cache(clean_tokens, names_filter="blocks.0.attn.hook_pattern")
    s2_to_s1 = layer0["pattern", 0][rows, :, S2_POSITION, positions[:, 1]].mean(0)  # [head]
    print(f"logit difference IO - S: clean {clean_ld.mean():.2f}, S1 replaced by a third name "
          f"{s1_replaced_ld.mean():.2f}, IO's name at S2 {io_at_s2_ld.mean():.2f}")
    print("layer-0 heads at S2, attention to S1:", [round(a, 3) for a in s2_to_s1.tolist()])

# %% [markdown]
# The printout answers plainly: **no**. Replacing S1 by a third name, so that nothing repeats, *raises* the logit
# difference (12.68 against 8.86 clean, on these 30 prompts), and putting IO's name at S2 turns it to about -9: the
# model pushes down whatever name stands at S2's position and says the other one. The layer-0 heads at S2 attend
# 0.00-0.01 to S1: nothing there detects a duplicate. The reason is the training data: `toy-gpt` saw IOI only in 8
# frames of one shape, where S2 is always at position 11, so "the name at position 11 is S" is a perfect rule and
# cheaper than finding a repeat. Its model card measures the shortcut on 500 held-out prompts (the logit difference
# with S1 replaced, and the accuracy on prompts of other shapes, `curriculum.data.ioi.varied_ioi_rows`, where names
# move: close to a coin flip). GPT-2 small learned IOI from natural text, where names move; the IOI paper found
# *duplicate-token* and *induction* heads that detect the repeat at S2. So read every circuit below as the circuit of
# `toy-gpt`'s rule, "suppress the name at S2's position", and compare it with the paper's as we go.

# %% [markdown]
# The clean mean sits well inside the usual range, and the ABC corruption drives the logit difference to about
# zero, far outside it. These two runs are the anchors of every patching experiment below: 1 = clean, 0 = corrupted.
# But the ABC corruption changes two things at once: S no longer repeats, and the name at S2 is a new one. The next
# cell separates them.
#
# ## 3. Splitting the model by head and by position
#
# REMIX, built on Redwood's own circuit library, rewrote the model so that "the output of head 0.0 at position 5" became
# a node with its own name, `a0_h0_t5`. TransformerLens already splits by head (`blocks.L.attn.hook_z` holds every
# head's output before `W_O`, `[batch, pos, head, d_head]`), so a name is all we need: we write `a{L}.h{H}.t{p}`
# (`node_name` and `parse_node_name` below convert). Write a reader and a replacer that touch exactly the named slices
# and nothing else.

# %%
NODE_PATTERN = r"^a(\d+)\.h(\d+)\.t(\d+)$"


def node_name(layer: int, head: int, position: int) -> str:
    """The name of the output of head `layer.head` at `position`: `a{layer}.h{head}.t{position}`."""
    return f"a{layer}.h{head}.t{position}"


def parse_node_name(name: str) -> tuple[int, int, int]:
    """(layer, head, position) of a node name `a{L}.h{H}.t{p}`; ValueError for anything else."""
    match = re.match(NODE_PATTERN, name)
    if match is None:
        raise ValueError(f"not a node name of the form a{{L}}.h{{H}}.t{{p}}: {name!r}")
    layer, head, position = (int(x) for x in match.groups())
    return layer, head, position


# %% tags=["exercise"]
def read_nodes(model: HookedTransformer, tokens: Int[Tensor, "batch seq"], names: list[str]
               ) -> Float[Tensor, "node batch d_head"]:
    """hook_z of each named node `a{L}.h{H}.t{p}` (head H of layer L at position p) in one forward pass."""
    parsed = [parse_node_name(name) for name in names]
    hooks = {f"blocks.{layer}.attn.hook_z" for layer, _, _ in parsed}
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
    return torch.stack([cache["z", layer][:, position, head] for layer, head, position in parsed])


# %% tags=["exercise"]
def run_with_nodes_replaced(
    model: HookedTransformer, tokens: Int[Tensor, "batch seq"], replacements: dict[str, Float[Tensor, "batch d_head"]]
) -> Float[Tensor, "batch seq d_vocab"]:
    """Logits of a forward pass in which hook_z of each named node `a{L}.h{H}.t{p}` is set to its value."""
    by_layer: dict[int, list[tuple[int, int, Tensor]]] = {}
    for name, value in replacements.items():
        layer, head, position = parse_node_name(name)
        by_layer.setdefault(layer, []).append((head, position, value))

    def replace(z: Tensor, hook, layer: int) -> Tensor:
        z = z.clone()
        for head, position, value in by_layer[layer]:
            z[:, position, head] = value
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: replace(z, hook, layer))
             for layer in by_layer]
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


# %%
if MAIN:
    names = [node_name(0, 1, 12), node_name(2, 0, 15)]
    values = read_nodes(model, clean_tokens, names)
    same = run_with_nodes_replaced(model, clean_tokens, dict(zip(names, values)))
    print("replacing nodes by their own values changes the logits by", (same - clean_logits).abs().max().item())
    corrupted_values = read_nodes(model, corrupted_tokens, names)
    patched = run_with_nodes_replaced(model, clean_tokens, dict(zip(names, corrupted_values)))
    print(f"corrupting {names}: logit difference {logit_diff(patched, io_tokens, s_tokens, end).mean():.2f}")

# %% [markdown]
# ## 4. Direct effects: the residual stack through the final LayerNorm
#
# The logits at the end position are `LN_final(resid) @ W_U + b_U`, and the residual stream is a sum of parts:
# the token and position embeddings, every head's output `z @ W_O`, each layer's attention bias `b_O`, and every
# MLP's output. LayerNorm is not linear, but it *is* linear once its scale is fixed: centre each part, divide by the
# scale of the clean run at that prompt's end position, multiply by the LayerNorm weight and project onto
# `W_U[:, IO] - W_U[:, S]`. The parts then add up to the logit difference, up to the constant terms of the LayerNorm
# bias and `b_U`. This is each part's **direct effect**: what it writes straight to the answer.

# %% tags=["exercise"]
def direct_effects(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
) -> Float[Tensor, "component batch"]:
    """Direct effect of each component on the logit difference (correct minus wrong) at each prompt's end position,
    with the final LayerNorm's scale frozen at its value in this run.

    Components, in order: the token embedding, the position embedding, then for each layer its heads 0 to
    n_heads - 1 (each head's output after W_O), the layer's attention bias b_O, and its MLP output: 2 + n_layers *
    (n_heads + 2) rows, [component, batch]. A component's effect is linear in it: centred over d_model, divided
    by the frozen scale, multiplied by the LayerNorm weight and projected on the difference of the two tokens'
    unembedding columns. The effects plus the constant terms (LayerNorm bias and unembedding bias) add up to the
    logit difference.
    """
    _, cache = model.run_with_cache(tokens)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    parts = [cache["hook_embed"][rows, end_positions], cache["hook_pos_embed"][rows, end_positions]]
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer][rows, end_positions]  # [batch, head, d_head]
        parts.extend(torch.einsum("bhe,hed->hbd", z, model.W_O[layer]).unbind(0))
        parts.append(model.b_O[layer].expand(len(rows), -1))
        parts.append(cache["mlp_out", layer][rows, end_positions])
    stack = torch.stack(parts)  # [component, batch, d_model]
    stack = stack - stack.mean(dim=-1, keepdim=True)
    stack = stack / cache["ln_final.hook_scale"][rows, end_positions] * model.ln_final.w
    directions = model.W_U[:, correct_tokens] - model.W_U[:, wrong_tokens]  # [d_model, batch]
    return torch.einsum("cbd,db->cb", stack, directions)


# %%
def component_labels(n_layers: int, n_heads: int) -> list[str]:
    """Names of the rows of `direct_effects`."""
    labels = ["embed", "pos_embed"]
    for layer in range(n_layers):
        labels += [f"L{layer}H{head}" for head in range(n_heads)] + [f"L{layer} b_O", f"L{layer} MLP"]
    return labels


if MAIN:
    effects = direct_effects(model, clean_tokens, io_tokens, s_tokens, end)
    labels = component_labels(model.cfg.n_layers, model.cfg.n_heads)
    mean_effects = effects.mean(dim=1)
    constant = (model.ln_final.b @ (model.W_U[:, io_tokens] - model.W_U[:, s_tokens])
                + model.b_U[io_tokens] - model.b_U[s_tokens])
    gap = (effects.sum(0) + constant - clean_ld).abs().max()
    print(f"max |sum of direct effects + constants - logit difference| = {gap:.2e}")
    plotting.show(plotting.bar(mean_effects, labels=labels, title="Mean direct effect on IO - S (clean prompts)"))
    top = mean_effects.argsort(descending=True)[:6]
    print("largest direct effects:", {labels[i]: round(mean_effects[i].item(), 2) for i in top})

# %% [markdown]
# Layer 3 writes most of the answer: its MLP first, then its four heads, then L2H0. Heads that write the answer
# directly are what the IOI paper calls candidate **name movers**; whether these work like them, we will see. Direct
# effects only see the last step, though. To find what *feeds* these components we need causal interventions.
#
# ## 5. Activation patching, every head at every position
#
# Run the corrupted prompts, but give one head at one position its output from the clean run. If that alone brings
# the logit difference back, that slice carries what the corruption destroyed. Normalise so that 0 is the corrupted
# run and 1 the clean one: `(LD_patched - LD_corrupted) / (LD_clean - LD_corrupted)`, with LD the mean over prompts.
#
# This is `transformer_lens.patching.get_act_patch_attn_head_out_by_pos`, which does one forward pass per (layer,
# position, head): 256 of them here. Do it in a few batched passes instead. A patch at layer L cannot change the
# residual stream entering layer L, so start each layer's pass there (`model(resid, start_at_layer=L)`) from the
# corrupted run's cached `blocks.L.hook_resid_pre`, with one copy of the batch per (position, head).

# %% tags=["exercise"]
def head_patching_by_position(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch seq"],
    corrupted_tokens: Int[Tensor, "batch seq"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
) -> Float[Tensor, "layer seq head"]:
    """Normalised effect of patching the clean hook_z of one (layer, position, head) into the corrupted run.

    Normalised so that 0 is the corrupted run's mean logit difference and 1 the clean run's (means over the batch);
    [layer, seq, head]. Patches are run in batches, not one forward pass each: grading allows at most 24
    forward passes of the model per call.
    """
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=lambda name: name.endswith("hook_z"))
    corrupted_logits, corrupted_cache = model.run_with_cache(
        corrupted_tokens, names_filter=lambda name: name.endswith(("hook_z", "hook_resid_pre")))
    clean_logits = model(clean_tokens)
    ld_clean = logit_diff(clean_logits, correct_tokens, wrong_tokens, end_positions).mean()
    ld_corrupted = logit_diff(corrupted_logits, correct_tokens, wrong_tokens, end_positions).mean()
    batch, seq = clean_tokens.shape
    n_heads = model.cfg.n_heads
    copies = seq * n_heads
    position_of_copy = torch.arange(seq, device=clean_tokens.device).repeat_interleave(n_heads)
    head_of_copy = torch.arange(n_heads, device=clean_tokens.device).repeat(seq)
    result = torch.zeros(model.cfg.n_layers, seq, n_heads, device=clean_tokens.device)
    for layer in range(model.cfg.n_layers):
        clean_z = clean_cache["z", layer]

        def patch(z: Tensor, hook) -> Tensor:
            z = z.clone().view(copies, batch, seq, n_heads, -1)
            copy = torch.arange(copies, device=z.device)
            z[copy, :, position_of_copy, head_of_copy] = clean_z[:, position_of_copy, head_of_copy].transpose(0, 1)
            return z.view(copies * batch, seq, n_heads, -1)

        resid = corrupted_cache["resid_pre", layer].repeat(copies, 1, 1)
        logits = model.run_with_hooks(resid, start_at_layer=layer,
                                      fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch)])
        per_copy = logit_diff(logits, correct_tokens.repeat(copies), wrong_tokens.repeat(copies),
                              end_positions.repeat(copies)).view(copies, batch).mean(dim=1)
        result[layer] = ((per_copy - ld_corrupted) / (ld_clean - ld_corrupted)).view(seq, n_heads)
    return result


# %%
if MAIN:
    import time

    from curriculum.library import circuits

    # Your batched version on all the prompts. (The course repository's bench/patching.py times a faster one, which
    # also skips the positions before each patch and every patch that changes nothing, against transformer_lens.)
    start = time.perf_counter()
    patch_effects = head_patching_by_position(model, clean_tokens, corrupted_tokens, io_tokens, s_tokens, end)
    print(f"batched patching on {len(clean_tokens)} prompts: {time.perf_counter() - start:.2f} s")
    # Positions by role, not by prompt 0's words: names sit at 3 and 5 (IO then S1 in ABBA prompts, S1 then IO in
    # BABA ones), S2 at 11, the answer is predicted at 15; the other positions hold template words of any frame.
    roles = ["BOS", "word", "word", "IO|S1", "and", "S1|IO", "verb", "word", "the", "PLACE", ",", "S2", "verb", "a",
             "OBJECT", "END"]
    position_labels = [f"{i}:{role}" for i, role in enumerate(roles)]
    plotting.show(plotting.imshow(patch_effects.transpose(1, 2), facet_labels=[f"layer {l}" for l in range(4)],
                                  x_labels=position_labels, y_labels=[f"H{h}" for h in range(4)],
                                  title="Patching clean head outputs into the ABC run (0 = corrupted, 1 = clean)"))
    strong = (patch_effects.abs() > 0.1).nonzero().tolist()
    print("slices with |effect| > 0.1:", {node_name(l, h, p): round(patch_effects[l, p, h].item(), 2)
                                          for l, p, h in strong})

# %% [markdown]
# Two places matter (the printout lists them). At the word right after **S2** (position 12), and a little at S2
# itself (11), heads of layer 0 carry what the ABC corruption changed: *which* name stands at S2, not that it repeats
# an earlier one (section 2: these heads barely look at S1). At the **end** position, heads of layers 2 and 3 carry
# it to the output, where the direct effects found them. No single slice brings back more than about a quarter of
# the logit difference: the behaviour is spread over several heads, each of which patching shows as partial. (The
# x axis names positions by role: 3 and 5 hold IO and S1 in either order, 11 is S2, 15 the end.)
#
# ## 6. Path patching
#
# Activation patching changes a head's output *and everything downstream of it*. Path patching asks about one path
# at a time. Patch here from the corrupted run into the clean one (the other direction from section 5: we ask what
# breaks), and normalise as `(LD_patched - LD_clean) / (LD_clean - LD_corrupted)`: 0 means no effect, -1 means as
# bad as the corrupted run.
#
# **To the logits.** Give one *sender* head its corrupted output (at every position), and freeze every other head
# at its clean output. The MLPs and LayerNorms recompute, so the change reaches the logits through the residual
# stream and the MLPs only, never through another head. Evaluate all senders in one batched pass (one copy of the
# batch per sender).

# %% tags=["exercise"]
def path_patching_to_logits(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch seq"],
    corrupted_tokens: Int[Tensor, "batch seq"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
) -> Float[Tensor, "layer head"]:
    """Effect of each sender head's corrupted output on the clean logit difference, other heads frozen clean.

    The change in the mean logit difference from the clean run, divided by the gap between the clean and corrupted
    runs: 0 no effect, -1 as bad as the corrupted run; [layer, head].
    """
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=lambda name: name.endswith("hook_z"))
    _, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=lambda name: name.endswith("hook_z"))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    senders = n_layers * n_heads
    batch = clean_tokens.shape[0]
    ld_clean = logit_diff(model(clean_tokens), correct_tokens, wrong_tokens, end_positions).mean()
    ld_corrupted = logit_diff(model(corrupted_tokens), correct_tokens, wrong_tokens, end_positions).mean()

    def sender_patch(z: Tensor, hook, layer: int) -> Tensor:
        # copy s = layer * n_heads + head corrupts head (layer, head) only
        is_sender = torch.eye(senders, dtype=torch.bool, device=z.device)[:, layer * n_heads:(layer + 1) * n_heads]
        mask = is_sender.repeat_interleave(batch, dim=0)[:, None, :, None]  # [copy*batch, 1, head, 1]
        clean = clean_cache["z", layer].repeat(senders, 1, 1, 1)
        corrupted = corrupted_cache["z", layer].repeat(senders, 1, 1, 1)
        return torch.where(mask, corrupted, clean)

    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: sender_patch(z, hook, layer))
             for layer in range(n_layers)]
    logits = model.run_with_hooks(clean_tokens.repeat(senders, 1), fwd_hooks=hooks)
    per_sender = logit_diff(logits, correct_tokens.repeat(senders), wrong_tokens.repeat(senders),
                            end_positions.repeat(senders)).view(senders, batch).mean(dim=1)
    return ((per_sender - ld_clean) / (ld_clean - ld_corrupted)).view(n_layers, n_heads)


# %% [markdown]
# **To chosen receivers.** The IOI paper found the name movers' *queries* fed by *S-inhibition* heads. To test such a
# path: (1) run the clean prompts with one sender corrupted and every other head frozen clean, and record the
# receivers' query (or key, or value) vectors, `hook_q`/`hook_k`/`hook_v` of the receiver heads; (2) run the clean
# prompts again, free, but with the receivers' q (k, v) set to what run (1) recorded. A head's query is a function
# of its input only, so patching `hook_q` of one head is the same as feeding that head's query input alone from the
# other run (what `use_split_qkv_input` would do, without changing the model's configuration). A sender at or above
# every receiver's layer cannot reach them: its effect is 0.

# %% tags=["exercise"]
def path_patching_to_receivers(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch seq"],
    corrupted_tokens: Int[Tensor, "batch seq"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
    receivers: list[tuple[int, int]],
    component: str,
) -> Float[Tensor, "layer head"]:
    """Effect of each sender head through the `component` ("q", "k" or "v") input of the receiver heads only.

    Run 1: clean tokens, the sender's hook_z corrupted, every other head's hook_z clean; record hook_{component}
    of the receivers (at every position). Run 2: clean tokens, nothing frozen, receivers' hook_{component} set to
    the recorded values. Returns, per sender [layer, head], run 2's change in mean logit difference normalised as in
    `path_patching_to_logits`. ValueError for any other component.
    """
    if component not in ("q", "k", "v"):
        raise ValueError(f"component must be 'q', 'k' or 'v', got {component!r}")
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=lambda name: name.endswith("hook_z"))
    _, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=lambda name: name.endswith("hook_z"))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    senders = n_layers * n_heads
    batch = clean_tokens.shape[0]
    ld_clean = logit_diff(model(clean_tokens), correct_tokens, wrong_tokens, end_positions).mean()
    ld_corrupted = logit_diff(model(corrupted_tokens), correct_tokens, wrong_tokens, end_positions).mean()
    is_sender = torch.eye(senders, dtype=torch.bool, device=clean_tokens.device).view(senders, n_layers, n_heads)

    def freeze(z: Tensor, hook, layer: int) -> Tensor:
        mask = is_sender[:, layer].repeat_interleave(batch, dim=0)[:, None, :, None]
        clean = clean_cache["z", layer].repeat(senders, 1, 1, 1)
        return torch.where(mask, corrupted_cache["z", layer].repeat(senders, 1, 1, 1), clean)

    receiver_hooks = sorted({f"blocks.{layer}.attn.hook_{component}" for layer, _ in receivers})
    recorded: dict[str, Tensor] = {}

    def record(activation: Tensor, hook) -> None:
        recorded[hook.name] = activation.clone()

    run1 = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: freeze(z, hook, layer))
            for layer in range(n_layers)] + [(name, record) for name in receiver_hooks]
    model.run_with_hooks(clean_tokens.repeat(senders, 1), fwd_hooks=run1)

    def receive(activation: Tensor, hook) -> Tensor:
        activation = activation.clone()
        for layer, head in receivers:
            if hook.name == f"blocks.{layer}.attn.hook_{component}":
                activation[:, :, head] = recorded[hook.name][:, :, head]
        return activation

    logits = model.run_with_hooks(clean_tokens.repeat(senders, 1), fwd_hooks=[(n, receive) for n in receiver_hooks])
    per_sender = logit_diff(logits, correct_tokens.repeat(senders), wrong_tokens.repeat(senders),
                            end_positions.repeat(senders)).view(senders, batch).mean(dim=1)
    return ((per_sender - ld_clean) / (ld_clean - ld_corrupted)).view(n_layers, n_heads)


# %%
if MAIN:
    to_logits = path_patching_to_logits(model, clean_tokens, corrupted_tokens, io_tokens, s_tokens, end)
    head_labels = [f"L{l}H{h}" for l in range(4) for h in range(4)]
    print("path patching to the logits:", {head_labels[i]: round(v, 2) for i, v in enumerate(to_logits.flatten().tolist())})
    name_movers = [(3, 0), (3, 1), (3, 2), (3, 3)]
    to_receivers = {c: path_patching_to_receivers(model, clean_tokens, corrupted_tokens, io_tokens, s_tokens, end,
                                                  name_movers, c) for c in ("q", "k", "v")}
    plotting.show(plotting.imshow(torch.stack([to_logits] + list(to_receivers.values())),
                                  facet_labels=["to logits", "to L3 queries", "to L3 keys", "to L3 values"],
                                  y_labels=[f"L{l}" for l in range(4)], x_labels=[f"H{h}" for h in range(4)],
                                  title="Path patching (0 = no effect, -1 = as corrupted)"))
    for c, values in to_receivers.items():
        print(f"to the layer-3 heads' {c}:", {head_labels[i]: round(v, 2)
                                              for i, v in enumerate(values.flatten().tolist()) if abs(v) > 0.05})

# %% [markdown]
# Where do the heads at the end position look? Average each head's attention from the end position to the
# positions of IO, S1 and S2 (each prompt has its own IO and S1 positions).

# %%
def attention_to_roles(model: HookedTransformer, tokens: Tensor, positions: Tensor) -> Tensor:
    """[layer, head, role] mean attention from the end position to IO, S1 and S2."""
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    rows = torch.arange(tokens.shape[0])
    result = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, 3)
    for layer in range(model.cfg.n_layers):
        from_end = cache["pattern", layer][rows, :, positions[:, 3]]  # [batch, head, key]
        for role in range(3):
            result[layer, :, role] = from_end[rows, :, positions[:, role]].mean(dim=0)
    return result


if MAIN:
    role_attention = attention_to_roles(model, clean_tokens, positions)
    _, pattern_cache = model.run_with_cache(clean_tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    from_end = torch.stack([pattern_cache["pattern", layer][:, :, -1].mean(0) for layer in range(4)])  # [layer, head, key]
    plotting.show(plotting.imshow(from_end.flatten(0, 1), x_labels=position_labels, y_labels=head_labels,
                                  diverging=False, zrange=(0.0, 1.0), title="Mean attention from the end position"))
    rows = torch.arange(len(clean_tokens))
    after_s2 = pattern_cache["pattern", 0][:, :, S2_POSITION + 1]  # [batch, head, key]
    for head in range(4):
        print(f"L0H{head} at S2+1: attention to S2 {after_s2[:, head, S2_POSITION].mean():.2f}, to IO "
              f"{after_s2[rows, head, positions[:, 0]].mean():.2f}, to S1 {after_s2[rows, head, positions[:, 1]].mean():.2f}")
    for layer in (0, 2, 3):
        for head in range(4):
            io_a, s1_a, s2_a = role_attention[layer, head].tolist()
            top_key = int(from_end[layer, head].argmax())
            print(f"L{layer}H{head}: attention to IO {io_a:.2f}, S1 {s1_a:.2f}, S2 {s2_a:.2f}; most to position "
                  f"{position_labels[top_key]} ({from_end[layer, head, top_key]:.2f})")

# %% [markdown]
# Put the measurements side by side. Path patching to the logits picks out the layer-3 heads and L2H0 and L2H2: their
# corrupted outputs hurt through the direct path. Through the layer-3 heads' *queries* and *keys* nothing flows
# (every sender's effect is tiny), but through their *values* the layer-0 heads matter. The attention maps say why:
# from the end position, the layer-3 heads (and L2H2) look at the word after S2, L2H0 at S2 itself, and none of them
# at IO; the layer-0 heads at the word after S2 look back at S2. So the repeated name is read at S2, copied one step
# on by layer 0, and fetched from there to the end by the late heads through their values, while the layer-0 heads
# at the end look at the two names of the sentence.
#
# Compare with the IOI paper's circuit in GPT-2 small: there, duplicate-token and induction heads mark S2, S-inhibition
# heads move that mark to the end, and it acts on the *queries* of name-mover heads, which then attend to IO and copy
# it. Here the late heads never attend to IO and their queries carry nothing from the senders: the data fit a
# different mechanism, in which the late heads move information about the *subject* to the end (their direct effect
# on IO - S is positive, so they push S down or IO up without attending to IO), rather than copying the answer.
# Which of the two they do, section 11 measures.

# %% [markdown]
# ## 7. Mean ablation and faithfulness
#
# A circuit claims: *these heads, at these positions, are enough*. To test it, keep every slice of the circuit as it
# is and replace every other head output by its **mean over a reference dataset**, separately at each position: the
# mean keeps what a head always writes there and removes what depends on the prompt. (Zero ablation would also
# remove the constant part, a larger change the model never saw in training.)
#
# A circuit is a mask `keep[layer, pos, head]`. First the means: the average `hook_z` over the reference prompts,
# per layer, position and head (averaged over the prompts, never over positions).

# %% tags=["exercise"]
def reference_means(model: HookedTransformer, reference_tokens: Int[Tensor, "batch seq"]
                    ) -> Float[Tensor, "layer seq head d_head"]:
    """Mean of hook_z over the reference prompts, per layer, position and head."""
    _, cache = model.run_with_cache(reference_tokens, names_filter=lambda name: name.endswith("hook_z"))
    return torch.stack([cache["z", layer].mean(dim=0) for layer in range(model.cfg.n_layers)])


# %% tags=["exercise"]
def mean_ablated_logits(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    means: Float[Tensor, "layer seq head d_head"],
    keep: Bool[Tensor, "layer seq head"],
) -> Float[Tensor, "batch seq d_vocab"]:
    """Logits with hook_z of every (layer, position, head) where keep is False replaced by its mean."""
    def ablate(z: Tensor, hook, layer: int) -> Tensor:
        return torch.where(keep[layer][None, :, :, None], z, means[layer])

    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: ablate(z, hook, layer))
             for layer in range(model.cfg.n_layers)]
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


# %% [markdown]
# The **faithfulness** of a circuit is its mean logit difference as a percentage of the full model's:
# `100 * LD(circuit) / LD(model)`, both averaged over the prompts. 100% means the circuit does all the model does.

# %% tags=["exercise"]
def faithfulness(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    means: Float[Tensor, "layer seq head d_head"],
    keep: Bool[Tensor, "layer seq head"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
) -> float:
    """The mean logit difference of the mean-ablated circuit as a percentage of the full model's (both means over
    the prompts), as a Python float: 100 when the circuit does all the model does."""
    full = logit_diff(model(tokens), correct_tokens, wrong_tokens, end_positions).mean()
    ablated = logit_diff(mean_ablated_logits(model, tokens, means, keep), correct_tokens, wrong_tokens,
                         end_positions).mean()
    return (100 * ablated / full).item()


# %%
if MAIN:
    means = reference_means(model, corrupted_tokens)  # means of a corrupted dataset, as in the study of section 8
    n_layers, n_heads, seq = model.cfg.n_layers, model.cfg.n_heads, clean_tokens.shape[1]
    everything = torch.ones(n_layers, seq, n_heads, dtype=torch.bool)
    nothing = torch.zeros_like(everything)
    print(f"faithfulness of the whole model: {faithfulness(model, clean_tokens, means, everything, io_tokens, s_tokens, end):.1f}%")
    print(f"faithfulness with every head mean-ablated: {faithfulness(model, clean_tokens, means, nothing, io_tokens, s_tokens, end):.1f}%")

# %% [markdown]
# ## 8. Greedy pruning
#
# A public mean-ablation study of number sequences in GPT-2 medium found its circuit by a greedy loop. A *node* is a set
# of (layer, position, head) slices: a whole head, or one head at one position. Start with every node in the circuit; go
# through the nodes in a fixed order; remove a node when the circuit without it still scores `100 - faithfulness < T`,
# i.e. loses less than `T` percent of the full model's logit difference. Slices that no node covers stay ablated all
# along. Nodes are given as masks `nodes[node, layer, pos, head]`, in order; return which nodes stay.
#
# First the plain loop, one forward pass per candidate.

# %% tags=["exercise"]
def greedy_prune_sequential(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    means: Float[Tensor, "layer seq head d_head"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
    nodes: Bool[Tensor, "node layer seq head"],
    threshold: float,
) -> Bool[Tensor, "node"]:
    """Which nodes the greedy loop keeps, a bool [node]: visiting the nodes in the given order, a node is dropped
    when the circuit without it (and without the nodes dropped so far) loses less than `threshold` percentage points
    of the full model's logit difference, i.e. its faithfulness stays above 100 minus `threshold`.

    A circuit is the union of its nodes' masks; it starts with every node kept.
    """
    full = logit_diff(model(tokens), correct_tokens, wrong_tokens, end_positions).mean()  # once, not per node
    kept = torch.ones(nodes.shape[0], dtype=torch.bool, device=nodes.device)
    for i in range(nodes.shape[0]):
        trial = kept.clone()
        trial[i] = False
        keep = (nodes & trial[:, None, None, None]).any(dim=0)
        ablated = logit_diff(mean_ablated_logits(model, tokens, means, keep), correct_tokens, wrong_tokens,
                             end_positions).mean()
        if 100 - (100 * ablated / full).item() < threshold:
            kept = trial
    return kept


# %% [markdown]
# One forward pass per node is slow when there are hundreds of nodes (384 heads in GPT-2 medium, the model of that
# study). Batch it *without changing the answer*: evaluate the next `speculation` candidates in one pass, candidate j on
# the circuit that results if every earlier candidate of the pass is removed. Walk the scores in order: each removal
# that passes the test is real; at the first that fails, that node stays (its score was computed on the true current
# circuit, so the decision is exact) and every later score of the pass was computed on a wrong guess: discard them and
# start the next pass after the failed node. The result is the sequential loop's, node for node.

# %% tags=["exercise"]
def greedy_prune_batched(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    means: Float[Tensor, "layer seq head d_head"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
    nodes: Bool[Tensor, "node layer seq head"],
    threshold: float,
    speculation: int,
) -> Bool[Tensor, "node"]:
    """The same kept nodes as `greedy_prune_sequential`, evaluating up to `speculation` candidates per forward pass
    (one copy of the batch per candidate circuit). Grading allows at most 44 forward passes of the model per call
    (the sequential loop runs one per node)."""
    n_nodes, batch = nodes.shape[0], tokens.shape[0]
    full = logit_diff(model(tokens), correct_tokens, wrong_tokens, end_positions).mean()
    kept = torch.ones(n_nodes, dtype=torch.bool, device=nodes.device)
    i = 0
    while i < n_nodes:
        candidates = list(range(i, min(i + speculation, n_nodes)))
        trials, trial = [], kept.clone()
        for j in candidates:
            trial = trial.clone()
            trial[j] = False
            trials.append((nodes & trial[:, None, None, None]).any(dim=0))
        keeps = torch.stack(trials)  # [copy, layer, seq, head]
        copies = len(candidates)

        def ablate(z: Tensor, hook, layer: int) -> Tensor:
            mask = keeps[:, layer].repeat_interleave(batch, dim=0)[..., None]
            return torch.where(mask, z, means[layer])

        hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: ablate(z, hook, layer))
                 for layer in range(model.cfg.n_layers)]
        logits = model.run_with_hooks(tokens.repeat(copies, 1), fwd_hooks=hooks)
        scores = 100 * logit_diff(logits, correct_tokens.repeat(copies), wrong_tokens.repeat(copies),
                                  end_positions.repeat(copies)).view(copies, batch).mean(dim=1) / full
        for j, score in zip(candidates, scores.tolist()):
            i = j + 1
            if 100 - score < threshold:
                kept[j] = False
            else:
                break
    return kept


# %%
if MAIN:
    threshold = 3.0
    head_nodes = circuits.head_nodes(n_layers, n_heads, seq)
    start = time.perf_counter()
    kept_heads = greedy_prune_batched(model, clean_tokens, means, io_tokens, s_tokens, end, head_nodes, threshold, 8)
    print(f"head-level pruning at T = {threshold}%: {int(kept_heads.sum())} of {len(kept_heads)} heads kept "
          f"({time.perf_counter() - start:.1f} s)")
    head_circuit = (head_nodes & kept_heads[:, None, None, None]).any(0)
    head_faithfulness = faithfulness(model, clean_tokens, means, head_circuit, io_tokens, s_tokens, end)
    print(f"faithfulness {head_faithfulness:.1f}%")

# %% [markdown]
# At the level of whole heads little can go: the behaviour is spread over most heads, as the patching map
# suggested. That study kept heads only at chosen positions; here a node is one head at one position, 256 nodes, and
# your `greedy_prune_batched` does the search.

# %%
if MAIN:
    position_nodes = circuits.head_position_nodes(n_layers, n_heads, seq, positions=range(seq))

    start = time.perf_counter()
    kept_positions = greedy_prune_batched(model, clean_tokens, means, io_tokens, s_tokens, end, position_nodes,
                                          threshold, 4)
    ioi_circuit = (position_nodes & kept_positions[:, None, None, None]).any(0)
    ioi_faithfulness = faithfulness(model, clean_tokens, means, ioi_circuit, io_tokens, s_tokens, end)
    ioi_nodes = [node_name(l, h, p) for l, p, h in ioi_circuit.nonzero().tolist()]
    print(f"(head, position) pruning at T = {threshold}%: {len(ioi_nodes)} of {len(position_nodes)} nodes kept, "
          f"faithfulness {ioi_faithfulness:.1f}% ({time.perf_counter() - start:.1f} s)")
    print("IOI circuit:", ioi_nodes)
    plotting.show(plotting.imshow(ioi_circuit.float().transpose(1, 2), facet_labels=[f"layer {l}" for l in range(4)],
                                  x_labels=position_labels, y_labels=[f"H{h}" for h in range(4)], diverging=False,
                                  title="The IOI circuit found by pruning (1 = kept)"))

# %% [markdown]
# The printout names the circuit: layer-0 heads at S2 and at the word after it, and the heads of layers 1 to 3 at the
# end position, with a layer-0 head or two at the end as well. Fewer than one node in ten survives (17 of 256), and
# the circuit keeps 98.9% of the logit difference on the 30 prompts it was pruned on. Every node sits at one of three
# positions: S2, the word after S2, and the end, the same places that activation patching lit up.
#
# Two limits of that statement. **What is a node:** only head outputs at positions; the embeddings, attention biases,
# LayerNorms and MLPs were never ablated, so they belong to every circuit (section 11 ablates the MLPs too). **In
# sample:** pruning chose the nodes on these 30 prompts, so 98.9% is a training score; section 9 scores the circuit
# on 200 other prompts.

# %% [markdown]
# ## 9. Minimality
#
# Pruning stops removing a node when removing it costs more than `T`; but is every node that stayed *needed*?
# For each kept node, measure how much the circuit's faithfulness drops without it (in percentage points of the
# full model). A node with a near-zero drop survived only because of the order of the loop.

# %% tags=["exercise"]
def minimality(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    means: Float[Tensor, "layer seq head d_head"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
    nodes: Bool[Tensor, "node layer seq head"],
    kept: Bool[Tensor, "node"],
) -> Float[Tensor, "node"]:
    """For each kept node, the faithfulness the circuit loses without it (percentage points: the circuit's score
    minus the score of the circuit without that node); 0.0 for nodes not kept.

    The circuit is the union of the kept nodes' masks; float32 [node].
    """
    full = logit_diff(model(tokens), correct_tokens, wrong_tokens, end_positions).mean()  # once, not per node

    def score(keep: Bool[Tensor, "layer seq head"]) -> float:  # faithfulness(...), the full model's run reused
        ablated = logit_diff(mean_ablated_logits(model, tokens, means, keep), correct_tokens, wrong_tokens,
                             end_positions).mean()
        return (100 * ablated / full).item()

    base = score((nodes & kept[:, None, None, None]).any(dim=0))
    drops = torch.zeros(nodes.shape[0], device=nodes.device)
    for i in kept.nonzero().flatten().tolist():
        without = kept.clone()
        without[i] = False
        drops[i] = base - score((nodes & without[:, None, None, None]).any(dim=0))
    return drops


# %%
if MAIN:
    ioi_minimality = minimality(model, clean_tokens, means, io_tokens, s_tokens, end, position_nodes, kept_positions)
    kept_index = kept_positions.nonzero().flatten()
    kept_names = [node_name(int(position_nodes[i].nonzero()[0, 0]), int(position_nodes[i].nonzero()[0, 2]),
                            int(position_nodes[i].nonzero()[0, 1])) for i in kept_index]
    plotting.show(plotting.bar(ioi_minimality[kept_index], labels=kept_names,
                               title="Faithfulness lost without each node of the IOI circuit (points)"))
    print("minimality (points lost):", {n: round(v, 1) for n, v in zip(kept_names, ioi_minimality[kept_index].tolist())})
    cheap = [n for n, v in zip(kept_names, ioi_minimality[kept_index].tolist()) if v < threshold]
    print(f"kept nodes that cost less than T = {threshold} points on their own: {cheap}")
    # The circuit was pruned on these 30 prompts: score it on the 200 other held-out prompts of section 2 as well,
    # with means of their own ABC corruption.
    held_positions = ioi_positions(reference.tokens, reference.io_tokens, reference.s_tokens)
    held_corrupted = abc_corruption(reference.tokens, held_positions, name_tokens, torch.Generator().manual_seed(9))
    held_faithfulness = faithfulness(model, reference.tokens, reference_means(model, held_corrupted), ioi_circuit,
                                     reference.io_tokens, reference.s_tokens, held_positions[:, 3])
    print(f"faithfulness of the IOI circuit: {ioi_faithfulness:.1f}% on the 30 prompts it was pruned on, "
          f"{held_faithfulness:.1f}% on 200 other held-out prompts")

# %% [markdown]
# Every kept node costs something, but three cost less than `T` on their own (L0H0 at the end 1.0 points, L2H3 at
# the end 1.5, L1H3 at the end 1.6). Each of them stayed because it was visited early, when the circuit was still
# large: removing it *then* cost more than 3 points, as other nodes that have since gone shared its work. Dropping
# all three together would cost more than any one. So the circuit is minimal only in the greedy loop's sense: no
# node could be removed at the moment it was tried. A different order would keep a different, also "minimal" set.
# Held out, the circuit keeps 92.5% of the logit difference on 200 other prompts, against 98.9% on the 30 it was
# pruned on: part of what pruning kept fits those prompts, and a circuit's faithfulness should be reported on
# prompts it was not chosen on.

# %% [markdown]
# ## 10. Number sequences
#
# The same tools, a second behaviour. A prompt is `a, a+d, ..., a+kd` and the answer `a+(k+1)d`. The number-sequence
# study's metric: the logit difference between the next number and a *repeat* of the last one (the most tempting wrong
# answer for a model that copies). Compute both answer tokens from the prompt alone (number n has token id
# `NUMBER_OFFSET + n`, so differences of token ids are differences of numbers).

# %% tags=["exercise"]
def number_answer_tokens(tokens: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch 2"]:
    """(next, repeat) token ids per prompt: the next term of the arithmetic sequence, and the last term again."""
    last, before = tokens[:, -1], tokens[:, -2]
    return torch.stack([last + (last - before), last], dim=1)


# %% [markdown]
# For patching we need a corrupted twin, and for mean ablation a reference set. That study used sequences whose last
# number repeats the one before (`1 3 5 7 9 9`): the step is broken at the very end.

# %% tags=["exercise"]
def repeat_last_corruption(tokens: Int[Tensor, "batch seq"]) -> Int[Tensor, "batch seq"]:
    """A copy of `tokens` whose last number is replaced by the number before it."""
    corrupted = tokens.clone()
    corrupted[:, -1] = tokens[:, -2]
    return corrupted


# %%
if MAIN:
    from curriculum.data.number_sequences import number_sequences

    sequences = number_sequences(30, 6, torch.Generator().manual_seed(8))
    number_tokens = sequences.tokens
    answers = number_answer_tokens(number_tokens)
    print("answers agree with the generator:", bool((answers[:, 0] == sequences.answers).all()))
    number_corrupted = repeat_last_corruption(number_tokens)
    number_end = torch.full((len(number_tokens),), number_tokens.shape[1] - 1)
    next_tok, repeat_tok = answers[:, 0], answers[:, 1]
    number_ld = logit_diff(model(number_tokens), next_tok, repeat_tok, number_end)
    number_corrupted_ld = logit_diff(model(number_corrupted), next_tok, repeat_tok, number_end)
    print(f"numbers: logit difference next - repeat {number_ld.mean():.2f}, corrupted {number_corrupted_ld.mean():.2f}")
    number_patching = head_patching_by_position(model, number_tokens, number_corrupted, next_tok, repeat_tok,
                                                number_end)
    number_labels = ["BOS"] + [f"term {i}" for i in range(1, number_tokens.shape[1] - 1)] + ["END (last term)"]
    plotting.show(plotting.imshow(number_patching.transpose(1, 2), facet_labels=[f"layer {l}" for l in range(4)],
                                  x_labels=number_labels, y_labels=[f"H{h}" for h in range(4)],
                                  title="Numbers: patching clean head outputs into the repeat-corrupted run"))
    strong = (number_patching.abs() > 0.1).nonzero().tolist()
    print("slices with |effect| > 0.1:", {node_name(l, h, p): round(number_patching[l, p, h].item(), 2)
                                          for l, p, h in strong})
    number_means = reference_means(model, number_corrupted)
    number_seq = number_tokens.shape[1]
    number_nodes = circuits.head_position_nodes(n_layers, n_heads, number_seq, positions=range(1, number_seq))
    kept_numbers = greedy_prune_batched(model, number_tokens, number_means, next_tok, repeat_tok, number_end,
                                        number_nodes, threshold, 4)
    number_circuit = (number_nodes & kept_numbers[:, None, None, None]).any(0)
    number_faithfulness = faithfulness(model, number_tokens, number_means, number_circuit, next_tok, repeat_tok,
                                       number_end)
    number_circuit_nodes = [node_name(l, h, p) for l, p, h in number_circuit.nonzero().tolist()]
    print(f"number circuit: {len(number_circuit_nodes)} of {len(number_nodes)} nodes, faithfulness "
          f"{number_faithfulness:.1f}%: {number_circuit_nodes}")

# %% [markdown]
# The corrupted prompts differ from the clean ones only at the last position, so patching can only find effects
# there: at every earlier position both runs are identical. The pruned circuit says more: heads of layers 0 and 1
# are kept at the numbers of the sequence, and heads of layers 2 and 3 only at the last position, where the next
# number is predicted. The early layers read the terms where they stand; the late heads gather at the end. This
# circuit is not small: it keeps 33 of 96 nodes, a third, for 97.1% faithfulness.

# %% [markdown]
# ## 11. Capstone: where does the IO logit come from, and what do the late heads do?
#
# The direct effects of section 4 measure IO - S: a component that raises IO and one that lowers S look alike. Three
# more functions of your own answer the question. (1) Split the direct effect in two: project each component on the
# IO name's unembedding and on the S name's, each measured against the average name (`W_U[:, t]` minus the mean of
# `W_U` over `name_tokens`), so that a component that lifts every name alike scores 0 on both. (2) Path-patch into an
# MLP: which heads does the largest MLP read from? (3) Test the answer with an ablation that should remove the
# behaviour: mean-ablate heads *and MLPs* outside a set and see what is left.

# %% tags=["exercise"]
def name_direct_effects(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    io_tokens: Int[Tensor, "batch"],
    s_tokens: Int[Tensor, "batch"],
    name_tokens: Int[Tensor, "names"],
    end_positions: Int[Tensor, "batch"],
) -> Float[Tensor, "component batch 2"]:
    """Direct effect of each component on the IO logit (column 0) and on the S logit (column 1), each relative to the
    average name: the direction of a name t is its unembedding minus the mean unembedding of `name_tokens`.

    Components and the frozen final LayerNorm exactly as in `direct_effects` (same rows, same order).
    Column 0 minus column 1 is `direct_effects` with IO as the correct token and S as the wrong one.
    """
    _, cache = model.run_with_cache(tokens)
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    parts = [cache["hook_embed"][rows, end_positions], cache["hook_pos_embed"][rows, end_positions]]
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer][rows, end_positions]
        parts.extend(torch.einsum("bhe,hed->hbd", z, model.W_O[layer]).unbind(0))
        parts.append(model.b_O[layer].expand(len(rows), -1))
        parts.append(cache["mlp_out", layer][rows, end_positions])
    stack = torch.stack(parts)
    stack = stack - stack.mean(dim=-1, keepdim=True)
    stack = stack / cache["ln_final.hook_scale"][rows, end_positions] * model.ln_final.w
    average_name = model.W_U[:, name_tokens].mean(dim=1, keepdim=True)
    io_direction = model.W_U[:, io_tokens] - average_name  # [d_model, batch]
    s_direction = model.W_U[:, s_tokens] - average_name
    return torch.stack([torch.einsum("cbd,db->cb", stack, io_direction),
                        torch.einsum("cbd,db->cb", stack, s_direction)], dim=-1)


# %% tags=["exercise"]
def path_patching_to_mlp(
    model: HookedTransformer,
    clean_tokens: Int[Tensor, "batch seq"],
    corrupted_tokens: Int[Tensor, "batch seq"],
    correct_tokens: Int[Tensor, "batch"],
    wrong_tokens: Int[Tensor, "batch"],
    end_positions: Int[Tensor, "batch"],
    mlp_layer: int,
) -> Float[Tensor, "layer head"]:
    """Effect of each sender head on the clean logit difference through the MLP of `mlp_layer` only.

    The path: the sender's corrupted output, every other head's output frozen at its clean value, reaches the MLP's
    input; the MLP's output (at every position) then enters an otherwise clean, unfrozen run. Normalised as
    `path_patching_to_logits`: 0 no effect, -1 as bad as the corrupted run. A sender above `mlp_layer` has effect 0.
    ValueError when `mlp_layer` is not a layer of the model.
    """
    if not 0 <= mlp_layer < model.cfg.n_layers:
        raise ValueError(f"mlp_layer must lie in [0, {model.cfg.n_layers}), got {mlp_layer}")
    _, clean_cache = model.run_with_cache(clean_tokens, names_filter=lambda name: name.endswith("hook_z"))
    _, corrupted_cache = model.run_with_cache(corrupted_tokens, names_filter=lambda name: name.endswith("hook_z"))
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    senders = n_layers * n_heads
    batch = clean_tokens.shape[0]
    ld_clean = logit_diff(model(clean_tokens), correct_tokens, wrong_tokens, end_positions).mean()
    ld_corrupted = logit_diff(model(corrupted_tokens), correct_tokens, wrong_tokens, end_positions).mean()
    is_sender = torch.eye(senders, dtype=torch.bool, device=clean_tokens.device).view(senders, n_layers, n_heads)

    def freeze(z: Tensor, hook, layer: int) -> Tensor:
        mask = is_sender[:, layer].repeat_interleave(batch, dim=0)[:, None, :, None]
        return torch.where(mask, corrupted_cache["z", layer].repeat(senders, 1, 1, 1),
                           clean_cache["z", layer].repeat(senders, 1, 1, 1))

    recorded: dict[str, Tensor] = {}
    mlp_hook = f"blocks.{mlp_layer}.hook_mlp_out"
    run1 = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: freeze(z, hook, layer))
            for layer in range(mlp_layer + 1)]
    run1.append((mlp_hook, lambda out, hook: recorded.setdefault("out", out.clone())))
    model.run_with_hooks(clean_tokens.repeat(senders, 1), fwd_hooks=run1, stop_at_layer=mlp_layer + 1)
    logits = model.run_with_hooks(clean_tokens.repeat(senders, 1),
                                  fwd_hooks=[(mlp_hook, lambda out, hook: recorded["out"])])
    per_sender = logit_diff(logits, correct_tokens.repeat(senders), wrong_tokens.repeat(senders),
                            end_positions.repeat(senders)).view(senders, batch).mean(dim=1)
    return ((per_sender - ld_clean) / (ld_clean - ld_corrupted)).view(n_layers, n_heads)


# %% tags=["exercise"]
def ablate_heads_and_mlps(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch seq"],
    reference_tokens: Int[Tensor, "batch_ref seq"],
    keep_heads: Bool[Tensor, "layer seq head"],
    keep_mlps: Bool[Tensor, "layer seq"],
) -> Float[Tensor, "batch seq d_vocab"]:
    """Logits with every head output (hook_z) and every MLP output (hook_mlp_out) outside the kept set replaced by
    its mean over `reference_tokens`, per layer and position (and head).

    Embeddings, attention biases and LayerNorms are never ablated. `reference_tokens` has the prompts' length.
    """
    _, reference = model.run_with_cache(reference_tokens,
                                        names_filter=lambda name: name.endswith(("hook_z", "hook_mlp_out")))

    def heads(z: Tensor, hook, layer: int) -> Tensor:
        return torch.where(keep_heads[layer][None, :, :, None], z, reference["z", layer].mean(dim=0))

    def mlp(out: Tensor, hook, layer: int) -> Tensor:
        return torch.where(keep_mlps[layer][None, :, None], out, reference["mlp_out", layer].mean(dim=0))

    hooks = []
    for layer in range(model.cfg.n_layers):
        hooks.append((f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: heads(z, hook, layer)))
        hooks.append((f"blocks.{layer}.hook_mlp_out", lambda out, hook, layer=layer: mlp(out, hook, layer)))
    return model.run_with_hooks(tokens, fwd_hooks=hooks)


# %%
if MAIN:
    name_effects = name_direct_effects(model, clean_tokens, io_tokens, s_tokens, name_tokens, end).mean(dim=1)
    plotting.show(plotting.imshow(name_effects.T, x_labels=labels, y_labels=["IO logit", "S logit"],
                                  title="Direct effect on each name's logit (against the average name)"))
    io_top = name_effects[:, 0].argsort(descending=True)[:3].tolist()
    s_top = name_effects[:, 1].argsort()[:5].tolist()
    print("raise the IO logit most:", {labels[i]: round(name_effects[i, 0].item(), 2) for i in io_top})
    print("lower the S logit most:", {labels[i]: round(name_effects[i, 1].item(), 2) for i in s_top})
    # The MLP that separates the names most (raises IO more than S), and the heads that push S down.
    io_mlp = max(range(n_layers), key=lambda layer: (name_effects[labels.index(f"L{layer} MLP"), 0]
                                                     - name_effects[labels.index(f"L{layer} MLP"), 1]).item())
    s_pushers = [(layer, head) for layer in range(n_layers) for head in range(n_heads)
                 if name_effects[labels.index(f"L{layer}H{head}"), 1] < -0.3]
    print(f"the MLP that separates IO from S: L{io_mlp}; heads that push S down by over 0.3:",
          [f"L{layer}H{head}" for layer, head in s_pushers])
    to_mlp = path_patching_to_mlp(model, clean_tokens, corrupted_tokens, io_tokens, s_tokens, end, io_mlp)
    print(f"path patching into the L{io_mlp} MLP:", {head_labels[i]: round(v, 2)
                                                     for i, v in enumerate(to_mlp.flatten().tolist()) if abs(v) > 0.03})
    every_head = torch.ones(n_layers, seq, n_heads, dtype=torch.bool)
    every_mlp = torch.ones(n_layers, seq, dtype=torch.bool)

    def ablated_ld(keep_heads: Tensor, keep_mlps: Tensor) -> float:
        logits = ablate_heads_and_mlps(model, clean_tokens, corrupted_tokens, keep_heads, keep_mlps)
        return logit_diff(logits, io_tokens, s_tokens, end).mean().item()

    without_mlp = every_mlp.clone()
    without_mlp[io_mlp, END_POSITION] = False
    without_pushers = every_head.clone()
    for layer, head in s_pushers:
        without_pushers[layer, END_POSITION, head] = False
    capstone = {
        f"L{io_mlp} MLP at END": ablated_ld(every_head, without_mlp),
        "S-pushing heads at END": ablated_ld(without_pushers, every_mlp),
        "both": ablated_ld(without_pushers, without_mlp),
    }
    print(f"clean logit difference {clean_ld.mean():.2f}; mean-ablating (ABC means):",
          {k: round(v, 2) for k, v in capstone.items()})
    # What is a node: pruning ablated heads only. Ablate the MLPs too, everywhere but at the circuit's positions.
    circuit_positions = ioi_circuit.any(dim=2).any(dim=0)  # [seq]
    mlps_at_circuit = circuit_positions[None].expand(n_layers, -1).clone()
    full_ld = clean_ld.mean().item()
    circuit_with_mlps = 100 * ablated_ld(ioi_circuit, mlps_at_circuit) / full_ld
    circuit_without_mlps = 100 * ablated_ld(ioi_circuit, torch.zeros_like(every_mlp)) / full_ld
    print(f"IOI circuit, MLPs also mean-ablated outside its positions: {circuit_with_mlps:.1f}%; every MLP "
          f"mean-ablated: {circuit_without_mlps:.1f}% (heads only: {ioi_faithfulness:.1f}%)")

# %% [markdown]
# **The answer.** The IO logit (against the average name) comes from the MLPs: those of layers 0 to 2 raise *both*
# names of the sentence about equally (the candidates), and the layer-3 MLP is the one that raises IO and not S
# (+2.47 against -0.28). The late heads are not name movers: their direct effect on the IO logit is small (at most
# +0.33) while they push the S logit down (L3H3 -1.06, L3H0 -0.98, L3H2 -0.66, L2H0 -0.63, L3H1 -0.61, L2H2 -0.47).
# Path patching into the layer-3 MLP shows that it reads a little of the same S2 information from them (-0.04 to
# -0.07 per head), nothing from layers 0 and 1. The ablation test: mean-ablating those six heads at the end takes the
# logit difference from 8.86 to 0.40, the behaviour gone, while ablating the layer-3 MLP at the end leaves 7.04. So
# the names are told apart by S suppression, not by copying IO. And the nodes: with every MLP mean-ablated the
# circuit keeps 4.5%, yet with MLPs kept only at the circuit's three positions it keeps 98.9%: MLPs are part of the
# circuit, at the positions of its heads.

# %% [markdown]
# ## Conclusion
#
# On `toy-gpt`, a circuit of 17 of the 256 (head, position) nodes keeps 98.9% of the IOI logit difference on the
# prompts it was pruned on and 92.5% on 200 others, with every MLP, embedding and LayerNorm left in place; whole heads
# can hardly be pruned (13 of 16 stay): the work is spread over heads but concentrated in three positions (S2, the
# word after it, the end). The number-sequence circuit is larger, a third of its nodes (33 of 96, 97.1%). Three
# kept IOI nodes cost less than the threshold on their own: minimal only in the greedy loop's sense.
#
# The circuit is not the IOI paper's, and section 2 says why: `toy-gpt` does not detect the repetition (replacing S1
# by a new name raises its logit difference, 12.68 against 8.86), because its eight fixed frames always put S2 at
# position 11. Against the paper's GPT-2 small circuit: no duplicate-token heads (layer 0 at S2 attends 0.00-0.01 to
# S1); no name movers (no late head attends to IO: they attend to the word after S2 and are fed through their values,
# not their queries); instead the late heads L2H0, L2H2 and L3H0-L3H3 push S down (direct effect on the S logit -0.47
# to -1.06 each, on the IO logit at most +0.33), an S-suppression that needs no repeat. The IO logit comes from the
# MLPs: those of layers 0-2 raise both names of the sentence alike, and the layer-3 MLP raises IO alone (+2.47, S
# -0.28), reading a little from the late heads (path patching into it: -0.04 to -0.07 per head). Mean-ablating the six
# S-pushing heads at the end removes the behaviour (logit difference 0.40), while ablating the layer-3 MLP there only
# lowers it (7.04): the late heads' S suppression is what tells the names apart. The cell below collects the figures
# behind these sentences, each computed above and asserted by `tests/days/test_day5_claims.py`.

# %%
if MAIN:
    print(f"IOI on {len(clean_tokens)} held-out prompts: logit difference {clean_ld.mean():.2f} "
          f"(usual range {low:.2f} .. {high:.2f}), ABC-corrupted {corrupted_ld.mean():.2f}")
    print(f"- largest direct effects: {[labels[i] for i in top[:5]]}")
    print(f"- whole heads: greedy pruning at T = {threshold}% keeps {int(kept_heads.sum())} of 16 heads "
          f"({head_faithfulness:.1f}% faithful)")
    print(f"- (head, position) nodes: {len(ioi_nodes)} of 256 kept, {ioi_faithfulness:.1f}% faithful")
    print(f"- numbers: {len(number_circuit_nodes)} of {len(number_nodes)} nodes, {number_faithfulness:.1f}% faithful")
    print(f"- held out: the IOI circuit keeps {held_faithfulness:.1f}% on 200 other prompts; kept nodes cheaper than "
          f"T: {cheap}")
    print(f"- repetition: S1 replaced by a third name gives {s1_replaced_ld.mean():.2f} (clean {clean_ld.mean():.2f})")
    print(f"- capstone: ablating at the end {', '.join(f'{k}: {v:.2f}' for k, v in capstone.items())}; every MLP "
          f"ablated: {circuit_without_mlps:.1f}%, MLPs kept at the circuit's positions: {circuit_with_mlps:.1f}%")
