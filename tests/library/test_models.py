"""The model zoo: loading offline, the pretrained path, tokenizers, file sizes, and the behaviour of shipped weights."""

from __future__ import annotations

import json
import re
import shutil
import socket
from functools import lru_cache
from typing import Any

import pytest
import torch
from transformer_lens import HookedTransformer

from curriculum.data import induction_corpus as corpus
from curriculum.models import ZOO, load_from_dir, load_model, model_dir
from curriculum.models.recipes import get_recipe

MAX_MODEL_BYTES = 20 * 1024 * 1024


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models on a shared 2-core CPU run several times faster on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection, and keep the hub offline."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@lru_cache(maxsize=None)
def shipped_measurements(name: str) -> dict[str, Any]:
    """The recipe's measurements of the shipped weights (computed once per test session)."""
    return get_recipe(name).measure(load_model(name))


def test_zoo_names_its_three_models():
    assert ZOO == ("induction-2l", "array-2l1h", "toy-gpt")


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_loads_offline(name, no_network):
    model = load_model(name)
    assert isinstance(model, HookedTransformer)
    assert model.cfg.device == "cpu" and next(model.parameters()).device.type == "cpu"
    assert model.tokenizer is not None


def test_loading_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    load_model("induction-2l")
    assert torch.equal(torch.get_rng_state(), state)


def test_each_load_builds_its_own_tokenizer():
    assert load_model("array-2l1h").tokenizer is not load_model("array-2l1h").tokenizer


@pytest.mark.parametrize(("name", "stand_in"), [("attn-only-2l", "induction-2l"), ("gpt2-small", "toy-gpt")])
def test_pretrained_name_offline_fails_fast_naming_the_zoo_model(name, stand_in, no_network, monkeypatch):
    def from_pretrained(*args, **kwargs):
        raise AssertionError("from_pretrained must not be reached offline")

    monkeypatch.setattr(HookedTransformer, "from_pretrained", from_pretrained)
    with pytest.raises(RuntimeError, match=re.escape(f"load_model({stand_in!r})")):
        load_model(name)  # at once: no connection is attempted (no_network) and from_pretrained is never reached


def test_pretrained_name_online_goes_to_from_pretrained(monkeypatch):
    calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HookedTransformer, "from_pretrained", lambda name, **kw: calls.append((name, kw)) or "model")
    assert load_model("gpt2-small") == "model"
    assert calls == [("gpt2-small", {"device": "cpu"})]


def test_cuda_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        load_model("array-2l1h", device="cuda")


@pytest.mark.parametrize("name", ZOO)
def test_model_files_are_complete_and_small(name):
    files = {path.name: path.stat().st_size for path in model_dir(name).iterdir()}
    for required in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "MODEL_CARD.md"):
        assert required in files, f"{name} lacks {required}"
    assert sum(files.values()) <= MAX_MODEL_BYTES


def test_weights_that_do_not_match_the_config_are_refused(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir("array-2l1h"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_layers": 1}))
    with pytest.raises(RuntimeError, match="does not match its config"):
        load_from_dir(folder)


def test_array_tokens_read_as_the_task():
    model = load_model("array-2l1h")
    tokens = model.to_tokens("1 2 3 NL 2 4 NL 1 2 4")
    assert tokens.tolist() == [[50, 1, 2, 3, 51, 2, 4, 51, 1, 2, 4]]
    assert model.to_str_tokens(tokens[0]) == ["BOS", "1", "2", "3", "NL", "2", "4", "NL", "1", "2", "4"]
    assert model.to_tokens("1 2 3", prepend_bos=False).tolist() == [[1, 2, 3]]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("induction-2l", " ".join(corpus.VOCAB[1:4] + corpus.INDUCTION_CANDIDATE_WORDS[:2])),
        ("toy-gpt", "Then , Mary and John went to the store , John gave a ring to"),
        ("toy-gpt", "3 5 7 9 11 13"),
    ],
)
def test_tokens_decode_as_words(name, text):
    model = load_model(name)
    tokens = model.to_tokens(text)
    assert tokens[0, 0].item() == model.tokenizer.bos_token_id == 0
    assert model.to_str_tokens(tokens[0]) == ["<bos>", *text.split()]
    assert model.to_string(tokens[0, 1:]) == text


@pytest.mark.parametrize("name", ZOO)
def test_card_reports_the_measurements_of_the_shipped_weights(name):
    card = (model_dir(name) / "MODEL_CARD.md").read_text()
    assert f"python -m curriculum.models measure {name}" in card
    assert f"python -m curriculum.models train {name}" in card
    for metric, value in shipped_measurements(name).items():
        if not isinstance(value, float):
            continue
        row = re.search(rf"^\| `{metric}` \| ([^|]+) \|", card, flags=re.MULTILINE)
        assert row is not None, f"{name}'s card lacks {metric}"
        assert float(row.group(1)) == pytest.approx(value, rel=1e-3, abs=1e-4), metric


def test_induction_2l_has_induction_on_repeated_tokens():
    figures = shipped_measurements("induction-2l")
    assert figures["repeated_second_half_loss"] <= 1.0
    assert figures["repeated_first_half_loss_over_ln_vocab"] >= 0.8
    assert figures["max_previous_token_score_layer0"] >= 0.5
    assert figures["max_induction_score_layer1"] >= 0.5


@pytest.mark.parametrize("seed", (31_337, 1, 2))
def test_induction_2l_works_in_the_first_half_of_the_context_only(seed):
    """The card's stated limit, by 16-position chunk of 127-token repeated sequences: a previous-token head up to
    position 63 (above 0.99, then about 0.9), not after (0.33-0.49); second-copy loss below 0.6 nats up to position 111,
    about 1.7-2 after."""
    from curriculum.models.recipes.induction_2l import whole_context

    figures = whole_context(load_model("induction-2l"), seed=seed)
    previous = [value for _, value in figures["previous_token"]]
    loss = [value for _, value in figures["second_copy_loss"]]
    assert len(previous) == 8 and len(loss) == 4
    assert min(previous[:3]) > 0.99 and 0.85 < previous[3] < 0.95
    assert 0.33 <= min(previous[4:]) and max(previous[4:]) <= 0.49
    assert max(loss[:3]) < 0.6 and 1.5 < loss[3] < 2.2


def test_induction_2l_models_its_corpus():
    figures = shipped_measurements("induction-2l")
    assert figures["held_out_story_loss"] <= 0.75 * figures["unigram_entropy"]


def test_array_2l1h_is_accurate_at_every_answer_position():
    figures = shipped_measurements("array-2l1h")
    for position in range(3):
        assert figures[f"accuracy_b{position}"] >= 0.999


def test_toy_gpt_does_ioi_on_held_out_prompts():
    figures = shipped_measurements("toy-gpt")
    assert figures["ioi_mean_logit_diff"] >= 3.0
    assert figures["ioi_fraction_io_above_s"] >= 0.95


def test_toy_gpt_continues_held_out_number_sequences():
    assert shipped_measurements("toy-gpt")["next_number_accuracy"] >= 0.9


def test_toy_gpt_top_heads_explain_the_logit_difference():
    """The card's head list: direct effects are sorted, and together the heads' direct effects are positive."""
    from curriculum.models.recipes.toy_gpt import ioi_direct_effects

    effects = ioi_direct_effects(load_model("toy-gpt"), n=100)
    assert effects.shape == (4, 4)
    top = shipped_measurements("toy-gpt")["top_heads_by_direct_effect_on_ioi_logit_diff"]
    magnitudes = [abs(score) for _, score in top]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert effects.sum() > 0
