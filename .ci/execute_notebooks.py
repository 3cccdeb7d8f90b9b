"""Execute notebooks in full mode and save their outputs in place (the committed outputs).

    PYTHONPATH=. flock /tmp/cpu.lock python .ci/execute_notebooks.py notebooks/0*.ipynb

Full mode: BAYESHRINK_NOTEBOOK_FAST is removed from the environment (the test suite sets it to
run the same code with fewer draws). Each notebook runs in its own directory, as Jupyter would,
and an error in a cell stops the run before that notebook is written.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(paths: list[str]) -> int:
    os.environ.pop("BAYESHRINK_NOTEBOOK_FAST", None)
    os.environ.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if not paths:
        print(__doc__)
        return 2
    for arg in paths:
        path = Path(arg).resolve()
        nb = nbformat.read(path, as_version=4)
        t0 = time.perf_counter()
        NotebookClient(
            nb,
            timeout=1800,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
        nbformat.write(nb, path)
        print(f"{path.name}: executed in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
