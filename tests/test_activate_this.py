"""``bin/activate_this.py`` exec'd by a host Python: the env's site-packages (and their .pth files)
come first on sys.path, sys.prefix is the env, and child processes get the env's variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HOST = "/usr/bin/python3"
PROBE = """
import json, os, shutil, sys
path = sys.argv[1]
exec(open(path, encoding="utf-8").read(), {"__file__": path})
import hello_vr
NAMES = ("VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "PATH", "PKG_CONFIG_PATH", "PYTHONHOME")
print(json.dumps({
    "module": hello_vr.__file__, "first": sys.path[:2], "prefix": sys.prefix, "exec_prefix": sys.exec_prefix,
    "env": {k: os.environ.get(k) for k in NAMES},
    "which": shutil.which("python3"),
}))
"""


def test_activate_this_puts_the_env_on_a_host_python(tmp_path: Path) -> None:
    env = tmp_path / "my env"
    made = subprocess.run(
        [sys.executable, "-m", "venvroot", str(env), "-q", "--prompt", "it's"], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    version = subprocess.run(
        [HOST, "-c", "import sys; print(f'python{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    site_dir = env / "lib" / version / "site-packages"
    site_dir.mkdir(parents=True, exist_ok=True)
    (site_dir / "hello_vr.py").write_text("")
    extra = tmp_path / "from pth"
    extra.mkdir()
    (site_dir / "vr.pth").write_text(f"{extra}\n")
    script = env / "bin" / "activate_this.py"
    environ = {"PATH": "/usr/bin:/bin", "PYTHONHOME": "/usr", "PKG_CONFIG_PATH": "/opt/pc"}
    out = subprocess.run([HOST, "-c", PROBE, str(script)], capture_output=True, text=True, env=environ)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["module"] == str(site_dir / "hello_vr.py")
    assert got["first"] == [str(site_dir), str(extra)]
    assert got["prefix"] == got["exec_prefix"] == str(env)
    assert got["env"] == {
        "VIRTUAL_ENV": str(env),
        "VIRTUAL_ENV_PROMPT": "it's",
        "PATH": f"{env}/bin:/usr/bin:/bin",
        "PKG_CONFIG_PATH": f"{env}/lib/pkgconfig:/opt/pc",
        "PYTHONHOME": None,
    }
    assert got["which"] == str(env / "bin" / "python3")


def test_activate_this_adds_no_empty_path_entry(tmp_path: Path) -> None:
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venvroot", str(env), "-q"], check=True)
    code = "import os,sys; p=sys.argv[1]; exec(open(p).read(), {'__file__': p}); print(os.environ['PATH'])"
    out = subprocess.run(
        [HOST, "-c", code, str(env / "bin" / "activate_this.py")],
        capture_output=True,
        text=True,
        env={"PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{env}/bin"
