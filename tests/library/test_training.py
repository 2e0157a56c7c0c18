"""Every recipe trains on CPU for a few steps, writes a loadable zoo folder, and is seeded."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from curriculum.models import ZOO, load_from_dir
from curriculum.models.__main__ import main
from curriculum.models.recipes import get_recipe
from curriculum.models.training import train


@pytest.mark.parametrize("name", ZOO)
def test_recipe_trains_a_few_steps_and_writes_a_loadable_folder(name, tmp_path):
    recipe = get_recipe(name)
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    run = train(recipe, device="cpu", steps=3, out=tmp_path, progress=False)
    assert torch.equal(torch.get_rng_state(), global_state), "training must not move the global RNG"
    assert run.steps == 3 and run.device == "cpu" and run.wall_time_s > 0
    assert set(run.measurements) >= {bar.metric for bar in recipe.bars}
    assert json.loads((tmp_path / "config.json").read_text()) == recipe.config
    card = (tmp_path / "MODEL_CARD.md").read_text()
    assert "steps: 3" in card and "device: cpu" in card and "seed: 0" in card
    model = load_from_dir(tmp_path)
    assert model.cfg.d_vocab == len(recipe.vocab)
    assert model.to_str_tokens(torch.tensor([1, 2, 3])) == recipe.vocab[1:4]


def test_training_is_seeded(tmp_path):
    recipe = get_recipe("array-2l1h")
    for out, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(recipe, steps=2, out=tmp_path / out, seed=seed, progress=False, write_model_card=False)
    a, b, c = (load_file(str(tmp_path / out / "model.safetensors")) for out in "abc")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)


def test_train_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="steps must be positive"):
        train(get_recipe("array-2l1h"), steps=0, out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="no recipe named"):
        get_recipe("gpt2-small")


def test_command_line_trains_and_prints_the_measurements(tmp_path, capsys):
    status = main(["train", "array-2l1h", "--steps", "2", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "array-2l1h: 2 steps on cpu" in printed and "accuracy_b0" in printed
    assert status == 1, "two steps cannot meet the accuracy bar, and the command says so"
