"""The explorer inside a real JupyterLab, both ways: a manual check, not part of the suite.

JupyterLab is not a dependency of bayeshrink, so this is run by hand with a JupyterLab installed
anywhere (it needs the ``anywidget`` and ``ipywidgets`` lab extensions there too)::

    python -m venv /tmp/jl && /tmp/jl/bin/pip install jupyterlab anywidget ipywidgets
    python tests/check_jupyterlab.py --jupyter /tmp/jl/bin/jupyter

The kernel is this interpreter with this checkout on its path. The script opens a notebook in
headless Chromium, runs ``bs.explore(fit)``, moves the slider to 0 with the keyboard and reads
``w.ratio`` back in the kernel, then sets ``w.ratio = 25.0`` in the kernel and reads the page.
"""

from __future__ import annotations


def main() -> int:
    import argparse
    import json
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    import urllib.request
    from pathlib import Path

    import nbformat
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser()
    parser.add_argument("--jupyter", required=True, help="the `jupyter` of a JupyterLab install")
    parser.add_argument("--screenshots", default=None, help="folder for screenshots")
    args = parser.parse_args()

    root = Path(__file__).resolve().parents[1]
    work = Path(tempfile.mkdtemp(prefix="bayeshrink-jl-"))
    kernels = work / "share" / "jupyter" / "kernels" / "bayeshrink"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "bayeshrink",
                "language": "python",
                "env": {"PYTHONPATH": str(root)},
            }
        )
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "bayeshrink", "display_name": "bayeshrink"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import bayeshrink as bs\n"
            'demo = bs.load_dataset("seed_demo")\n'
            'fit = bs.fit(demo[demo["model"] == "2"], y="y", group="group")\n'
            "w = bs.explore(fit)\nw"
        ),
        nbformat.v4.new_code_cell('print("RATIO", w.ratio)'),
        nbformat.v4.new_code_cell("w.ratio = 25.0"),
    ]
    nbformat.write(nb, work / "explore.ipynb")

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "JUPYTER_PATH": str(work / "share" / "jupyter")}
    server = subprocess.Popen(
        [args.jupyter, "lab", "--allow-root", "--no-browser", f"--port={port}",
         "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={work}",
         "--ServerApp.ip=127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/lab", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/lab/tree/explore.ipynb")
            page.wait_for_selector(
                ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=90_000
            )
            cells = page.locator(".jp-Notebook .jp-Cell")

            def run(i: int) -> None:
                cells.nth(i).click()
                page.keyboard.press("Shift+Enter")
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
                time.sleep(1.0)

            # the kernel is up when the toolbar names it and the indicator is idle
            page.wait_for_function(
                "document.querySelector('.jp-Toolbar-kernelName')?.textContent"
                ".includes('bayeshrink')",
                timeout=90_000,
            )
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")
            for attempt in range(2):  # a first Shift+Enter can land while the cell takes focus
                run(0)
                try:
                    page.wait_for_selector(".bsx", timeout=30_000)
                    break
                except Exception:
                    if attempt:
                        page.screenshot(path=str(work.parent / "bayeshrink-jl-failed.png"))
                        raise
            state = page.evaluate("window.bayeshrink.state()")
            assert abs(state["ratio"] - 1.7240880985656557) < 1e-12, state["ratio"]
            page.locator(".bsx input[type=range]").first.focus()
            page.keyboard.press("Home")  # browser -> kernel
            time.sleep(1.0)
            run(1)
            out = cells.nth(1).locator(".jp-OutputArea").inner_text()
            assert "RATIO 0.0" in out, out
            run(2)  # kernel -> browser
            assert page.evaluate("window.bayeshrink.state().ratio") == 25.0
            assert "No pooling" in page.locator(".bsx-status").inner_text()
            if args.screenshots:
                Path(args.screenshots).mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(Path(args.screenshots) / "jupyterlab_widget.png"))
            assert errors == [], errors
            browser.close()
        print("JupyterLab: the explorer renders, and ratio follows both ways")
        return 0
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
