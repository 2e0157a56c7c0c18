"""Proof in a real browser: a learner's day-1 notebook runs in JupyterLab and its plotly figures are drawn, offline.

    python bench/browser_proof.py [--out out/browser-proof] [--day 1]

Starts JupyterLab on 127.0.0.1 only, in a fresh workspace made by `python -m curriculum start N`, and drives headless
Chromium (Debian's `chromium`) over the DevTools protocol (a websocket; no selenium, no playwright):
1. the learner's copy as started, every exercise a stub: "Run All" must reach the last cell with no error output,
   each cell that needs an unwritten exercise saying so in one line;
2. the same notebook with every exercise filled in from the solutions: every `plotting.show` must draw a plotly
   figure (an SVG with its traces), and the first attention heatmap is kept as a screenshot with its tick labels'
   spacing measured, so a person can check the labels are readable.
Prints a JSON summary and writes it, with the screenshots, under --out. Exit status 0 when both checks hold.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s") from None
            time.sleep(0.5)


class Browser:
    """Headless Chromium driven over the DevTools protocol."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1100, extra_args: tuple[str, ...] = ()) -> None:
        import websocket

        executable = shutil.which("chromium") or shutil.which("chromium-browser")
        if executable is None:
            raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
        port = free_port()
        self.process = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}",
             "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", f"--window-size={width},{height}",
             "--no-first-run", "--disable-extensions", *extra_args, "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_http(f"http://127.0.0.1:{port}/json/version", 60)
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json").read())
        page = next(p for p in pages if p["type"] == "page")
        self.socket = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=120,
                                                  suppress_origin=True)
        self.next_id = 0
        self.events: list[dict] = []  # the protocol's events received so far (e.g. Network.requestWillBeSent)
        self.send("Page.enable")
        self.send("Runtime.enable")

    def send(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if "method" in message:
                self.events.append(message)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> object:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout_s: float, poll_s: float = 1.0) -> object:
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true after {timeout_s:.0f} s: {expression}")
            time.sleep(poll_s)

    def screenshot(self, path: Path) -> None:
        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(timeout=30)


# JavaScript run in the page (JupyterLab 4 started with expose_app_in_browser). A headless page has no focus, so
# the notebook is found by its path among the main area's widgets, not as the "current" widget.
NOTEBOOK = ("(window.jupyterapp ? Array.from(window.jupyterapp.shell.widgets('main'))"
            ".find(w => w.sessionContext && w.content && w.context.path === PATH) : undefined)")
NOTEBOOK_READY = """(() => { const w = NOTEBOOK;
  return !!(w && w.sessionContext.session && w.sessionContext.session.kernel
            && w.sessionContext.session.kernel.connectionStatus === 'connected'
            && w.sessionContext.session.kernel.status === 'idle' && w.content.widgets.length > 0); })()"""
RUN_ALL = """(() => { const w = NOTEBOOK; window.jupyterapp.shell.activateById(w.id);
  return window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => true); })()"""
# done: the kernel is idle and every code cell has an execution count (none pending "[*]")
ALL_RUN = """(() => { const w = NOTEBOOK;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const idle = w.sessionContext.session.kernel.status === 'idle';
  return idle && cells.every(c => c.model.executionCount !== null && c.promptNode.textContent.indexOf('*') < 0); })()"""
SUMMARY = """(() => { const w = NOTEBOOK;
  const cells = w.content.widgets.filter(c => c.model.type === 'code');
  const outputs = cells.map(c => c.model.outputs.toJSON());
  const errors = outputs.flat().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue);
  const text = outputs.flat().filter(o => o.output_type === 'stream').map(o => o.text).join('');
  const skipped = text.split('\\n').filter(l => l.startsWith('[skipped the rest of this cell]'));
  const plots = [...w.node.querySelectorAll('.js-plotly-plot')];
  const drawn = plots.filter(p => p.querySelector('svg.main-svg') && p.data && p.data.length > 0
                                  && p.querySelector('.heatmaplayer image, .scatterlayer .trace, .barlayer .trace'));
  const heatmaps = plots.filter(p => p.querySelector('.heatmaplayer image'));
  return {code_cells: cells.length, executed: cells.filter(c => c.model.executionCount !== null).length,
          errors: errors, skipped_lines: skipped, figures: plots.length, figures_drawn: drawn.length,
          heatmaps: heatmaps.length}; })()"""
