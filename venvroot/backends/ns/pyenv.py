"""The env's own Python virtual environment, made with the root's interpreter (the drop-in promise).

The trick that lets one ``<env>/bin`` serve both sides: the venv is made *at* ``<env>`` inside the
root, then on the host ``bin/python``, ``python3`` and ``python3.X`` become shims while the real
interpreter is bound over those names inside. Every script pip writes starts with
``#!<env>/bin/python``: inside that is the interpreter, on the host it is the shim, which runs the
script inside (the kernel follows a script interpreter that is itself a script). So after
``pip install X`` through the shim, X's commands work from the host with no extra step.

pip itself comes from virtualenv's embedded wheel, unpacked on the host into the venv's
site-packages (no network, no pip run: a tenth of the time), with its console scripts written the
way pip writes them.
"""

from __future__ import annotations

import os

from ...errors import UsageError, VenvrootError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..settings import Settings

# Run by the root's interpreter, inside, as ``-c MAKE_VENV ENV OPTIONS`` (JSON: venvroot, prompt,
# system_site_packages; see venv_options): a venv at ENV without activate scripts (the env has
# venvroot's own) and without pip (unpacked afterwards); pyvenv.cfg gets virtualenv's keys beside
# venv's (IDEs read version_info and prompt); report what the host side needs.
MAKE_VENV = r"""
import json, os, platform, sys, sysconfig, venv

class Builder(venv.EnvBuilder):
    def setup_scripts(self, context):
        pass

env, opts = sys.argv[1], json.loads(sys.argv[2])
Builder(symlinks=True, with_pip=False, system_site_packages=opts["system_site_packages"]).create(env)
cfg = os.path.join(env, "pyvenv.cfg")
with open(cfg) as handle:
    lines = [line for line in handle.read().splitlines() if line.partition("=")[0].strip() != "prompt"]
have = {line.partition("=")[0].strip() for line in lines}
base = getattr(sys, "_base_executable", None) or sys.executable
extra = [
    ("implementation", platform.python_implementation()),
    ("version_info", ".".join(str(part) for part in sys.version_info)),
    ("venvroot", opts["venvroot"]),
    ("base-prefix", sys.base_prefix),
    ("base-exec-prefix", sys.base_exec_prefix),
    ("base-executable", base),
]
if opts["prompt"]:
    extra.append(("prompt", opts["prompt"]))
with open(cfg, "w") as handle:
    handle.write("".join(line + "\n" for line in lines))
    handle.write("".join("%s = %s\n" % item for item in extra if item[0] not in have))
scheme = "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix"
paths = sysconfig.get_paths(scheme, vars={"base": env, "platbase": env})
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "full_version": sys.version.split()[0],
    "executable": os.path.realpath(sys.executable),
    "purelib": paths["purelib"],
}))
"""


def venv_options(settings: Settings) -> str:
    """MAKE_VENV's second argument."""
    import json  # json (re): a busybox root's create never gets here

    from ...version import __version__  # beside json: only for a venv made

    prompt = " ".join(settings.prompt.splitlines()) if settings.prompt else None  # one pyvenv.cfg line
    return json.dumps(
        {"venvroot": __version__, "prompt": prompt, "system_site_packages": settings.system_site_packages}
    )


def interpreter(view, search_path: str, wanted: str | None, first: list[str]) -> str | None:  # view: RootView
    """The inside path of the interpreter to use: the first of ``first`` (--try-first-with) the root
    has, else ``-p`` (a name or a path inside), else python3, else python; None when the root has
    none (an explicit ``-p`` that is missing is an error)."""
    names = [*first, wanted] if wanted else [*first, "python3", "python"]
    for name in names:
        found = view.find_program(name, search_path)
        if found is not None:
            return found
    if wanted:
        raise UsageError(f"-p {wanted}: no such interpreter in the environment's root; give one it has")
    return None


def parse_report(output: str) -> dict:
    import json  # json (re): a busybox root's create never gets here

    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    raise VenvrootError(
        f"making the Python virtual environment failed: {output.strip()[-300:] or 'no output'}"
    )


