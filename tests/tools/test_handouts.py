"""The offline handouts (`python -m notebooks handouts`): one self-contained page per day. (That the pages draw every
figure with the network off is proven in a browser by bench/handout_proof.py.)"""

from __future__ import annotations

import re

import nbformat
import pytest

from notebooks.__main__ import main
from notebooks.handouts import PLOTLY_MIMETYPE, external_references, plotly_figures, render_notebook
from curriculum.tools.paths import COURSE_ROOT as REPO_ROOT



def test_a_days_handout_holds_its_figures_math_and_plotly_once(tmp_path, capsys):
    from plotly.offline import get_plotlyjs

    assert main(["handouts", "--out", str(tmp_path), "--day", "3"]) == 0
    (page,) = tmp_path.glob("*.html")
    assert page.name == "day3_causal_scrubbing.html" and str(page) in capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "instructor" / "day3_causal_scrubbing.ipynb", as_version=4)
    figures = plotly_figures(notebook)
    assert figures > 0
    assert text.count(get_plotlyjs()) == 1  # plotly.js inlined once, whatever the number of figures
    assert len(re.findall(r'<div class="figure" id="figure-\d+">', text)) == figures
    assert len(re.findall(r'<script type="application/json" data-figure=', text)) == figures
    block_math = sum(cell.source.count("$$") // 2 for cell in notebook.cells if cell.cell_type == "markdown")
    assert block_math > 0
    assert text.count('<math xmlns="http://www.w3.org/1998/Math/MathML" display="block">') == block_math
    assert "\\frac" not in text.split("<body", 1)[1].split("<script>", 1)[0]  # no LaTeX left for a script to typeset
    assert external_references(text) == []
    assert not re.search(r"<(script|link)[^>]+(src|href)=", text)  # nothing loaded, not even from disk


def test_a_page_that_would_load_from_the_network_is_refused():
    assert external_references('<script src="https://cdn.plot.ly/plotly.min.js"></script>')
    assert external_references("<link rel=stylesheet href='//cdn.example.org/katex.css'>")
    assert external_references('<img src="http://example.org/a.png">')
    assert not external_references('<a href="https://arxiv.org/abs/2209.11895">a citation</a>')
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("show()", outputs=[
        nbformat.v4.new_output("display_data", data={"text/html": '<script src="https://cdn.example.org/x.js">'
                                                                  "</script>"})])])
    with pytest.raises(ValueError, match="from the network"):
        render_notebook(notebook, "day 0")


def test_outputs_are_kept_as_stored():
    figure = {"data": [{"type": "bar", "x": [1, 2], "y": [3, 4]}], "layout": {"title": {"text": "</script> safe"}}}
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("Inline $a_i^2$ and a price of 5 dollars."),
        nbformat.v4.new_code_cell("print('x')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="L1H0 <b>0.93</b>\n"),
            nbformat.v4.new_output("display_data", data={PLOTLY_MIMETYPE: figure}),
            nbformat.v4.new_output("error", ename="ValueError", evalue="no",
                                   traceback=["\x1b[31mValueError\x1b[0m"])])])
    page = render_notebook(notebook, "day 0")
    assert "L1H0 &lt;b&gt;0.93&lt;/b&gt;" in page  # printed text is text, not markup
    assert '<math xmlns="http://www.w3.org/1998/Math/MathML" display="inline">' in page
    assert "<\\/script> safe" in page and "</script> safe" not in page  # a figure cannot close its script tag
    assert ">ValueError</pre>" in page  # terminal colours stripped
    assert plotly_figures(notebook) == 1 and page.count('data-figure="figure-1"') == 1
