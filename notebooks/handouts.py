"""Offline handouts: one self-contained HTML page per day, the instructor notebook with the outputs it stores.

    python -m notebooks handouts --out DIR [--day N]

A learner without Jupyter opens `DIR/dayN_<topic>.html` in a browser, offline. Each page carries everything it uses:
- every plotly figure the notebook stores (its `application/vnd.plotly.v1+json` output) is drawn by plotly.js,
  interactive (hover, zoom, pan), with plotly.js inlined once per page: the bundle of the installed `plotly` Python
  package (`plotly.offline.get_plotlyjs()`, MIT licence), so a page draws the figures it was built with;
- math (`$...$`, `$$...$$` in the prose) is converted at build time to MathML by `latex2mathml` (a Python package,
  MIT licence), which browsers draw natively: no script, no font and no CDN;
- code is highlighted by Pygments (CSS in the page); printed text, tables and images are kept as stored.
The page refers to nothing outside itself: `external_references` lists any `http(s)://` script, stylesheet, image or
frame in it, and building fails if there is one. `bench/handout_proof.py` opens every page in headless Chromium with
the network off and checks that each figure is drawn and no request leaves the page.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import nbformat

from notebooks.builder import find_days

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_EXTERNAL = re.compile(r"""<(script|link|img|iframe|source|embed)\b[^>]*\b(src|href)\s*=\s*["']?\s*(https?:)?//""",
                       re.IGNORECASE)


def markdown_renderer():
    """CommonMark with tables and `$`/`$$` math, the math converted to MathML."""
    from latex2mathml.converter import convert
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    def math(content: str, options: dict[str, Any]) -> str:
        return convert(content.strip(), display="block" if options.get("display_mode") else "inline")

    return MarkdownIt("commonmark", {"html": True}).enable("table").use(dollarmath_plugin, renderer=math,
                                                                        allow_digits=False)


def highlight(code: str) -> str:
    from pygments import highlight as pygments_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return pygments_highlight(code, PythonLexer(), HtmlFormatter(cssclass="code"))


def _text(value: str | list[str]) -> str:
    return "".join(value) if isinstance(value, list) else value


def render_output(output: nbformat.NotebookNode, figure_id: str) -> str:
    """One stored output as HTML: a plotly figure as a div that the page's script draws, the rest as stored."""
    kind = output.get("output_type")
    if kind == "stream":
        css = "stderr" if output.get("name") == "stderr" else "stdout"
        return f'<pre class="output {css}">{html.escape(_ANSI.sub("", _text(output["text"])))}</pre>'
    if kind == "error":
        trace = _ANSI.sub("", "\n".join(output.get("traceback", [])))
        return f'<pre class="output error">{html.escape(trace)}</pre>'
    data = output.get("data", {})
    if PLOTLY_MIMETYPE in data:
        figure = json.dumps(data[PLOTLY_MIMETYPE]).replace("</", "<\\/")
        return (f'<div class="figure" id="{figure_id}"></div>'
                f'<script type="application/json" data-figure="{figure_id}">{figure}</script>')
    if "text/html" in data:
        return f'<div class="output html">{_text(data["text/html"])}</div>'
    for mime in ("image/png", "image/jpeg"):
        if mime in data:
            return f'<img class="output" alt="figure" src="data:{mime};base64,{_text(data[mime]).strip()}">'
    if "image/svg+xml" in data:
        return f'<div class="output">{_text(data["image/svg+xml"])}</div>'
    if "text/plain" in data:
        return f'<pre class="output">{html.escape(_ANSI.sub("", _text(data["text/plain"])))}</pre>'
    return ""


def render_notebook(notebook: nbformat.NotebookNode, title: str) -> str:
    """A whole notebook as one self-contained HTML page."""
    from plotly.offline import get_plotlyjs
    from pygments.formatters import HtmlFormatter

    markdown = markdown_renderer()
    parts = []
    figures = 0
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            parts.append(f'<section class="markdown">{markdown.render(cell.source)}</section>')
        elif cell.cell_type == "code" and cell.source.strip():
            outputs = []
            for output in cell.get("outputs", []):
                if output.get("output_type") in ("display_data", "execute_result") and \
                        PLOTLY_MIMETYPE in output.get("data", {}):
                    figures += 1
                outputs.append(render_output(output, f"figure-{figures}"))
            parts.append(f'<section class="cell">{highlight(cell.source)}{"".join(outputs)}</section>')
    page = _PAGE.format(title=html.escape(title), css=_CSS + HtmlFormatter(cssclass="code").get_style_defs(".code"),
                        body="\n".join(parts), plotly=get_plotlyjs(), draw=_DRAW, figures=figures)
    found = external_references(page)
    if found:
        raise ValueError(f"{title}: the page would load {', '.join(found[:3])} from the network")
    return page


def external_references(page: str) -> list[str]:
    """The tags of `page` that would load a script, stylesheet, image or frame from another host."""
    return [match.group(0) for match in _EXTERNAL.finditer(page)]


def build_handouts(root: Path, out: Path, days: list[int] | None = None) -> list[Path]:
    """Write `out/dayN_<topic>.html` for each day (every day, or `days`) from its executed instructor notebook."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for files in find_days(root, days):
        if not files.instructor_notebook.is_file():
            raise FileNotFoundError(f"{files.instructor_notebook} does not exist: run `python -m notebooks build`")
        notebook = nbformat.read(files.instructor_notebook, as_version=4)
        page = render_notebook(notebook, f"Day {files.number}: {files.solution.stem}")
        path = out / f"{files.solution.stem}.html"
        path.write_text(page, encoding="utf-8")
        written.append(path)
    return written


def plotly_figures(notebook: nbformat.NotebookNode) -> int:
    """How many plotly figures a notebook stores (what its handout must draw)."""
    return sum(1 for cell in notebook.cells for output in cell.get("outputs", [])
               if PLOTLY_MIMETYPE in output.get("data", {}))


_DRAW = """
document.querySelectorAll('script[data-figure]').forEach(function (holder) {
  var figure = JSON.parse(holder.textContent);
  var config = Object.assign({responsive: true, displaylogo: false}, figure.config || {});
  Plotly.newPlot(document.getElementById(holder.dataset.figure), figure.data, figure.layout || {}, config);
});
"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; line-height: 1.5; color: #1f2328; }
section.markdown { margin: 1.2em 0; }
section.cell { margin: 1em 0; border-left: 3px solid #d0d7de; padding-left: 0.8em; }
.code pre, pre.output { overflow-x: auto; padding: 0.6em; font-size: 0.85em; margin: 0.3em 0; }
.code pre { background: #f6f8fa; }
pre.output { background: #fff; border: 1px solid #eaeef2; }
pre.stderr, pre.error { background: #fff5f5; }
div.figure { width: 100%; margin: 0.5em 0; }
math[display="block"] { margin: 0.8em 0; font-size: 1.15em; }
table { border-collapse: collapse; } td, th { border: 1px solid #d0d7de; padding: 0.2em 0.6em; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="python -m notebooks handouts">
<title>{title}</title>
<style>{css}</style>
<script>{plotly}</script>
</head>
<body data-figures="{figures}">
{body}
<script>{draw}</script>
</body>
</html>
"""