# the first heatmap with token labels: scroll it into view; report its size and the spacing of its y tick labels
FIRST_ATTENTION = """(() => { const w = NOTEBOOK;
  const plot = [...w.node.querySelectorAll('.js-plotly-plot')].find(p => p.querySelector('.heatmaplayer image')
      && p.querySelectorAll('.ytick').length > 20);
  if (!plot) return null;
  plot.scrollIntoView({block: 'start'});
  const ticks = [...plot.querySelectorAll('.ytick text')].map(t => t.getBoundingClientRect());
  const tops = ticks.map(r => r.top).sort((a, b) => a - b);
  const gaps = tops.slice(1).map((t, i) => t - tops[i]);
  const heights = ticks.map(r => r.height);
  return {rows: ticks.length, figure_height_px: plot.getBoundingClientRect().height,
          smallest_label_gap_px: Math.min(...gaps), label_height_px: Math.max(...heights)}; })()"""


NOTEBOOK_READY, RUN_ALL, ALL_RUN, SUMMARY, FIRST_ATTENTION = (
    script.replace("NOTEBOOK", NOTEBOOK) for script in (NOTEBOOK_READY, RUN_ALL, ALL_RUN, SUMMARY, FIRST_ATTENTION))


def filled_notebook(number: int, destination: Path) -> Path:
    """The learner's notebook of day `number` with every exercise filled in from the solutions."""
    import jupytext

    from notebooks.builder import find_days, make_learner_notebook

    (files,) = find_days(REPO_ROOT, [number])
    notebook = make_learner_notebook(files.solution.read_text(), files.solution.name)
    notebook.metadata.pop("course_generated", None)
    path = destination / f"{files.solution.stem}_filled.ipynb"
    jupytext.write(notebook, path)
    return path


def run_notebook(browser: Browser, base: str, name: str, token: str, timeout_s: float) -> dict:
    browser.send("Page.navigate", url=f"{base}/{name}?token={token}")
    path = json.dumps(name)
    browser.wait_until(NOTEBOOK_READY.replace("PATH", path), 180)
    started = time.monotonic()
    browser.evaluate(RUN_ALL.replace("PATH", path))
    browser.wait_until(ALL_RUN.replace("PATH", path), timeout_s, poll_s=2.0)
    summary = browser.evaluate(SUMMARY.replace("PATH", path))
    summary["run_seconds"] = round(time.monotonic() - started, 1)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "out" / "browser-proof")
    parser.add_argument("--day", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed for one Run All")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="browser-proof-"))
    workspace = scratch / "workspace"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MECHINTERP_WORKSPACE": str(workspace),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
           "JUPYTERLAB_SETTINGS_DIR": str(scratch / "settings"), "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(scratch / "lab-workspaces")}  # no layout restored from an earlier run
    # every cell in the page (no virtual scrolling), so that each figure is drawn and can be counted
    tracker = scratch / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    subprocess.run([sys.executable, "-m", "curriculum", "start", str(args.day)], env=env, check=True,
                   capture_output=True)
    stub_notebook = next(workspace.glob("*.ipynb"))
    filled = filled_notebook(args.day, workspace)
    port, token = free_port(), secrets.token_hex(16)
    lab = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", f"--ServerApp.root_dir={workspace}", "--LabApp.expose_app_in_browser=True",
         "--allow-root",  # containers run as root; the server listens on 127.0.0.1 only, behind a random token
         "--LabApp.extension_manager=readonly", "--LabApp.news_url=",  # offline: nothing asks a package index or feed
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=open(args.out / "jupyterlab.log", "w"), stderr=subprocess.STDOUT)
    browser = None
    try:
        wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", 120)
        browser = Browser(scratch / "chromium")
        base = f"http://127.0.0.1:{port}/lab/tree"
        stubs = run_notebook(browser, base, stub_notebook.name, token, args.timeout)
        browser.screenshot(args.out / "stubs_run_all.png")
        solved = run_notebook(browser, base, filled.name, token, args.timeout)
        attention = browser.evaluate(FIRST_ATTENTION.replace("PATH", json.dumps(filled.name)))
        time.sleep(1.0)
        browser.screenshot(args.out / "attention_heatmap.png")
    finally:
        if browser is not None:
            browser.close()
        lab.terminate()
        lab.wait(timeout=60)
    result = {
        "chromium": subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip(),
        "stub_notebook": {"file": stub_notebook.name, **stubs},
        "filled_notebook": {"file": filled.name, **solved},
        "first_attention_heatmap": attention,
        "screenshots": [str(args.out / "stubs_run_all.png"), str(args.out / "attention_heatmap.png")],
    }
    result["ok"] = bool(
        stubs["executed"] == stubs["code_cells"] and not stubs["errors"] and stubs["skipped_lines"]
        and solved["executed"] == solved["code_cells"] and not solved["errors"]
        and solved["figures"] > 0 and solved["figures_drawn"] == solved["figures"]
        and attention is not None and attention["smallest_label_gap_px"] >= attention["label_height_px"])
    (args.out / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    shutil.rmtree(scratch, ignore_errors=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
