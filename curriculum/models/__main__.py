"""Command line of the zoo: `python -m curriculum.models train|measure|card NAME`."""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    from curriculum.models.loading import ZOO

    parser = argparse.ArgumentParser(prog="python -m curriculum.models", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train_parser = commands.add_parser("train", help="retrain a model from its seeded recipe and rewrite its folder")
    train_parser.add_argument("name", choices=ZOO)
    train_parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    train_parser.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    train_parser.add_argument("--seed", type=int, default=None, help="seed (default: the recipe's)")
    train_parser.add_argument("--out", default=None, help="output folder (default: the shipped model's folder)")
    train_parser.add_argument(
        "--cpu-threads", type=int, default=1, help="torch CPU threads while training (default 1; see the card)"
    )
    measure_parser = commands.add_parser("measure", help="print the measurements of the shipped weights")
    measure_parser.add_argument("name", choices=ZOO)
    measure_parser.add_argument("--device", default="cpu")
    card_parser = commands.add_parser("card", help="re-measure the shipped weights and rewrite the model card")
    card_parser.add_argument("name", choices=ZOO)
    args = parser.parse_args(argv)

    from curriculum.models.card import format_value
    from curriculum.models.recipes import get_recipe

    recipe = get_recipe(args.name)
    if args.command == "train":
        from curriculum.models.training import train

        run = train(
            recipe, device=args.device, steps=args.steps, out=args.out, seed=args.seed, cpu_threads=args.cpu_threads
        )
        print(f"{recipe.name}: {run.steps} steps on {run.device} in {run.wall_time_s:.1f} s; wrote {run.out}")
        measurements = run.measurements
    elif args.command == "card":
        from curriculum.models.card import read_training_facts, write_card
        from curriculum.models.loading import load_model, model_dir

        measurements = recipe.measure(load_model(args.name))
        write_card(recipe, read_training_facts(model_dir(args.name)), measurements, model_dir(args.name))
        print(f"rewrote {model_dir(args.name) / 'MODEL_CARD.md'}")
    else:
        from curriculum.models.loading import load_model

        measurements = recipe.measure(load_model(args.name, args.device))
    failed = []
    bars = {bar.metric: bar for bar in recipe.bars}
    for name, value in measurements.items():
        bar = bars.get(name)
        verdict = "" if bar is None else f"   [{bar}: {'met' if bar.holds(value) else 'NOT MET'}]"
        print(f"{name:>32}: {format_value(value)}{verdict}")
        if bar is not None and not bar.holds(value):
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
