"""The ns backend's compiled shims, through real envs, as root and as the unprivileged user: a shim's
first line names the env's copy of the static compiled starter, which runs the program, cold and
warm, without ever running the rest of the file (the sh shim it falls back to): the physical current
directory mapped inside, the program found on the root's PATH, the environment cleaned, arguments
and exit status kept; it takes the sh shim without its steps file (inside the root, too, where a
busybox root has no C library), and the Python path for automatic-snapshot rules; a program given
as a path and `venvroot link`/`unlink` work; where the starter is not there (no compiler) or the
first line cannot carry the shim, the shims stay sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ns_backend_helpers import (
    Project,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    project_fixture,  # noqa: F401 - the project fixture
)
from ns_helpers import who_fixture  # noqa: F401 - the who fixture
from test_ns_backend_cold import record, shim
from test_ns_starter import exe, starter_fixture, stop  # noqa: F401 - the starter fixture

SH_BODY_RAN = 99


def compiled(env: Path, name: str) -> bool:
    return (env / "bin" / name).read_text().splitlines()[0] == f"#!{env}/bin/.venvroot-shim {name}"


def sh_body_exits(env: Path, name: str) -> None:
    """Replace the shim's sh body (all but its first two lines) with `exit 99`: it ran if that is
    the status."""
    path = env / "bin" / name
    head = path.read_text().splitlines()[:2]
    path.write_text("\n".join([*head, f"exit {SH_BODY_RAN}", ""]))


def test_compiled_shims_run_the_program_cold_and_warm_without_their_sh_body(
    project: Project, bb_root: Path, starter: str
) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    assert compiled(env, "sh")
    assert os.path.samefile(env / "bin" / ".venvroot-shim", starter) or (
        (env / "bin" / ".venvroot-shim").read_bytes() == Path(starter).read_bytes()
    )
    assert (env / ".venvroot" / "shim.cfg").is_file()
    assert shim(project, env, "sh", "-c", "true").returncode == 0  # a Python start writes the start file
    stop(project, env)
    sh_body_exits(env, "sh")
    (project.path / "sub dir").mkdir()
    if project.who.user is not None:
        os.chown(project.path / "sub dir", project.who.uid, project.who.gid)
    environ = dict(project.environ, LD_LIBRARY_PATH="/nowhere")
    environ.pop("HOME")
    script = 'pwd; echo "$PATH"; echo "$HOME"; echo "${LD_LIBRARY_PATH-unset}"; '
    script += 'echo "$1|$2"; exit 7'
    argv = [env / "bin" / "sh", "-c", script, "sh", "a b", ""]
    for state in ("cold", "warm"):
        out = project.run(argv, cwd=project.path / "sub dir", env=environ)
        assert out.returncode == 7, (state, out.stderr)
        lines = out.stdout.splitlines()
        assert lines[0] == f"{project.path}/sub dir", state
        assert lines[1].startswith(f"{env}/bin:"), state
        assert lines[2] and lines[3] == "unset" and lines[4] == "a b|", (state, lines)
        found = record(env)
        assert found is not None and exe(found[0]) == starter  # the compiled starter built them
    # Outside the project: under /r, where the host's / is seen.
    out = shim(project, env, "sh", "-c", "pwd", cwd=Path("/"))
    assert (out.returncode, out.stdout) == (0, "/r\n"), out.stderr


def test_without_its_steps_file_a_compiled_shim_is_its_sh_shim(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    assert compiled(env, "sh")
    (env / ".venvroot" / "shim.cfg").unlink()
    assert shim(project, env, "sh", "-c", "echo fine").stdout == "fine\n"
    sh_body_exits(env, "sh")
    assert shim(project, env, "sh", "-c", "echo unreached").returncode == SH_BODY_RAN


def test_inside_the_root_a_compiled_shim_runs_the_program_itself(project: Project, bb_root: Path) -> None:
    """Inside, the env's bin is first on PATH and <env>/.venvroot is covered: the static shim runs in
    the busybox root (no C library there) and goes by the sh shim to the root's own program."""
    env = project.create("env", "--root", bb_root, "--link", "sh", "--link", "cat")
    out = shim(
        project, env, "sh", "-c", f"test -x {env}/bin/.venvroot-shim && echo hi | cat && sh -c 'echo $0'"
    )
    assert (out.returncode, out.stdout) == (0, "hi\nsh\n"), out.stderr


