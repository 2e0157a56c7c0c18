"""Greedy circuit pruning by mean ablation: the course's batched `greedy_prune` (bench/fast_circuits.py) against the
sequential loop (one forward pass per candidate, `greedy_prune_sequential`), side by side in one run.

    python bench/pruning.py                          # both models below, T = 3%
    python bench/pruning.py --models random --random-d-model 1024 --threads 1

Models:
- `toy-gpt`: 30 held-out IOI prompts, ABC-corrupted means, one node per (head, position): 256 nodes;
- `random`: a randomly initialised GPT-2-style model of gpt2-medium's shape, 24 layers x 16 heads (d_model set by
  --random-d-model, default 128; gpt2-medium's is 1024), built from a seeded HookedTransformerConfig, 8 prompts of 8
  random tokens, metric logit(top token) - logit(second) of the full model; one node per head: 384 nodes, in the
  number-sequence study's order (last layer first).
Both must return the same circuit. Prints each model's times and circuit size, and, on the last line, the smallest
ratio (sequential / batched) over the models.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _toy_gpt(torch):
    import fast_circuits
    from curriculum.library import circuits
    from curriculum.data.ioi import S2_POSITION, ioi_prompts
    from curriculum.data.toy_vocab import NAMES, TOKEN_ID
    from curriculum.models import load_model

    model = load_model("toy-gpt")
    prompts = ioi_prompts(30, torch.Generator().manual_seed(5))
    tokens = prompts.tokens
    generator = torch.Generator().manual_seed(6)
    corrupted = tokens.clone()
    for b in range(len(tokens)):
        others = [TOKEN_ID[n] for n in NAMES if TOKEN_ID[n] not in (int(prompts.io_tokens[b]), int(prompts.s_tokens[b]))]
        corrupted[b, S2_POSITION] = others[int(torch.randint(len(others), (1,), generator=generator))]
    _, cache = model.run_with_cache(corrupted)
    means = torch.stack([cache["z", layer].mean(0) for layer in range(4)])
    rows = torch.arange(len(tokens))

    def metric(last_logits):
        return (last_logits[rows, prompts.io_tokens] - last_logits[rows, prompts.s_tokens]).mean()

    nodes = circuits.head_position_nodes(4, 4, 16, positions=range(16))
    return fast_circuits.MeanAblation(model, tokens, means, metric), nodes, "toy-gpt, 256 (head, position) nodes"


def _random(torch, d_model: int):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    import fast_circuits
    from curriculum.library import circuits

    cfg = HookedTransformerConfig(n_layers=24, n_heads=16, d_model=d_model, d_head=d_model // 16, d_mlp=4 * d_model,
                                  d_vocab=1000, n_ctx=32, act_fn="gelu_new", normalization_type="LN", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg).eval()
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(1000, (8, 8), generator=generator)
    reference = torch.randint(1000, (8, 8), generator=generator)
    top2 = model(tokens)[:, -1].topk(2).indices
    _, cache = model.run_with_cache(reference)
    means = torch.stack([cache["z", layer].mean(0) for layer in range(24)])
    rows = torch.arange(len(tokens))

    def metric(last_logits):
        return (last_logits[rows, top2[:, 0]] - last_logits[rows, top2[:, 1]]).mean()

    nodes = circuits.head_nodes(24, 16, 8)
    return (fast_circuits.MeanAblation(model, tokens, means, metric), nodes,
            f"random 24 x 16 heads, d_model {d_model}, 384 head nodes")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="toy-gpt,random")
    parser.add_argument("--threshold", type=float, default=3.0)
    parser.add_argument("--random-d-model", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    import torch

    import fast_circuits

    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    ratios = []
    for name in args.models.split(","):
        ablation, nodes, label = _toy_gpt(torch) if name == "toy-gpt" else _random(torch, args.random_d_model)
        start = time.perf_counter()
        sequential = fast_circuits.greedy_prune_sequential(ablation, nodes, args.threshold)
        sequential_s = time.perf_counter() - start
        start = time.perf_counter()
        batched = fast_circuits.greedy_prune(ablation, nodes, args.threshold)
        batched_s = time.perf_counter() - start
        if not torch.equal(sequential, batched):
            raise SystemExit(f"{label}: the circuits differ")
        circuit = (nodes & batched[:, None, None, None]).any(0)
        score = ablation.scores(circuit[None])[0].item()
        ratios.append(sequential_s / batched_s)
        print(f"{label}: T = {args.threshold}%, {int(batched.sum())} nodes kept, faithfulness {score:.1f}%; "
              f"sequential {sequential_s:.1f} s, batched {batched_s:.1f} s, ratio {ratios[-1]:.1f}x "
              f"(torch threads {torch.get_num_threads()})", flush=True)
    print(f"ratio (sequential / batched), smallest over {len(ratios)} model(s): {min(ratios):.1f}x")


if __name__ == "__main__":
    main()
