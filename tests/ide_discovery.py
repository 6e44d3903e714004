"""What an IDE's environment finder (such as VS Code's python-environment-tools) does with a
workspace: find each ``pyvenv.cfg``, run the env's ``bin/python`` for its interpreter facts, and
check them against the host's filesystem and the cfg's keys."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

# Printed by the env's interpreter; an IDE sends its own script the same way (on stdin or -c).
FACTS = (
    "import json, sys; print(json.dumps({'prefix': sys.prefix, 'base_prefix': sys.base_prefix,"
    " 'executable': sys.executable, 'path': sys.path, 'version_info': list(sys.version_info[:3])}))"
)


def find_pyvenv_cfgs(workspace: Path, depth: int = 2) -> list[Path]:
    """``pyvenv.cfg`` files of the workspace and of directories up to ``depth`` levels below it."""
    found = []
    for top, dirs, files in os.walk(workspace):
        level = len(Path(top).relative_to(workspace).parts)
        if "pyvenv.cfg" in files:
            found.append(Path(top) / "pyvenv.cfg")
            dirs.clear()  # an env's own tree holds no other env worth showing
        elif level >= depth:
            dirs.clear()
    return sorted(found)


def read_cfg(path: Path) -> dict[str, str]:
    keys = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            keys[key.strip()] = value.strip()
    return keys


def describe(cfg_path: Path) -> dict:
    """The env as an IDE lists it, with every problem it would stumble on in ``problems``."""
    env = cfg_path.parent
    cfg = read_cfg(cfg_path)
    python = env / "bin" / "python"
    done = subprocess.run([str(python), "-c", FACTS], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return {"env": env, "problems": [f"{python} failed: {done.stderr.strip()}"]}
    facts = json.loads(done.stdout)
    problems = []
    if facts["prefix"] != str(env):
        problems.append(f"sys.prefix {facts['prefix']} is not {env}")
    if not os.access(facts["executable"], os.X_OK):
        problems.append(f"sys.executable {facts['executable']} is not runnable on the host")
    sites = [p for p in facts["path"] if p.startswith(str(env)) and p.endswith("site-packages")]
    if not sites:
        problems.append(f"no site-packages of {env} on sys.path {facts['path']}")
    problems += [f"{site} does not exist on the host" for site in sites if not os.path.isdir(site)]
    version = ".".join(map(str, facts["version_info"]))
    for key in ("version", "version_info"):
        if key in cfg and not cfg[key].startswith(version):
            problems.append(f"pyvenv.cfg {key} = {cfg[key]} but the interpreter is {version}")
    return {
        "env": env,
        "name": cfg.get("prompt", env.name),
        "version": version,
        "executable": facts["executable"],
        "site_packages": sites,
        "problems": problems,
    }


def discover(workspace: Path) -> list[dict]:
    return [describe(cfg) for cfg in find_pyvenv_cfgs(workspace)]