def adopt_interpreter(env_dir: str, view, report: dict, python_file: str) -> list[str]:  # view: RootView
    """Move the venv's interpreter links out of the way of the host's shims: record, for each, the
    host path of the real file (bound over the name inside). Returns the names."""
    host = view.lookup(report["executable"])
    if host is None:
        raise VenvrootError(f"cannot find the interpreter {report['executable']} in the environment's root")
    bin_dir = os.path.join(env_dir, "bin")
    names = sorted(
        n for n in os.listdir(bin_dir) if n.startswith("python") and os.path.islink(os.path.join(bin_dir, n))
    )
    for name in names:
        os.unlink(os.path.join(bin_dir, name))
    with open(python_file, "w", encoding="utf-8") as handle:
        handle.writelines(f"{name}\t{host}\n" for name in names)
    return names


def pip_wheel(version: str) -> str | None:
    """virtualenv's embedded pip wheel for Python ``version`` (X.Y), if it has one.

    Its table is read from the source: importing virtualenv costs ~75 ms (its package imports
    its whole CLI)."""
    import ast  # ast, importlib.util: only when pip is installed into a venv
    import importlib.util  # (with ast above)

    spec = importlib.util.find_spec("virtualenv")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = os.path.join(next(iter(spec.submodule_search_locations)), "seed", "wheels", "embed")
    try:
        with open(os.path.join(folder, "__init__.py"), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError):
        return None
    table: dict = {}
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
        if isinstance(target, ast.Name) and target.id == "BUNDLE_SUPPORT" and node.value is not None:
            try:
                table = ast.literal_eval(node.value)
            except ValueError:
                return None
    name = (table.get(version) or {}).get("pip")
    path = os.path.join(folder, name) if name else ""
    return path if name and os.path.isfile(path) else None


SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {attr}
if __name__ == "__main__":
    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])
    sys.exit({call}())
"""


def install_pip(env_dir: str, report: dict) -> str | None:
    """Unpack pip into the venv and write pip, pip3 and pipX.Y; return pip's version, or None
    when virtualenv embeds no pip for this Python."""
    wheel = pip_wheel(report["version"])
    if wheel is None:
        return None
    site = report["purelib"]
    os.makedirs(site, exist_ok=True)
    import zipfile  # zipfile (pathlib, re, shutil: ~7 ms): only when pip is installed into a venv

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        for name in names:
            parts = name.split("/")
            if name.startswith("/") or ".." in parts:
                raise VenvrootError(f"refusing the wheel {wheel}: unsafe member {name!r}")
        archive.extractall(site)
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
    version = dist_info[len("pip-") : -len(".dist-info")]
    python = os.path.join(env_dir, "bin", "python")
    script = SCRIPT.format(python=python, module="pip._internal.cli.main", attr="main", call="main")
    bin_dir = os.path.join(env_dir, "bin")
    written = []
    for name in ("pip", "pip3", f"pip{report['version']}"):
        path = os.path.join(bin_dir, name)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(script)
        os.chmod(path, 0o755)
        written.append(path)
    record = os.path.join(site, dist_info, "RECORD")
    with open(record, "a", encoding="utf-8") as handle:
        for path in written:
            handle.write(f"{os.path.relpath(path, site)},,\n")
    with open(os.path.join(site, dist_info, "INSTALLER"), "w", encoding="utf-8") as handle:
        handle.write("venvroot\n")
    return version


def chown_venv(env_dir: str, owner: tuple[int, int]) -> None:
    """As root with ``--user``: the venv belongs to that user inside (pip must write to it)."""
    uid, gid = owner
    os.chown(os.path.join(env_dir, "bin"), uid, gid)
    for name in ("lib", "lib64", "include", "pyvenv.cfg", "bin/pip", "bin/pip3"):
        top = os.path.join(env_dir, name)
        if not os.path.lexists(top):
            continue
        os.lchown(top, uid, gid)
        if os.path.isdir(top) and not os.path.islink(top):
            for base, dirs, files in os.walk(top):
                for entry in dirs + files:
                    os.lchown(os.path.join(base, entry), uid, gid)
    for name in os.listdir(os.path.join(env_dir, "bin")):
        if name.startswith("pip"):
            os.lchown(os.path.join(env_dir, "bin", name), uid, gid)
