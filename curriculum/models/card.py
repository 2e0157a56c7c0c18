"""Write a zoo model's MODEL_CARD.md from a training run: what it is, how it was trained, what it measured."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

from curriculum.models.loading import CARD_FILE

if TYPE_CHECKING:
    from curriculum.models.training import TrainingRun


def format_value(value: Any) -> str:
    """Numbers to 4 significant digits, lists of (head, score) as 'L1H2 (0.93)', anything else as text."""
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, list):
        return ", ".join(f"{head} ({score:+.3g})" for head, score in value)
    return str(value)


def measurement_lines(recipe_bars: tuple, measurements: dict[str, Any]) -> list[str]:
    """One markdown table row per measurement, with the bar it must meet where there is one."""
    bars = {bar.metric: bar for bar in recipe_bars}
    lines = ["| measurement | value | bar |", "|---|---|---|"]
    for name, value in measurements.items():
        bar = bars.get(name)
        verdict = "" if bar is None else f"{bar} ({'met' if bar.holds(value) else 'NOT MET'})"
        lines.append(f"| `{name}` | {format_value(value)} | {verdict} |")
    return lines


def write_card(run: TrainingRun) -> None:
    """(Re)write `MODEL_CARD.md` in the run's output folder."""
    from curriculum.models.training import versions

    recipe = run.recipe
    config = ", ".join(f"{key}={value}" for key, value in recipe.config.items())
    library = ", ".join(f"{name} {version}" for name, version in versions().items())
    text = "\n".join(
        [
            f"# {recipe.name}",
            "",
            recipe.description.strip(),
            "",
            "## Training",
            "",
            f"- device: {run.device} ({platform.processor() or platform.machine()}); wall time {run.wall_time_s:.0f} s",
            f"- steps: {run.steps}, batch {recipe.batch_size}, AdamW lr {recipe.lr} (warm-up {recipe.warmup_steps} "
            f"steps, cosine decay to lr/10), weight decay {recipe.weight_decay}, gradient clipping 1.0",
            f"- seed: {run.seed} (weight initialisation and the data generator; see `curriculum.models.training`)",
            f"- training loss (mean of the last 50 steps): {run.final_train_loss:.4g}",
            f"- libraries: {library}, Python {platform.python_version()}",
            f"- config: {config}",
            "",
            "Retrain (rewrites this folder and card):",
            "",
            f"    python -m curriculum.models train {recipe.name} --device cpu",
            "",
            "## Measured behaviour",
            "",
            "Measured on the shipped weights right after training; reproduce with:",
            "",
            f"    python -m curriculum.models measure {recipe.name}",
            "",
            *measurement_lines(recipe.bars, run.measurements),
            "",
        ]
    )
    (run.out / CARD_FILE).write_text(text)
