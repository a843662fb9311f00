"""notebooks/example.ipynb runs top to bottom against a database of imported votes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "example.ipynb"
METHODS = {"strong": 4.3, "middle": 3.2, "weak": 1.8}


def write_votes(path: Path) -> None:
    rng = np.random.default_rng(3)
    lines = ["rater,scene,method,score,response_ms"]
    for rater in range(8):
        for scene in range(5):
            for method, quality in METHODS.items():
                score = int(np.clip(round(quality + rng.normal(0, 0.5)), 1, 5))
                lines.append(f"w{rater},scene{scene},{method},{score},{1000 + rater}")
    path.write_text("\n".join(lines) + "\n")


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True)


@pytest.fixture
def notebook_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A private SQLite database holding one imported study with a stored analysis run."""
    env = {
        **os.environ,
        "MOSAIC_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "MOSAIC_STUDY": "nb-study",
    }
    env.pop("DATABASE_URL", None)  # the notebook must read the temporary SQLite file
    votes = tmp_path / "votes.csv"
    write_votes(votes)
    manage(env, "migrate", "--noinput")
    manage(env, "import_ratings", "nb-study", str(votes), "--title", "Notebook study")
    manage(env, "export_results", "nb-study", str(tmp_path / "export"), "--params", '{"n_boot": 200}')
    # The kernel is a child process: it inherits this environment.
    for key in ("MOSAIC_VAR_DIR", "DJANGO_SETTINGS_MODULE", "MOSAIC_STUDY"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return env


def test_example_notebook_reproduces_the_leaderboard(notebook_env) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if any cell fails

    text = "\n".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "study 'nb-study'" in text
    assert "120 votes by 8 raters on 3 methods x 5 scenes" in text
    assert "reproduced the stored leaderboard of analysis run" in text
    board_cell = next(c for c in notebook.cells if "leaderboard[columns]" in c.source)
    board = "\n".join(o.get("data", {}).get("text/plain", "") for o in board_cell.outputs)
    assert board.index("strong") < board.index("middle") < board.index("weak")
    images = [
        output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]
    assert images, "the notebook draws no plot"
