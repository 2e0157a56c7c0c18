"""Wall time of grading a day's reference solutions, imports included, as a learner would run it.

    python bench/grading.py                      # days 1 and 4, 5 runs each, on CPU
    python bench/grading.py --days 1 --runs 7 --devices cpu,cuda

Each run is a fresh `pytest --day N --solutions` process (a supervisor, and a forked worker per exercise, see
`checks.isolation.supervisor`). Prints the median and the spread per day and device (timings on a shared machine are
noisy: compare two versions by running them alternately, not by absolute numbers).
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
        raise RuntimeError(f"grading day {day} on {device} failed:\n{result.stdout[-3000:]}"
                           f"{result.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="1,4", help="comma-separated day numbers")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--devices", default="cpu", help="comma-separated, e.g. cpu,cuda")
    args = parser.parse_args(argv)

    print(f"{'day':>3}  {'device':<6}  {'median s':>8}  {'min s':>6}  {'max s':>6}")
    for day in (int(d) for d in args.days.split(",")):
        for device in args.devices.split(","):
            times = [time_grading(day, device) for _ in range(args.runs)]
            print(f"{day:>3}  {device:<6}  {statistics.median(times):>8.2f}  {min(times):>6.2f}  {max(times):>6.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
