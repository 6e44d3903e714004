"""The code base stays ruff-clean (the rules are in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import missing

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_is_clean() -> None:
    probe = subprocess.run([sys.executable, "-m", "ruff", "--version"], capture_output=True)
    if probe.returncode != 0:
        missing("ruff is not installed (it is in the test extras)")
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "venvroot", "tests", "bench", "setup.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
