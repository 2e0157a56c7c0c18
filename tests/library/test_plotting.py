"""Tests of curriculum.library.plotting: figures carry the data they were given, and bad input fails clearly."""

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from curriculum.library import plotting


def test_to_numpy_accepts_tensors_with_grad_and_low_precision():
    tensor = torch.arange(6, dtype=torch.bfloat16).reshape(2, 3).requires_grad_()
    array = plotting.to_numpy(tensor)
    assert array.dtype == np.float32
    np.testing.assert_array_equal(array, np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(plotting.to_numpy(torch.tensor([1, 2])), [1, 2])


def test_imshow_keeps_values_and_repeated_labels_apart():
    values = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    fig = plotting.imshow(values, x_labels=["a", "a", "b"], y_labels=["x", "y"], title="t")
    (heatmap,) = fig.data
    np.testing.assert_array_equal(heatmap.z, values.numpy())
    # Two equal labels must remain two columns: numeric positions, labels as tick text.
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2]
    assert list(fig.layout.xaxis.ticktext) == ["a", "a", "b"]
    assert (heatmap.zmin, heatmap.zmax) == (-3.0, 3.0)  # diverging scale is symmetric about zero


def test_imshow_facets_one_heatmap_per_slice_with_shared_range():
    values = torch.stack([torch.eye(3), 2 * torch.eye(3)])
    fig = plotting.imshow(values, facet_labels=["first", "second"], diverging=False)
    assert len(fig.data) == 2
    assert {(t.zmin, t.zmax) for t in fig.data} == {(0.0, 2.0)}
    assert [a.text for a in fig.layout.annotations] == ["first", "second"]


def test_line_draws_one_trace_per_row():
    fig = plotting.line(torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]]), names=["up", "down"])
    assert [t.name for t in fig.data] == ["up", "down"]
    np.testing.assert_array_equal(fig.data[1].y, [3.0, 2.0, 1.0])


def test_scatter_and_bar_carry_their_data():
    fig = plotting.scatter([1, 2, 3], [2, 4, 6], text=["a", "b", "c"], diagonal=True)
    np.testing.assert_array_equal(fig.data[0].y, [2, 4, 6])
    assert len(fig.data) == 2  # points and the y = x line
    fig = plotting.bar(torch.tensor([0.5, -1.0]), labels=["L0H0", "L0H1"])
    assert list(fig.data[0].x) == ["L0H0", "L0H1"]


def test_attention_patterns_dropdown_shows_one_head_at_a_time():
    patterns = torch.softmax(torch.randn(3, 4, 4, generator=torch.Generator().manual_seed(0)), dim=-1)
    fig = plotting.attention_patterns(patterns, ["<s>", "a", "b", "a"], head_labels=["L0H0", "L0H1", "L0H2"])
    assert [t.visible for t in fig.data] == [True, False, False]
    buttons = fig.layout.updatemenus[0].buttons
    assert [b.label for b in buttons] == ["L0H0", "L0H1", "L0H2"]
    assert buttons[2].args[0]["visible"] == [False, False, True]
    assert list(fig.layout.xaxis.ticktext) == ["0: <s>", "1: a", "2: b", "3: a"]


def test_attention_grid_places_every_head():
    patterns = torch.full((5, 3, 3), 1 / 3)
    fig = plotting.attention_grid(patterns, columns=2)
    assert len(fig.data) == 5
    assert isinstance(fig, go.Figure)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: plotting.imshow(torch.zeros(3)), "2-d or 3-d"),
        (lambda: plotting.imshow(torch.zeros(2, 3), x_labels=["a"]), "x_labels has 1 labels for 3"),
        (lambda: plotting.attention_patterns(torch.zeros(2, 3, 4)), "query == key"),
        (lambda: plotting.scatter([1, 2], [1]), "x has 2 points but y has 1"),
        (lambda: plotting.line(torch.zeros(2, 3), x=[0, 1]), "expected (3,)"),
    ],
)
def test_bad_input_raises_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_show_is_silent_outside_a_notebook():
    assert plotting.show(plotting.bar([1.0])) is None


def test_heatmaps_give_each_labelled_row_room():
    tokens = [f"word{i}" for i in range(41)]
    patterns = torch.softmax(torch.randn(2, 41, 41, generator=torch.Generator().manual_seed(0)), dim=-1)
    fig = plotting.attention_patterns(patterns, tokens)
    assert fig.layout.height >= plotting.ROW_PIXELS * 41  # 41 rows, each at least ROW_PIXELS tall
    assert len(fig.layout.yaxis.ticktext) == 41
    long = plotting.imshow(torch.zeros(200, 3), y_labels=[str(i) for i in range(200)])
    assert len(long.layout.yaxis.ticktext) <= plotting.MAX_TICKS  # labels thinned beyond MAX_TICKS rows
    small = plotting.imshow(torch.zeros(2, 4))
    assert small.layout.height is None  # a few rows keep plotly's default size
