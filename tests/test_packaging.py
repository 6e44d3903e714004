"""The templates ship in both the wheel and the sdist, the console script is declared, and an
installed wheel writes its scripts from cached skeletons."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import missing

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
        ROOT,
        src,
        # (and not a compiled starter an editable install left in the checkout)
        ignore=shutil.ignore_patterns(
            ".git", "__pycache__", "*.egg-info", "build", ".*cache", "starter", "agent"
        ),
    )
    return src


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel and an sdist built from a copy of the checkout."""
    tmp = tmp_path_factory.mktemp("dist")
    src = _copy_source(tmp)
    out = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, src],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(out)], cwd=src, check=True, capture_output=True
    )
    return out


def test_the_wheel_carries_the_compiled_starter_and_the_sdist_its_source(dist: Path) -> None:
    if shutil.which("cc") is None:
        missing("a C compiler (cc): without it the wheel is built without the compiled starter")
    wheel = zipfile.ZipFile(next(dist.glob("venvroot-*.whl")))
    info = wheel.getinfo("venvroot/backends/ns/starter")
    assert (info.external_attr >> 16) & 0o111, "not executable"
    assert wheel.read(info.filename)[:4] == b"\x7fELF"
    agent = wheel.getinfo("venvroot/backends/docker/agent")  # static: it runs inside any image
    assert (agent.external_attr >> 16) & 0o111 and wheel.read(agent.filename)[:4] == b"\x7fELF"
    assert "-linux_" in next(dist.glob("venvroot-*.whl")).name  # a platform wheel
    with tarfile.open(next(dist.glob("venvroot-*.tar.gz"))) as sdist:
        for source in (
            "starter.c",
            "shim.c",
            "shim.h",
            "replay.c",
            "replay.h",
            "userns.c",
            "userns.h",
            "steps.c",
            "steps.h",
            "join.c",
            "join.h",
            "ttyfilter.h",
        ):
            assert any(n.endswith(f"venvroot/backends/ns/{source}") for n in sdist.getnames()), source
        for source in ("agent.c", "agent_serve.c", "agent_run.c", "agent_msg.c", "agent_msg.h"):
            assert any(n.endswith(f"venvroot/backends/docker/{source}") for n in sdist.getnames()), source


def test_with_musl_at_hand_the_compiled_programs_are_built_against_it(dist: Path) -> None:
    """musl's static start is a third of glibc's: every compiled shim call and cold start pays it."""
    if shutil.which("musl-gcc") is None:
        missing("musl-gcc (musl-tools): without it the compiled programs are built against glibc")
    wheel = zipfile.ZipFile(next(dist.glob("venvroot-*.whl")))
    for program in ("venvroot/backends/ns/starter", "venvroot/backends/docker/agent"):
        binary = wheel.read(program)
        assert binary[:4] == b"\x7fELF" and b"GNU C Library" not in binary, program


def test_wheel_and_sdist_carry_the_templates(dist: Path) -> None:
    wheel = next(dist.glob("venvroot-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in TEMPLATES:
        assert template in names, template
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "venvroot = venvroot.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

    sdist = next(dist.glob("venvroot-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        members = {m.split("/", 1)[1] for m in archive.getnames() if "/" in m}
    for template in TEMPLATES:
        assert template in members, template


CREATE = (
    "import sys, venvroot\n"
    "from venvroot.cli.commands import dispatch\n"
    "code = dispatch(sys.argv[1:])\n"
    "print(venvroot.__file__, 'jinja2' in sys.modules)\n"
    "sys.exit(code)\n"
)


def test_installed_wheel_writes_from_cached_skeletons(dist: Path, tmp_path: Path, busybox_root: Path) -> None:
    # Installed, the templates sit in site-packages: a first create renders them with jinja2 and
    # caches their skeletons, a second fills those in without importing jinja2, to the same bytes.
    site = tmp_path / "site"
    wheel = next(dist.glob("venvroot-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", site, wheel],
        check=True,
        capture_output=True,
    )
    (tmp_path / "tmp").mkdir()
    environ = {**os.environ, "PYTHONPATH": str(site), "TMPDIR": str(tmp_path / "tmp")}
    written = []
    for name in ("cold", "warm"):
        env = tmp_path / name / "env"
        env.parent.mkdir()
        result = subprocess.run(
            [sys.executable, "-c", CREATE, str(env), "-q", "--root", str(busybox_root)],
            capture_output=True,
            text=True,
            env=environ,
            cwd=env.parent,
        )
        assert result.returncode == 0, result.stderr
        module, jinja2_imported = result.stdout.split()
        assert module.startswith(f"{site}/"), module  # the installed copy, not the checkout
        assert jinja2_imported == ("True" if name == "cold" else "False")
        files = {p.name: p.read_bytes() for p in sorted((env / "bin").iterdir()) if p.is_file()}
        written.append({k: v.replace(str(env.parent).encode(), b"PROJECT") for k, v in files.items()})
    assert written[0] == written[1]
    assert set(written[0]) >= {"activate", "activate.csh", "activate.fish", "activate.xsh", "destroy"}
