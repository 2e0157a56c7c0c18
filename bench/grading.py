"""Wall time of grading a day's reference solutions, imports included, as a learner would run it.

    python bench/grading.py                      # days 1 and 4, 5 runs each, isolated vs in-process, on CPU
    python bench/grading.py --days 1 --runs 7 --devices cpu,cuda

Each run is a fresh `pytest --day N --solutions` process. Per day and device it times two ways of grading,
interleaved run by run so that both see the same machine load: "isolated" (the default: a supervisor, and a forked
worker per exercise, see `checks.isolation.supervisor`) and "in-process" (the old path, learner code in the pytest process,
selected with COURSE_GRADING_IN_PROCESS=1). Prints the medians, their spread and the ratio isolated / in-process
(timings on a shared machine are noisy: compare ratios measured side by side, not absolute numbers).
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
MODES = {"isolated": {}, "in-process": {"COURSE_GRADING_IN_PROCESS": "1"}}


def time_grading(day: int, device: str, mode: str) -> float:
    """Seconds for one `pytest --day DAY --solutions --course-device DEVICE` process; raises if any exercise fails."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--day", str(day), "--solutions",
               "--course-device", device]
    env = {key: value for key, value in os.environ.items() if key != "COURSE_GRADING_IN_PROCESS"}
    env.update({"HF_HUB_OFFLINE": "1", **MODES[mode]})
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"grading day {day} on {device} ({mode}) failed:\n{result.stdout[-3000:]}"
                           f"{result.stderr[-2000:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", default="1,4", help="comma-separated day numbers")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--devices", default="cpu", help="comma-separated, e.g. cpu,cuda")
    args = parser.parse_args(argv)

    print(f"{'day':>3}  {'device':<6}  {'mode':<10}  {'median s':>8}  {'min s':>6}  {'max s':>6}  {'isolated/in-process':>19}")
    for day in (int(d) for d in args.days.split(",")):
        for device in args.devices.split(","):
            times: dict[str, list[float]] = {mode: [] for mode in MODES}
            for _ in range(args.runs):
                for mode in MODES:  # interleaved: both modes see the same load
                    times[mode].append(time_grading(day, device, mode))
            medians = {mode: statistics.median(values) for mode, values in times.items()}
            for mode, values in times.items():
                ratio = f"{medians['isolated'] / medians['in-process']:.2f}" if mode == "isolated" else ""
                print(f"{day:>3}  {device:<6}  {mode:<10}  {medians[mode]:>8.2f}  {min(values):>6.2f}  "
                      f"{max(values):>6.2f}  {ratio:>19}", flush=True)


if __name__ == "__main__":
    main()
