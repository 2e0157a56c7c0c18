"""Activation patching of every head at every position on `toy-gpt`: the course's `patch_heads_by_position`
(bench/fast_circuits.py) against `transformer_lens.patching.get_act_patch_attn_head_out_by_pos`, side by side in one
run.

    python bench/patching.py                     # 100 held-out IOI prompts, ABC corruption, 3 runs of each
    python bench/patching.py --prompts 30 --runs 5 --threads 1

Both compute the metric (mean logit difference IO - S at the last position) of the corrupted run with one head's
clean output patched in at one position, for all 4 x 16 x 4 (layer, position, head); the results must agree within
1e-4. Each is called once untimed first (a first call pays one-time costs: TransformerLens's first run took twice as
long as its later ones here), then timed runs alternate between the two so that load on a shared machine hits both
alike. Prints the median time of each and, on the last line, the ratio (transformer_lens / course).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import torch
    from transformer_lens import patching

    import fast_circuits
    from curriculum.data.ioi import S2_POSITION, ioi_prompts
    from curriculum.data.toy_vocab import NAMES, TOKEN_ID
    from curriculum.models import load_model

    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    model = load_model("toy-gpt", device)
    prompts = ioi_prompts(args.prompts, torch.Generator().manual_seed(4242))
    clean = prompts.tokens.to(device)
    generator = torch.Generator().manual_seed(1)
    corrupted = clean.clone()
    for b in range(len(clean)):  # ABC: a third name at S2
        others = [TOKEN_ID[n] for n in NAMES if TOKEN_ID[n] not in (int(prompts.io_tokens[b]), int(prompts.s_tokens[b]))]
        corrupted[b, S2_POSITION] = others[int(torch.randint(len(others), (1,), generator=generator))]
    io, s = prompts.io_tokens.to(device), prompts.s_tokens.to(device)
    rows = torch.arange(len(clean), device=device)

    def metric_last(last_logits):
        return (last_logits[rows, io] - last_logits[rows, s]).mean()

    _, clean_cache = model.run_with_cache(clean)
    clean_z = [clean_cache["z", layer] for layer in range(model.cfg.n_layers)]
    def run(name: str) -> torch.Tensor:
        if name == "transformer_lens":
            return patching.get_act_patch_attn_head_out_by_pos(
                model, corrupted, clean_cache, lambda logits: metric_last(logits[:, -1]))
        return fast_circuits.patch_heads_by_position(model, corrupted, clean_z, metric_last)

    times: dict[str, list[float]] = {"transformer_lens": [], "course": []}
    results = {name: run(name) for name in times}  # the untimed first calls
    for _ in range(args.runs):
        for name in times:
            start = time.perf_counter()
            results[name] = run(name)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    difference = (results["transformer_lens"].cpu() - results["course"].cpu()).abs().max().item()
    if difference > 1e-4:
        raise SystemExit(f"the results differ by {difference:.2e}")
    tl, ours = statistics.median(times["transformer_lens"]), statistics.median(times["course"])
    print(f"toy-gpt, {args.prompts} prompts, {args.runs} run(s) each, torch threads {torch.get_num_threads()}, "
          f"{device}")
    print(f"transformer_lens.patching: median {tl:.2f} s  {[round(t, 2) for t in times['transformer_lens']]}")
    print(f"fast_circuits:             median {ours:.2f} s  {[round(t, 2) for t in times['course']]}")
    print(f"max |difference| {difference:.1e}")
    print(f"ratio (transformer_lens / course): {tl / ours:.1f}x")


if __name__ == "__main__":
    main()
