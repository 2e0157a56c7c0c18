"""Write a zoo model's MODEL_CARD.md: what it is, how it was trained (from `training.json`), what it measures.

`training.json` is written by the training run and holds its facts (steps, seed, device, wall time, final loss,
library versions). The card can be re-rendered from it and a fresh measurement of the shipped weights with
`python -m curriculum.models card NAME`, e.g. after improving a recipe's description, without retraining.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curriculum.models.loading import CARD_FILE
from curriculum.models.recipes import Bar, Recipe

TRAINING_FILE = "training.json"


def format_value(value: Any) -> str:
    """Numbers to 5 significant digits, lists of (head, score) as 'L1H2 (+0.93)', anything else as text."""
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, list):
        return ", ".join(f"{head} ({score:+.3g})" for head, score in value) or "none"
    return str(value)


def measurement_lines(bars: tuple[Bar, ...], measurements: dict[str, Any]) -> list[str]:
    """One markdown table row per measurement, with the bar it must meet where there is one."""
    by_metric = {bar.metric: bar for bar in bars}
    lines = ["| measurement | value | bar |", "|---|---|---|"]
    for name, value in measurements.items():
        bar = by_metric.get(name)
        verdict = "" if bar is None else f"{bar} ({'met' if bar.holds(value) else 'NOT MET'})"
        lines.append(f"| `{name}` | {format_value(value)} | {verdict} |")
    return lines


def write_training_facts(out: Path, facts: dict[str, Any]) -> None:
    """Store a training run's facts next to its weights."""
    (out / TRAINING_FILE).write_text(json.dumps(facts, indent=2) + "\n")


def read_training_facts(out: Path) -> dict[str, Any]:
    """The facts of the run that produced the weights in `out`."""
    path = out / TRAINING_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: retrain with `python -m curriculum.models train`")
    return json.loads(path.read_text())


def write_card(recipe: Recipe, facts: dict[str, Any], measurements: dict[str, Any], out: Path) -> None:
    """(Re)write `MODEL_CARD.md` in `out` from the recipe, the run's facts and the measurements of its weights."""
    config = ", ".join(f"{key}={value}" for key, value in recipe.config.items())
    library = ", ".join(f"{name} {version}" for name, version in facts["versions"].items())
    text = "\n".join(
        [
            f"# {recipe.name}",
            "",
            recipe.description.strip(),
            "",
            "## Training",
            "",
            f"- device: {facts['device']} ({facts['cpu_threads']} CPU thread(s)); wall time {facts['wall_time_s']:.0f} s",
            f"- steps: {facts['steps']}, batch {facts['batch_size']}, AdamW lr {facts['lr']} (warm-up "
            f"{recipe.warmup_steps} steps, cosine decay to lr/10), weight decay {recipe.weight_decay}, "
            "gradient clipping 1.0",
            f"- seed: {facts['seed']} (weight initialisation and the data generator; see `curriculum.models.training`)",
            f"- training loss (mean of the last 50 steps): {facts['final_train_loss']:.4g}",
            f"- libraries: {library}",
            f"- config: {config}",
            "",
            "Retrain (rewrites this folder and card):",
            "",
            f"    python -m curriculum.models train {recipe.name} --device {facts['device'].split(':')[0]}"
            + (f" --cpu-threads {facts['cpu_threads']}" if facts["cpu_threads"] != 1 else ""),
            "",
            "## Measured behaviour",
            "",
            "Measured on the shipped weights; reproduce with:",
            "",
            f"    python -m curriculum.models measure {recipe.name}",
            "",
            *measurement_lines(recipe.bars, measurements),
            "",
        ]
    )
    (out / CARD_FILE).write_text(text)