def test_a_program_given_as_a_path_and_link_unlink(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root)
    linked = project.venvroot("link", env, "/bin/busybox", "cat")
    assert linked.returncode == 0, linked.stderr
    assert (env / "bin" / "busybox").read_text().splitlines()[0] == f"#!{env}/bin/.venvroot-shim /bin/busybox"
    out = shim(project, env, "busybox", "echo", "via a path")
    assert (out.returncode, out.stdout) == (0, "via a path\n"), out.stderr
    assert compiled(env, "cat")
    assert project.venvroot("unlink", env, "busybox", "cat").returncode == 0
    assert not (env / "bin" / "busybox").exists() and not (env / "bin" / "cat").exists()
    assert (env / "bin" / ".venvroot-shim").is_file()
    refused = project.venvroot("link", env, "/bin/.venvroot-shim")
    assert refused.returncode != 0 and "bin/.venvroot-shim" in refused.stderr


def test_automatic_snapshot_rules_take_the_python_path(project: Project, bb_root: Path) -> None:
    """The compiled shim leaves programs with automatic-snapshot rules to Python, which applies them."""
    env = project.create("env", "--root", bb_root, "--link", "sh")
    configured = project.venvroot(
        "snapshot", "configure", env, "sh", "--pattern", "snap-me", "--name", "auto-{id}"
    )
    assert configured.returncode == 0, configured.stderr
    sh_body_exits(env, "sh")  # the Python path is exec'd by the compiled shim itself, not by the body
    assert shim(project, env, "sh", "-c", "true").returncode == 0
    assert shim(project, env, "sh", "-c", "true # snap-me").returncode == 0
    listed = project.venvroot("snapshot", "list", env)
    assert listed.returncode == 0 and "auto-" in listed.stdout, listed.stdout


def test_without_the_compiled_starter_the_shims_stay_sh(project: Project, bb_root: Path) -> None:
    made = project.venvroot(
        project.path / "env",
        "--root",
        bb_root,
        "--link",
        "sh",
        env=dict(project.environ, VENVROOT_NO_STARTER="1"),
    )
    env = project.path / "env"
    assert made.returncode == 0, made.stderr
    assert (env / "bin" / "sh").read_text().startswith("#!/bin/sh\n")
    assert not (env / "bin" / ".venvroot-shim").exists() and not (env / ".venvroot" / "shim.cfg").exists()
    out = shim(project, env, "sh", "-c", "echo sh shim")
    assert (out.returncode, out.stdout) == (0, "sh shim\n"), out.stderr


def test_a_first_line_too_long_for_the_kernel_keeps_the_sh_shim(project: Project, bb_root: Path) -> None:
    deep = project.path / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    if project.who.user is not None:
        for path in (deep.parent, deep):
            os.chown(path, project.who.uid, project.who.gid)
    made = project.venvroot(deep / "env", "--root", bb_root, "--link", "sh", cwd=deep)
    assert made.returncode == 0, made.stderr
    env = deep / "env"
    assert (env / "bin" / "sh").read_text().startswith("#!/bin/sh\n")
    out = shim(project, env, "sh", "-c", "echo long", cwd=deep)
    assert (out.returncode, out.stdout) == (0, "long\n"), out.stderr
    project.venvroot("destroy", env)


def test_the_writer_only_names_a_shim_binary_that_is_there(tmp_path: Path) -> None:
    code = (
        "import sys; from venvroot.shims import writer; "
        "print(writer.interpreter(sys.argv[1], 'prog')); print(writer.interpreter(sys.argv[1], ' prog'))"
    )
    (tmp_path / "bin").mkdir()
    run = [sys.executable, "-I", "-c", code, str(tmp_path)]
    assert subprocess.run(run, capture_output=True, text=True, cwd="/").stdout == "/bin/sh\n/bin/sh\n"
    (tmp_path / "bin" / ".venvroot-shim").write_bytes(b"")
    (tmp_path / "bin" / ".venvroot-shim").chmod(0o755)
    out = subprocess.run(run, capture_output=True, text=True, cwd="/").stdout
    assert out == f"{tmp_path}/bin/.venvroot-shim prog\n/bin/sh\n"
