"""Wall time of grading a day's reference solutions, imports included, as a learner would run it.

    python bench/grading.py                      # days 1 and 4, 5 runs each, on CPU (and CUDA when present)
    python bench/grading.py --days 1 --runs 7 --devices cpu

Each run is a fresh `pytest --day N --solutions` process. Prints the median and spread per day and device, and the
ratio of each device's median to CPU's measured in the same run (timings on a shared machine are noisy: compare
ratios, not absolute numbers across machines).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def time_grading(day: int, device: str) -> float:
    """Seconds for one `pytest --day DAY --solutions --course-device DEVICE` process; raises if any exercise fails."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--day", str(day), "--solutions",
               "--course-device", device]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"grading day {day} on {device} failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="1,4", help="comma-separated day numbers")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--devices", default=None, help="comma-separated; default cpu, plus cuda when available")
    args = parser.parse_args(argv)

    if args.devices:
        devices = args.devices.split(",")
    else:
        import torch

        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{'day':>3}  {'device':<6}  {'median s':>8}  {'min s':>6}  {'max s':>6}  {'vs cpu':>6}")
    for day in (int(d) for d in args.days.split(",")):
        medians: dict[str, float] = {}
        for device in devices:
            times = [time_grading(day, device) for _ in range(args.runs)]
            medians[device] = statistics.median(times)
            ratio = f"{medians[device] / medians['cpu']:.2f}" if "cpu" in medians else "-"
            print(f"{day:>3}  {device:<6}  {medians[device]:>8.2f}  {min(times):>6.2f}  {max(times):>6.2f}  {ratio:>6}",
                  flush=True)


if __name__ == "__main__":
    main()
