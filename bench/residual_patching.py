"""Day 4's residual-stream patching on `array-2l1h`: the course's solution of `residual_patching_effect` against
`transformer_lens.patching.get_act_patch_resid_pre`, side by side in one run.

    python bench/residual_patching.py                       # the notebook's data, 5 runs each, 1 thread then default
    python bench/residual_patching.py --runs 3 --threads 1

The data and metric are the Day 4 notebook's patching cell: 500 clean examples (seed 0), the `idx` token corrupted
(seed 1), the normalised logit difference over the answer positions whose answers differ. TransformerLens is timed
with what the course's function also computes (the corrupted run's cache and both runs' logit differences), on
`get_act_patch_resid_pre` alone (rows resid_pre L0, L1: fewer rows than the course computes) and with the course's
last row too (the final resid_post, patched through `generic_activation_patch`); all rows must agree within 1e-4.
Runs alternate between the implementations so that load on a shared machine hits all alike. Prints the median time
of each and, on the last line, the ratio (transformer_lens get_act_patch_resid_pre / course) for each thread count.
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
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", default="1,0", help="comma-separated torch thread counts (0: torch's default)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    import pandas as pd
    import torch
    from transformer_lens import patching

    from curriculum.data.array_indexing import (
        ANSWER_POSITIONS,
        ELT_POSITION,
        IDX_POSITION,
        LIST_LEN,
    )
    from curriculum.models import load_model
    from solutions.day4_array_indexing import (
        residual_patching_effect,
        sample_array_indexing_batch,
    )

    warnings.filterwarnings("ignore")
    torch.set_grad_enabled(False)
    default_threads = torch.get_num_threads()
    device = torch.device(args.device)
    model = load_model("array-2l1h", device)
    tokens = sample_array_indexing_batch(2000, torch.Generator().manual_seed(0))
    clean = tokens[: args.examples]
    patch_generator = torch.Generator().manual_seed(1)
    new_idx = (clean[:, IDX_POSITION] + torch.randint(1, LIST_LEN, (len(clean),), generator=patch_generator)) % LIST_LEN
    corrupted = clean.clone()
    corrupted[:, IDX_POSITION] = new_idx
    clean, corrupted = clean.to(device), corrupted.to(device)

    def implied_answers(tokens: torch.Tensor) -> torch.Tensor:
        is_idx = tokens[:, IDX_POSITION, None] == torch.arange(LIST_LEN, device=tokens.device)
        return torch.where(is_idx, tokens[:, ELT_POSITION, None], tokens[:, 1 : 1 + LIST_LEN])

    clean_answers, corrupted_answers = implied_answers(clean), implied_answers(corrupted)
    differs = clean_answers != corrupted_answers
    answers = list(ANSWER_POSITIONS)

    def logit_difference(logits: torch.Tensor) -> torch.Tensor:
        answer_logits = logits[:, answers]
        diff = answer_logits.gather(-1, corrupted_answers[..., None]) - answer_logits.gather(-1, clean_answers[..., None])
        return diff[..., 0][differs].mean()

    n_layers, seq = model.cfg.n_layers, clean.shape[1]
    final_row = pd.DataFrame({"layer": [n_layers - 1] * seq, "pos": list(range(seq))})

    def transformer_lens(all_rows: bool) -> torch.Tensor:
        corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)
        ld_clean, ld_corrupted = logit_difference(model(clean)), logit_difference(corrupted_logits)

        def metric(logits: torch.Tensor) -> torch.Tensor:
            return (logit_difference(logits) - ld_clean) / (ld_corrupted - ld_clean)

        rows = patching.get_act_patch_resid_pre(model, clean, corrupted_cache, metric)
        if all_rows:
            last = patching.generic_activation_patch(
                model, clean, corrupted_cache, metric, patch_setter=patching.layer_pos_patch_setter,
                activation_name="resid_post", index_df=final_row)
            rows = torch.cat([rows, last[None]])
        return rows

    implementations = {
        "transformer_lens get_act_patch_resid_pre (2 rows)": lambda: transformer_lens(all_rows=False),
        "transformer_lens all 3 rows": lambda: transformer_lens(all_rows=True),
        "course residual_patching_effect (3 rows)": lambda: residual_patching_effect(model, clean, corrupted),
    }
    ratios = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads or default_threads)
        times: dict[str, list[float]] = {name: [] for name in implementations}
        results = {}
        for _ in range(args.runs):
            for name, run in implementations.items():
                start = time.perf_counter()
                results[name] = run()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
        tl_pre, tl_all, course = (results[name].cpu() for name in implementations)
        difference = max((tl_all - course).abs().max().item(), (tl_pre - course[:n_layers]).abs().max().item())
        if difference > 1e-4:
            raise SystemExit(f"the results differ by {difference:.2e}")
        medians = {name: statistics.median(t) for name, t in times.items()}
        print(f"array-2l1h, {args.examples} examples x {seq} positions, {args.runs} runs each, "
              f"torch threads {torch.get_num_threads()}, {device}; max |difference| {difference:.1e}")
        for name, t in times.items():
            print(f"  {name:50s} median {medians[name]:.3f} s  {[round(x, 3) for x in t]}")
        tl_pre_s, tl_all_s, course_s = medians.values()
        print(f"  ratio (transformer_lens / course): get_act_patch_resid_pre {tl_pre_s / course_s:.2f}x, "
              f"all rows {tl_all_s / course_s:.2f}x")
        ratios.append(f"{tl_pre_s / course_s:.2f}x ({torch.get_num_threads()} thread(s))")
    print(f"ratio (transformer_lens get_act_patch_resid_pre / course): {', '.join(ratios)}")


if __name__ == "__main__":
    main()
