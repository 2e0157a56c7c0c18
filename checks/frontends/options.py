"""The grading options, one vocabulary for every front end.

The same names everywhere: `device` (cpu or cuda; default cuda when present), `limits` (the worker's limits, e.g.
"import_s=60 audit_s=60 submission_s=1800 memory_gb=4", see `checks.isolation.limits.Limits.parse`) and `hints`
(the tiers of the course's hints shown with a failure). pytest spells them `--course-device`, `--course-limits` (or
the ini option `course_limits`) and `--course-hints`, since its options are shared with every other plugin of the
environment; `python -m checks grade` spells them `--device` and `--limits`. Both front ends resolve and check them
here, so a value means the same and fails with the same message in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checks.isolation.limits import GiB, Limits
from checks.pipeline.grading import default_device

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class GradingOptions:
    """Resolved options: a device that exists here, the limits, the hint tiers."""

    device: str
    limits: Limits = field(default_factory=Limits)
    hints: int = 0

    @classmethod
    def resolve(cls, *, device: str | None = None, limits: str = "", hints: int = 0, device_flag: str = "--device",
                submission_s: float | None = None, memory_gb: float | None = None) -> "GradingOptions":
        """Options from a front end's raw values. `limits` is the text form; `submission_s` and `memory_gb` (the batch
        CLI's `--timeout` and `--memory-gb` shorthands) override it. Raises ValueError naming the front end's flag
        (`device_flag`) for a device that is not here, or for an unknown limit."""
        if device is not None and device not in DEVICES:
            raise ValueError(f"{device_flag} {device}: the device is one of {', '.join(DEVICES)}")
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"{device_flag} cuda: no CUDA device is available here; use {device_flag} cpu")
        parsed = Limits.parse(limits)
        overrides: dict[str, float | int] = {}
        if submission_s is not None:
            overrides["submission_s"] = float(submission_s)
        if memory_gb is not None:
            overrides["memory_bytes"] = int(memory_gb * GiB)
        if overrides:
            parsed = Limits(**{**parsed.__dict__, **overrides})
        return cls(device or default_device(), parsed, hints)

