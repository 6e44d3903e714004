"""The templates ship in both the wheel and the sdist, and the console script is declared."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = [
    "venvroot/activators/activate.sh",
    "venvroot/activators/activate.fish",
    "venvroot/activators/activate.csh",
    "venvroot/activators/activate.xsh",
    "venvroot/shims/shim.tmpl",
    "venvroot/shims/manage.tmpl",
]


def _copy_source(dest: Path) -> Path:
    # Build from a copy: a build writes egg-info and build/ next to the sources.
    src = dest / "src"
    shutil.copytree(
        ROOT, src, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", ".*cache")
    )
    return src


def test_wheel_and_sdist_carry_the_templates(tmp_path: Path) -> None:
    src = _copy_source(tmp_path)
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, src],
        check=True,
        capture_output=True,
    )
    wheel = next(out.glob("venvroot-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in TEMPLATES:
        assert template in names, template
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "venvroot = venvroot.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(out)], cwd=src, check=True, capture_output=True
    )
    sdist = next(out.glob("venvroot-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        members = {m.split("/", 1)[1] for m in archive.getnames() if "/" in m}
    for template in TEMPLATES:
        assert template in members, template
