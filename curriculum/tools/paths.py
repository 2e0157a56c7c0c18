"""Where the course lies: the one place that computes its root (the folder holding curriculum/, checks/, notebooks/
and solutions/, a checkout or site-packages). The pytest entry module computes it for itself, as it may import
nothing of the course before `--day` is given."""

from __future__ import annotations

from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parents[2]
CHECKS_DIR = COURSE_ROOT / "checks"
