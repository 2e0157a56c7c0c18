"""Plotly helpers shared by every day of the course.

Each helper takes tensors (torch, numpy or nested lists), returns a `plotly.graph_objects.Figure` and draws
nothing by itself, so a test can inspect the figure and a script can run without a browser. Call `show(fig)` to
display one: it renders inline in Jupyter (plotly's mimetype renderer, no network) and does nothing elsewhere.

Token labels are drawn as tick text on numeric axes, so repeated tokens (common in this course) stay separate
rows and columns instead of being merged the way plotly merges equal category names.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["to_numpy", "show", "imshow", "line", "scatter", "bar", "attention_patterns", "attention_grid"]

ArrayLike = Any  # torch.Tensor | np.ndarray | nested lists of numbers

DIVERGING = "RdBu"
SEQUENTIAL = "Blues"


def to_numpy(values: ArrayLike) -> np.ndarray:
    """Convert a torch tensor (any device, any float dtype, with or without grad), array or list to numpy."""
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch here
        values = values.detach().float().cpu().numpy() if values.is_floating_point() else values.detach().cpu().numpy()
    return np.asarray(values)


def _running_in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show(fig: go.Figure) -> None:
    """Display `fig` inline when running in a Jupyter kernel; do nothing in a plain script or a test."""
    if _running_in_notebook():
        fig.show()


def _check_ndim(array: np.ndarray, allowed: Sequence[int], what: str) -> None:
    if array.ndim not in allowed:
        dims = " or ".join(f"{n}-d" for n in allowed)
        raise ValueError(f"{what} must be {dims}, got shape {tuple(array.shape)}")


def _check_labels(labels: Sequence[Any] | None, length: int, what: str) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if len(labels) != length:
        raise ValueError(f"{what} has {len(labels)} labels for {length} entries")
    return labels


def _symmetric_range(array: np.ndarray) -> tuple[float, float]:
    finite = array[np.isfinite(array)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    return -bound, bound


def _heatmap(
    array: np.ndarray,
    x_labels: list[str] | None,
    y_labels: list[str] | None,
    colorscale: str,
    zrange: tuple[float, float] | None,
    hover_value: str,
    showscale: bool = True,
) -> go.Heatmap:
    rows, cols = array.shape
    x_text = x_labels or [str(i) for i in range(cols)]
    y_text = y_labels or [str(i) for i in range(rows)]
    customdata = np.array([[(y_text[r], x_text[c]) for c in range(cols)] for r in range(rows)], dtype=object)
    return go.Heatmap(
        z=array,
        x=list(range(cols)),
        y=list(range(rows)),
        customdata=customdata,
        hovertemplate=f"row %{{y}} (%{{customdata[0]}})<br>col %{{x}} (%{{customdata[1]}})<br>{hover_value}"
        "=%{z:.4g}<extra></extra>",
        colorscale=colorscale,
        zmin=None if zrange is None else zrange[0],
        zmax=None if zrange is None else zrange[1],
        showscale=showscale,
    )


ROW_PIXELS = 16  # height of one labelled heatmap row: tick labels at font size 10 stay apart
MAX_TICKS = 60  # beyond this many rows or columns, every k-th label is shown (hover still names each one)


def _fit_to_rows(fig: go.Figure, n_rows: int) -> None:
    """Make a heatmap figure tall enough that each labelled row gets ROW_PIXELS (at least 420 px in all)."""
    fig.update_layout(height=max(420, 170 + ROW_PIXELS * min(n_rows, MAX_TICKS)))
    fig.update_xaxes(tickfont={"size": 10})
    fig.update_yaxes(tickfont={"size": 10})


def _thinned(labels: list[str]) -> tuple[list[int], list[str]]:
    step = -(-len(labels) // MAX_TICKS)
    positions = list(range(0, len(labels), step))
    return positions, [labels[i] for i in positions]


def _label_axes(fig: go.Figure, x_labels: list[str] | None, y_labels: list[str] | None, **subplot: int) -> None:
    if x_labels is not None:
        positions, text = _thinned(x_labels)
        fig.update_xaxes(tickmode="array", tickvals=positions, ticktext=text, **subplot)
    if y_labels is not None:
        positions, text = _thinned(y_labels)
        fig.update_yaxes(tickmode="array", tickvals=positions, ticktext=text, **subplot)
    fig.update_yaxes(autorange="reversed", **subplot)  # row 0 at the top, as in a matrix


def imshow(
    values: ArrayLike,
    *,
    title: str = "",
    x_labels: Sequence[Any] | None = None,
    y_labels: Sequence[Any] | None = None,
    xaxis: str = "",
    yaxis: str = "",
    facet_labels: Sequence[Any] | None = None,
    diverging: bool = True,
    zrange: tuple[float, float] | None = None,
    value_name: str = "value",
) -> go.Figure:
    """Heatmap of a 2-d array, or one heatmap per slice of a 3-d array (facets along dim 0).

    diverging: red-white-blue scale centred on zero (for signed values like scores or logit attributions);
        False gives a white-to-blue scale (for probabilities).
    zrange: colour range; by default symmetric about zero when diverging, data range otherwise. Facets share it.
    """
    array = to_numpy(values)
    _check_ndim(array, (2, 3), "imshow values")
    colorscale = DIVERGING if diverging else SEQUENTIAL
    if zrange is None and diverging:
        zrange = _symmetric_range(array)
    if zrange is None:
        zrange = (float(np.nanmin(array)), float(np.nanmax(array)))

    if array.ndim == 2:
        x_text = _check_labels(x_labels, array.shape[1], "x_labels")
        y_text = _check_labels(y_labels, array.shape[0], "y_labels")
        fig = go.Figure(_heatmap(array, x_text, y_text, colorscale, zrange, value_name))
        _label_axes(fig, x_text, y_text)
    else:
        n_facets = array.shape[0]
        titles = _check_labels(facet_labels, n_facets, "facet_labels") or [str(i) for i in range(n_facets)]
        x_text = _check_labels(x_labels, array.shape[2], "x_labels")
        y_text = _check_labels(y_labels, array.shape[1], "y_labels")
        fig = make_subplots(rows=1, cols=n_facets, subplot_titles=titles, shared_yaxes=True)
        for i in range(n_facets):
            trace = _heatmap(array[i], x_text, y_text, colorscale, zrange, value_name, showscale=i == 0)
            fig.add_trace(trace, row=1, col=i + 1)
            _label_axes(fig, x_text, y_text, row=1, col=i + 1)
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis)
    if array.shape[-2] > 12:  # many rows: give each its height (a few rows fit plotly's default)
        _fit_to_rows(fig, array.shape[-2])
    return fig


def line(
    values: ArrayLike,
    *,
    x: ArrayLike | None = None,
    names: Sequence[Any] | None = None,
    title: str = "",
    xaxis: str = "",
    yaxis: str = "",
    x_labels: Sequence[Any] | None = None,
) -> go.Figure:
    """One line for a 1-d array, or one line per row of a 2-d array (named by `names`).

    x: x coordinates (default 0, 1, ...). x_labels: tick text per x position (e.g. string tokens).
    """
    array = to_numpy(values)
    _check_ndim(array, (1, 2), "line values")
    rows = array[None] if array.ndim == 1 else array
    xs = np.arange(rows.shape[1]) if x is None else to_numpy(x)
    if xs.shape != (rows.shape[1],):
        raise ValueError(f"x has shape {tuple(xs.shape)}, expected ({rows.shape[1]},)")
    labels = _check_labels(names, rows.shape[0], "names")
    fig = go.Figure()
    for i, row in enumerate(rows):
        fig.add_trace(go.Scatter(x=xs, y=row, mode="lines", name=labels[i] if labels else str(i)))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, showlegend=rows.shape[0] > 1)
    tick_text = _check_labels(x_labels, rows.shape[1], "x_labels")
    if tick_text is not None:
        fig.update_xaxes(tickmode="array", tickvals=list(xs), ticktext=tick_text)
    return fig


def scatter(
    x: ArrayLike,
    y: ArrayLike,
    *,
    text: Sequence[Any] | None = None,
    color: ArrayLike | None = None,
    title: str = "",
    xaxis: str = "",
    yaxis: str = "",
    diagonal: bool = False,
) -> go.Figure:
    """Scatter of y against x; `text` labels each point (shown on hover), `color` colours points by value.

    diagonal: draw the line y = x (useful when comparing two measurements of the same thing).
    """
    xs, ys = to_numpy(x).ravel(), to_numpy(y).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"x has {xs.size} points but y has {ys.size}")
    labels = _check_labels(text, xs.size, "text")
    marker: dict[str, Any] = {}
    if color is not None:
        colors = to_numpy(color).ravel()
        if colors.size != xs.size:
            raise ValueError(f"color has {colors.size} values for {xs.size} points")
        marker = {"color": colors, "colorscale": "Viridis", "showscale": True}
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="markers", text=labels, marker=marker, name=""))
    if diagonal and xs.size:
        low = float(min(xs.min(), ys.min()))
        high = float(max(xs.max(), ys.max()))
        fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", line={"dash": "dash"}, name="y = x"))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, showlegend=diagonal)
    return fig


def bar(
    values: ArrayLike,
    *,
    labels: Sequence[Any] | None = None,
    title: str = "",
    xaxis: str = "",
    yaxis: str = "",
    horizontal: bool = False,
) -> go.Figure:
    """Bar chart of a 1-d array, one bar per entry, labelled by `labels` (e.g. "L0H3")."""
    array = to_numpy(values)
    _check_ndim(array, (1,), "bar values")
    names = _check_labels(labels, array.size, "labels") or [str(i) for i in range(array.size)]
    trace = go.Bar(y=names, x=array, orientation="h") if horizontal else go.Bar(x=names, y=array)
    fig = go.Figure(trace)
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis)
    if horizontal:
        fig.update_yaxes(autorange="reversed")  # first entry on top
    return fig


def _pattern_inputs(
    patterns: ArrayLike, tokens: Sequence[Any] | None, head_labels: Sequence[Any] | None
) -> tuple[np.ndarray, list[str], list[str]]:
    array = to_numpy(patterns)
    if array.ndim == 2:
        array = array[None]
    _check_ndim(array, (3,), "attention patterns")
    n_heads, n_query, n_key = array.shape
    if n_query != n_key:
        raise ValueError(f"attention patterns must be [head, query, key] with query == key, got {array.shape}")
    token_text = _check_labels(tokens, n_key, "tokens") or [str(i) for i in range(n_key)]
    token_text = [f"{i}: {t}" for i, t in enumerate(token_text)]
    heads = _check_labels(head_labels, n_heads, "head_labels") or [f"head {h}" for h in range(n_heads)]
    return array, token_text, heads


def attention_patterns(
    patterns: ArrayLike,
    tokens: Sequence[Any] | None = None,
    *,
    head_labels: Sequence[Any] | None = None,
    title: str = "Attention patterns",
) -> go.Figure:
    """One heatmap per head, picked from a dropdown: rows are query (destination) positions, columns are key
    (source) positions, values are attention probabilities in [0, 1].

    patterns: [head, query, key] (or [query, key] for one head), e.g. `cache["pattern", layer][batch_index]`.
    tokens: the string tokens of the sequence, used as row and column labels (prefixed by position).
    """
    array, token_text, heads = _pattern_inputs(patterns, tokens, head_labels)
    fig = go.Figure()
    for h, head in enumerate(heads):
        trace = _heatmap(array[h], token_text, token_text, SEQUENTIAL, (0.0, 1.0), "attention")
        trace.visible = h == 0
        trace.name = head
        fig.add_trace(trace)
    buttons = [
        {
            "label": head,
            "method": "update",
            "args": [{"visible": [i == h for i in range(len(heads))]}, {"title": {"text": f"{title}: {head}"}}],
        }
        for h, head in enumerate(heads)
    ]
    fig.update_layout(
        title=f"{title}: {heads[0]}",
        xaxis_title="key (source) position",
        yaxis_title="query (destination) position",
        updatemenus=[{"buttons": buttons, "direction": "down", "x": 1.0, "xanchor": "right", "y": 1.15}],
    )
    _label_axes(fig, token_text, token_text)
    _fit_to_rows(fig, len(token_text))
    return fig


def attention_grid(
    patterns: ArrayLike,
    tokens: Sequence[Any] | None = None,
    *,
    head_labels: Sequence[Any] | None = None,
    title: str = "Attention patterns",
    columns: int = 4,
) -> go.Figure:
    """All heads side by side (a grid of small heatmaps), to compare heads at a glance.

    Same inputs as `attention_patterns`. Tick labels are omitted when there are many tokens; hover shows them.
    """
    array, token_text, heads = _pattern_inputs(patterns, tokens, head_labels)
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    n_cols = min(columns, len(heads))
    n_rows = -(-len(heads) // n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=heads, horizontal_spacing=0.03, vertical_spacing=0.08)
    show_ticks = len(token_text) <= 20
    for h in range(len(heads)):
        row, col = h // n_cols + 1, h % n_cols + 1
        fig.add_trace(
            _heatmap(array[h], token_text, token_text, SEQUENTIAL, (0.0, 1.0), "attention", showscale=h == 0),
            row=row,
            col=col,
        )
        labels = token_text if show_ticks else None
        _label_axes(fig, labels, labels, row=row, col=col)
        if not show_ticks:
            fig.update_xaxes(showticklabels=False, row=row, col=col)
            fig.update_yaxes(showticklabels=False, row=row, col=col)
    fig.update_layout(title=title, height=max(300, 260 * n_rows))
    return fig
