"""Proof in a real browser that the offline handouts work offline: every figure drawn and interactive, math drawn, and
not one request leaving the page.

    python bench/handout_proof.py [--out out/handout-proof] [--day N ...]

Builds the handouts (`python -m notebooks handouts`) into --out, then opens each page from disk in headless Chromium
(Debian's `chromium`, driven over the DevTools protocol as in bench/browser_proof.py) with the network off twice over:
the browser's host resolver answers nothing (`--host-resolver-rules`) and DevTools emulates an offline connection.
Every request the page makes is recorded. Per day it compares, against the instructor notebook itself:
- figures: plotly outputs stored in the notebook = figures drawn on the page (an SVG with a trace layer);
- interactive: each drawn figure has plotly's drag layer (zoom/pan) and mode bar, and shows a hover label when the
  mouse moves over its plot area (DevTools mouse events onto its bars or markers, then across it, as a learner's mouse);
- math: `$...$`/`$$...$$` spans in the notebook's prose = MathML elements on the page with a non-empty box;
- requests: every URL the page asked for; external = anything but file:, data: and blob: (must be none).
Keeps a screenshot of each page's first figure (and of day 3's first equation), writes summary.json. Exit status 0
when every day holds.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_proof import Browser  # noqa: E402

OFFLINE_FLAGS = ("--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-pings", "--disable-domain-reliability")
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+\$", re.DOTALL)

READY = """(() => document.readyState === 'complete' && typeof Plotly !== 'undefined'
  && [...document.querySelectorAll('div.figure')].every(d => d._fullLayout !== undefined))()"""
MEASURE = """(() => {
  const figures = [...document.querySelectorAll('div.figure')];
  const drawn = figures.filter(d => d.querySelector('svg.main-svg') && d.data && d.data.length > 0
      && d.querySelector('.heatmaplayer image, .scatterlayer .trace, .barlayer .trace, .imagelayer image'));
  const interactive = drawn.filter(d => d.querySelector('.nsewdrag') && d.querySelector('.modebar'));
  const maths = [...document.querySelectorAll('math')];
  const mathDrawn = maths.filter(m => { const r = m.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
  return {figures: figures.length, figures_drawn: drawn.length, interactive: interactive.length,
          math: maths.length, math_drawn: mathDrawn.length,
          page_scripts_from_network: [...document.scripts].filter(s => /^https?:/.test(s.src)).length}; })()"""
# where to move the mouse over figure i (scrolled into view), in viewport pixels: the middles of its largest drawn
# points (bars, markers), then the middle of its plot area, then a 5 x 5 grid over it
HOVER_SPOTS = """((i) => { const d = document.querySelectorAll('div.figure')[i];
  d.scrollIntoView({block: 'center'});
  const middle = r => [r.left + r.width / 2, r.top + r.height / 2];
  const points = [...d.querySelectorAll('.barlayer .point path, .scatterlayer .points path')]
    .map(p => p.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 0)
    .sort((a, b) => b.width * b.height - a.width * a.height).slice(0, 3).map(middle);
  const r = d.querySelector('.nsewdrag').getBoundingClientRect();
  const grid = [];
  for (const fy of [0.1, 0.3, 0.5, 0.7, 0.9]) for (const fx of [0.1, 0.3, 0.5, 0.7, 0.9])
    grid.push([r.left + fx * r.width, r.top + fy * r.height]);
  return [...points, middle(r), ...grid]; })"""
HOVER_LABEL = """((i) => !!document.querySelectorAll('div.figure')[i].querySelector('.hoverlayer .hovertext'))"""
SCROLL_TO = """((selector) => { const el = document.querySelector(selector); if (!el) return false;
  el.scrollIntoView({block: 'center'}); return true; })"""


def expected(notebook_path: Path) -> dict[str, int]:
    """What the notebook itself holds: its plotly outputs and the math spans of its prose."""
    import nbformat

    from notebooks.handouts import plotly_figures

    notebook = nbformat.read(notebook_path, as_version=4)
    math = sum(len(_MATH.findall(cell.source)) for cell in notebook.cells if cell.cell_type == "markdown")
    return {"figures": plotly_figures(notebook), "math": math}


def hover(browser: Browser, index: int) -> bool:
    """Move the mouse over figure `index` as a learner would (onto its bars or markers, then across its plot area):
    does a hover label appear?"""
    spots = browser.evaluate(f"{HOVER_SPOTS}({index})")
    time.sleep(0.2)
    shown = False
    for x, y in spots:
        browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        time.sleep(0.1)
        if browser.evaluate(f"{HOVER_LABEL}({index})"):
            shown = True
            break
    browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=0, y=0)
    return shown


def prove_page(browser: Browser, page: Path, notebook: Path, shots: Path) -> dict:
    browser.events.clear()
    start = time.monotonic()
    browser.send("Page.navigate", url=page.as_uri())
    browser.wait_until(READY, 120, poll_s=0.5)
    seconds = round(time.monotonic() - start, 1)
    measured = browser.evaluate(MEASURE)
    measured["hover_labels"] = sum(hover(browser, index) for index in range(measured["figures"]))
    screenshots = []
    for name, selector in (("figure", "div.figure"), ("math", 'math[display="block"]')):
        if browser.evaluate(f"{SCROLL_TO}({json.dumps(selector)})"):
            time.sleep(0.5)
            path = shots / f"{page.stem}_{name}.png"
            browser.screenshot(path)
            screenshots.append(str(path))
    urls = [event["params"]["request"]["url"] for event in browser.events
            if event.get("method") == "Network.requestWillBeSent"]
    external = [url for url in urls if not url.startswith(("file:", "data:", "blob:", "about:"))]
    wanted = expected(notebook)
    result = {"page": page.name, "megabytes": round(page.stat().st_size / 1e6, 2), "load_seconds": seconds,
              "notebook_figures": wanted["figures"], "notebook_math": wanted["math"], **measured,
              "requests": len(urls), "external_requests": external, "screenshots": screenshots}
    result["ok"] = bool(measured["figures_drawn"] == measured["interactive"] == measured["hover_labels"]
                        == wanted["figures"] == measured["figures"]
                        and measured["math"] == measured["math_drawn"] == wanted["math"]
                        and not external and not measured["page_scripts_from_network"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "handout-proof")
    parser.add_argument("--day", type=int, action="append", help="only this day (repeatable)")
    args = parser.parse_args(argv)
    from notebooks.builder import find_days
    from notebooks.handouts import build_handouts

    out = args.out.resolve()
    pages = build_handouts(REPO_ROOT, out, args.day)
    notebooks = {files.solution.stem: files.instructor_notebook for files in find_days(REPO_ROOT, args.day)}
    scratch = Path(tempfile.mkdtemp(prefix="handout-proof-"))
    browser = Browser(scratch / "chromium", width=1280, height=900, extra_args=OFFLINE_FLAGS)
    try:
        browser.send("Network.enable")
        browser.send("Network.emulateNetworkConditions", offline=True, latency=0, downloadThroughput=-1,
                     uploadThroughput=-1)
        days = [prove_page(browser, page, notebooks[page.stem], out) for page in pages]
    finally:
        browser.close()
        shutil.rmtree(scratch, ignore_errors=True)
    version = subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip()
    summary = {"chromium": version, "network": "off (host resolver maps every name to nothing; DevTools offline)",
               "days": days, "ok": all(day["ok"] for day in days)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
