"""The ns backend's compiled shims, through real envs, as root and as the unprivileged user: a shim
is a link to the env's copy of the static compiled starter, which runs the program, cold and warm,
with neither a shell nor Python (both fallbacks are made to fail): the physical current directory
mapped inside, the program found on the root's PATH, the environment cleaned, arguments and exit
status kept, through a link to the link too; without its steps file it sources the sh fragment (as
inside the root, where a busybox root has no C library); automatic-snapshot rules and a moved env
take the Python path; a program given as a path gets an sh shim; `venvroot link`/`unlink` work;
where the starter is not there (no compiler) the shims stay sh."""

from __future__ import annotations

import os
from pathlib import Path

from ns_backend_helpers import (
    Project,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    project_fixture,  # noqa: F401 - the project fixture
)
from ns_helpers import who_fixture  # noqa: F401 - the who fixture
from test_ns_backend_cold import record, shim
from test_ns_starter import exe, starter_fixture, stop  # noqa: F401 - the starter fixture

SH_RAN, PYTHON_RAN = 99, 98


def compiled(env: Path, name: str) -> bool:
    return os.readlink(env / "bin" / name) == ".venvroot-shim"


def fallbacks_fail(env: Path) -> None:
    """Make the compiled shim's ways out fail with a status of their own: the sh fragment exits 99,
    and shim.cfg's Python path (the tokens after its name and count) becomes `sh -c 'exit 98'`."""
    (env / ".venvroot" / "shim.sh").write_text(f"exit {SH_RAN}\n")
    cfg = env / ".venvroot" / "shim.cfg"
    tokens = cfg.read_bytes().split(b"\0")[:-1]
    at = tokens.index(b"python")
    count = int(tokens[at + 1])
    tokens[at : at + 2 + count] = [b"python", b"3", b"/bin/sh", b"-c", f"exit {PYTHON_RAN}".encode()]
    cfg.write_bytes(b"".join(t + b"\0" for t in tokens))


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
    fallbacks_fail(env)
    (project.path / "sub dir").mkdir()
    if project.who.user is not None:
        os.chown(project.path / "sub dir", project.who.uid, project.who.gid)
    environ = dict(project.environ, LD_LIBRARY_PATH="/nowhere")
    environ.pop("HOME")
    script = 'pwd; echo "$PATH"; echo "$HOME"; echo "${LD_LIBRARY_PATH-unset}"; '
    script += 'echo "$1|$2"; exit 7'
    (project.path / "via").symlink_to(env / "bin" / "sh")  # a link to the shim: still its env's
    argv = [project.path / "via", "-c", script, "sh", "a b", ""]
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


def test_without_its_steps_file_a_compiled_shim_sources_the_sh_fragment(
    project: Project, bb_root: Path
) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    assert compiled(env, "sh")
    (env / ".venvroot" / "shim.cfg").unlink()
    lost = shim(project, env, "sh", "-c", "echo cold")  # nothing runs: no Python path to start it
    assert lost.returncode == 127 and lost.stderr.count("\n") == 1 and "shim.cfg is missing" in lost.stderr
    assert project.venvroot("run", env, "--", "true").returncode == 0  # starts them (they linger)
    assert shim(project, env, "sh", "-c", "echo fine").stdout == "fine\n"  # running: the fragment joins
    (env / ".venvroot" / "shim.sh").write_text(f"exit {SH_RAN}\n")
    assert shim(project, env, "sh", "-c", "echo unreached").returncode == SH_RAN


def test_a_moved_env_takes_the_python_path_which_says_so(project: Project, bb_root: Path) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    moved = project.path / "moved"
    env.rename(moved)
    out = shim(project, moved, "sh", "-c", "echo hi")
    assert out.returncode != 0 and "moved" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    moved.rename(env)
    assert shim(project, env, "sh", "-c", "echo back").stdout == "back\n"


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
    assert (env / "bin" / "busybox").read_text().startswith("#!/bin/sh\n")  # a path: the sh shim
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
