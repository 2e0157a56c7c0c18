"""Time of day 3's full causal-scrubbing table, fast (`curriculum.library.scrubbing.ScrubbingRun`) against
straightforward.

    python bench/scrubbing.py                                  # 2,048 stories of 128 tokens, 4 resamplings
    python bench/scrubbing.py --sequences 512 --straightforward-runs 5

The fast table: every hypothesis of `day3_hypotheses` under every resampling, layer-0 components computed once,
everything else batched (wall time includes building the sources and the layer-0 pass). The straightforward way
(`straightforward_losses`: one forward pass for the components and one full hooked forward pass per hypothesis and
resampling) takes too long to run for the whole table, so it is timed on `--straightforward-runs` (hypothesis,
resampling) pairs of the same dataset, spread over the table, and its full-table time is that median times the number
of pairs: the ratio printed last is that estimate over the fast table's measured time. The two must agree on the
losses of the pairs they share (checked). Prints wall time and this process's CPU time (the machine is shared:
CPU time is the steadier figure).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from curriculum.library import scrubbing  # noqa: E402
from solutions import scrubbing_table  # noqa: E402
from curriculum.data.induction_corpus import INDUCTION_CANDIDATES, held_out_stories  # noqa: E402
from curriculum.models import load_model  # noqa: E402


class Timer:
    """Wall and CPU seconds of a block."""

    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=2048)
    parser.add_argument("--resamplings", type=int, default=4)
    parser.add_argument("--straightforward-runs", type=int, default=3,
                        help="(hypothesis, resampling) pairs timed the straightforward way")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    model = load_model("induction-2l", device=args.device)
    tokens = held_out_stories(args.sequences).to(args.device)
    hypotheses = scrubbing_table.day3_hypotheses(model)
    print(f"{len(hypotheses)} hypotheses x {args.resamplings} resamplings, {args.sequences} stories of "
          f"{tokens.shape[1]} tokens, torch threads {torch.get_num_threads()}, device {args.device}")

    with Timer() as fast:
        resamplings = [scrubbing_table.day3_sources(tokens, r) for r in range(args.resamplings)]
        run = scrubbing.ScrubbingRun(model, tokens, INDUCTION_CANDIDATES)
        table = run.table(hypotheses, resamplings)
    print(f"fast table: {fast.wall:.1f} s wall, {fast.cpu:.1f} s CPU")
    mean, sem = table.mean(0), table.std(0) / args.resamplings**0.5
    for hypothesis, m, s in zip(hypotheses, mean.tolist(), sem.tolist()):
        print(f"  {hypothesis.name:52s} {m:.3f} ± {s:.3f}")

    pairs = len(hypotheses) * args.resamplings
    chosen = [(i % args.resamplings, (1 + 7 * i) % len(hypotheses)) for i in range(args.straightforward_runs)]
    walls, cpus = [], []
    for r, h in chosen:
        with Timer() as slow:
            loss = scrubbing_table.straightforward_losses(model, tokens, INDUCTION_CANDIDATES, [hypotheses[h]],
                                                    [resamplings[r]])[0, 0].item()
        walls.append(slow.wall)
        cpus.append(slow.cpu)
        agree = abs(loss - table[r, h].item()) < 1e-3
        print(f"straightforward, {hypotheses[h].name!r}, resampling {r}: {slow.wall:.1f} s wall, {slow.cpu:.1f} s CPU, "
              f"loss {loss:.4f} vs fast {table[r, h].item():.4f}")
        if not agree:
            raise SystemExit("the straightforward and the fast table disagree")
    slow_wall, slow_cpu = statistics.median(walls) * pairs, statistics.median(cpus) * pairs
    print(f"straightforward full table (median of {len(walls)} pairs x {pairs} pairs): {slow_wall:.0f} s wall, "
          f"{slow_cpu:.0f} s CPU")
    print(f"full table ({args.sequences} x {tokens.shape[1]} tokens, {args.resamplings} resamplings): "
          f"{fast.wall:.1f} s wall ({fast.cpu:.1f} s CPU); straightforward / fast = {slow_wall / fast.wall:.0f}x wall, "
          f"{slow_cpu / fast.cpu:.0f}x CPU")


if __name__ == "__main__":
    main()
