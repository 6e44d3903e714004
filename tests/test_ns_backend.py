"""The ns backend's default environment (the host as a copy-on-write root), through the real CLI and
real shims, as root and as the unprivileged user: the env's Python, isolation of the root, the
user, $HOME and the current directory, stdio, exit codes and signals, parallel shims, pip's console
scripts from outside, reset and destroy."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from ns_backend_helpers import (
    VENVROOT,
    Project,
    Shell,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    host_mounts_mention,
    in_environment,
    namespaces_of,
    one_error_line,
    processes_with,
    wait_for,
    write_wheel,
)
from ns_helpers import Who, who_fixture  # noqa: F401 - the who fixture

from venvroot.shims.marker import is_shim

LINKS = ("--link", "sh", "--link", "id", "--link", "cat", "--link", "printf", "--link", "sleep")


def make_who(request: pytest.FixtureRequest, name: str) -> Who:
    if os.getuid() != 0:
        return Who("user", pwd.getpwuid(os.getuid()))
    if name == "root":
        return Who("root", None)
    return Who("user", request.getfixturevalue("unprivileged_user"))


@pytest.fixture(scope="module", params=["root", "user"], name="host")
def host_fixture(request: pytest.FixtureRequest) -> Iterator[tuple[Project, Path]]:
    """One default environment per user, shared by the tests that do not change its settings."""
    project = Project(make_who(request, request.param))
    try:
        yield project, project.create("env", *LINKS)
    finally:
        project.close()


def shim(project: Project, env: Path, program: str, *args: str, cwd: Path | str | None = None, **kw):
    return project.run([env / "bin" / program, *args], cwd=cwd, **kw)


def test_env_python_is_a_venv_at_the_env_path(host: tuple[Project, Path]) -> None:
    project, env = host
    code = "import sys; print(sys.prefix); print(sys.executable); print(sys.prefix != sys.base_prefix)"
    for cwd in (project.path, Path("/")):  # from inside the project, and from outside any mapping
        out = shim(project, env, "python", "-c", code, cwd=cwd)
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == [str(env), f"{env}/bin/python", "True"]
    # On the host the interpreter names are shims; the venv's own links were moved out of the way.
    assert is_shim(str(env / "bin" / "python"))
    assert (env / "pyvenv.cfg").is_file()


def test_root_changes_stay_inside_and_project_files_reach_the_host(host: tuple[Project, Path]) -> None:
    project, env = host
    tag = uuid.uuid4().hex[:8]
    home = Path(project.environ["HOME"])
    script = (
        f"echo etc > /etc/vr-{tag} && echo usr > /usr/vr-{tag} && echo home > ~/vr-{tag} && "
        f"echo project > {project.path}/vr-{tag} && cat /etc/vr-{tag} /usr/vr-{tag} ~/vr-{tag}"
    )
    out = shim(project, env, "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["etc", "usr", "home"]
    for path in (Path(f"/etc/vr-{tag}"), Path(f"/usr/vr-{tag}"), home / f"vr-{tag}"):
        assert not path.exists(), path
    made = project.path / f"vr-{tag}"
    assert made.read_text() == "project\n"
    assert (made.stat().st_uid, made.stat().st_gid) == (project.who.uid, project.who.gid)
    # Still there on the next run (its own namespaces may have been built again meanwhile).
    again = shim(project, env, "cat", f"/etc/vr-{tag}")
    assert again.stdout == "etc\n"
    # The host at /r is read-only, down to the filesystems mounted below it (a tmpfs here).
    for path in ("/r/etc/vr-ro", f"/r/dev/shm/vr-{tag}", f"/r{project.path}/vr-ro"):
        assert shim(project, env, "sh", "-c", f"touch {path}").returncode != 0, path
    assert not Path(f"/dev/shm/vr-{tag}").exists()


def test_tmp_shows_the_hosts_copy_on_write(host: tuple[Project, Path]) -> None:
    """A file a host program makes in /tmp, even while the env runs, is there inside (a Jupyter
    connection file, a script to run); what programs inside change there stays in the env."""
    project, env = host
    tag = uuid.uuid4().hex[:8]
    assert shim(project, env, "sh", "-c", "echo up").returncode == 0  # the namespaces run now
    made = Path(f"/tmp/vr-host-{tag}")
    made.write_text("host\n")
    try:
        if project.who.user is not None:
            os.chown(made, project.who.uid, project.who.gid)
        script = f"cat {made} && echo inside >> {made} && echo new > /tmp/vr-new-{tag} && cat {made}"
        out = shim(project, env, "sh", "-c", script)
        plan = [line for line in (env / ".venvroot/ns/plan").read_text().splitlines() if "/tmp" in line]
        assert (out.returncode, out.stdout.split()) == (0, ["host", "host", "inside"]), (out.stderr, plan)
        assert made.read_text() == "host\n"
        assert not Path(f"/tmp/vr-new-{tag}").exists()
        assert shim(project, env, "cat", f"/tmp/vr-new-{tag}").stdout == "new\n"
    finally:
        made.unlink()


def test_an_empty_host_directory_is_its_layer_until_the_host_fills_it(who: Who) -> None:
    """An empty host directory is shown by its own (empty) layer, bound writable, not by an overlay:
    files made there inside land in the env, not on the host. Once the host makes a file there,
    the next start overlays it: the host's file and the env's are both seen."""
    empty = Path("/") / f"vr-empty-{uuid.uuid4().hex[:8]}"  # / is rebuilt entry by entry, as root too
    empty.mkdir()
    empty.chmod(0o1777)
    project = Project(who)
    try:
        env = project.create("env", "--link", "sh", "--link", "cat")
        assert shim(project, env, "sh", "-c", f"echo inside > {empty}/made").returncode == 0
        assert f"entry\tupper\t{empty}\n" in (env / ".venvroot/ns/plan").read_text()
        assert list(empty.iterdir()) == []
        (empty / "host").write_text("host\n")
        assert wait_for(lambda: not in_environment(env), 20)  # its namespaces end: the next call starts them
        out = shim(project, env, "cat", f"{empty}/host", f"{empty}/made")
        assert (out.returncode, out.stdout) == (0, "host\ninside\n"), out.stderr
        assert f"entry\toverlay\t{empty}\n" in (env / ".venvroot/ns/plan").read_text()
        assert [p.name for p in empty.iterdir()] == ["host"]
    finally:
        project.close()
        shutil.rmtree(empty)


def test_user_home_and_current_directory(host: tuple[Project, Path]) -> None:
    project, env = host
    entry = pwd.getpwuid(project.who.uid)
    sub = project.path / "sub dir"
    sub.mkdir(exist_ok=True)
    os.chown(sub, project.who.uid, project.who.gid)
    out = shim(project, env, "sh", "-c", 'id -un; id -u; echo "$HOME"; pwd; echo "$PWD"', cwd=sub)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [entry.pw_name, str(entry.pw_uid), entry.pw_dir, str(sub), str(sub)]
    # Outside every mapping: the same directory in the host's read-only view at /r.
    out = shim(project, env, "sh", "-c", "pwd; ls", cwd="/usr/share")
    assert out.stdout.splitlines()[0] == "/r/usr/share"
    assert "doc" in out.stdout.split()
    # A directory that is gone: one clear line.
    gone = project.path / "gone"
    gone.mkdir()
    os.chown(gone, project.who.uid, project.who.gid)
    out = project.run(["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "{env}/bin/id"'])
    assert out.returncode != 0
    # (The shim's /bin/sh may complain about getcwd itself before venvroot says what to do.)
    ours = [line for line in out.stderr.splitlines() if line.startswith("venvroot")]
    assert len(ours) == 1 and "current directory does not exist" in ours[0], out.stderr


def test_stdin_stdout_pass_through(host: tuple[Project, Path]) -> None:
    project, env = host
    data = "".join(f"line {i} \t with tabs\n" for i in range(2000)) + "no newline at the end"
    out = shim(project, env, "cat", input=data)
    assert out.returncode == 0 and out.stdout == data
    out = shim(project, env, "sh", "-c", "[ -t 0 ] && echo tty || echo pipe; echo err >&2", input="")
    assert (out.stdout, out.stderr) == ("pipe\n", "err\n")
    args = ["%s|", "a b", "", "'q'", '"d"', "$(x)", "(", "new\nline", "ü", "-c"]
    out = shim(project, env, "printf", *args)
    assert out.stdout == "".join(f"{a}|" for a in args[1:])


def test_exit_codes_and_signals_come_back(host: tuple[Project, Path]) -> None:
    project, env = host
    assert shim(project, env, "sh", "-c", "exit 7").returncode == 7
    assert shim(project, env, "sh", "-c", "kill -TERM $$").returncode == -signal.SIGTERM
    assert shim(project, env, "sh", "-c", "kill -KILL $$").returncode == -signal.SIGKILL
    assert shim(project, env, "sh", "-c", "exit 7").returncode == 7
    # A signal sent to the shim reaches the program (the shim became it).
    proc = project.who.popen([str(env / "bin" / "sleep"), "30"], env=project.environ, cwd=str(project.path))
    assert wait_for(lambda: _cmdline(proc.pid) == ["sleep", "30"], 10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM
    # The Python path (`venvroot run`, also what a shim does when nothing runs yet) gives the same.
    result = project.venvroot("run", env, "--", "sh", "-c", "kill -TERM $$")
    assert result.returncode == -signal.SIGTERM


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []
    return [os.path.basename(args[0]), *args[1:]] if args else []


def test_twenty_parallel_shims(host: tuple[Project, Path]) -> None:
    project, env = host
    for _ in range(2):  # first with nothing running (they race to start it), then joining
        assert project.venvroot("reset", env).returncode == 0
        procs = [
            project.who.popen(
                [str(env / "bin" / "printf"), "%s\n", f"out-{i}"],
                env=project.environ,
                cwd=str(project.path),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(20)
        ]
        results = [p.communicate(timeout=60) for p in procs]
        assert [(p.returncode, out, err) for p, (out, err) in zip(procs, results, strict=True)] == [
            (0, f"out-{i}\n", "") for i in range(20)
        ]
        assert len(namespaces_of(in_environment(env))) <= 1  # the namespaces were built once


def test_fast_and_python_paths_agree(host: tuple[Project, Path]) -> None:
    """The sh fast path (nsenter into the running namespaces) and the Python path map the same."""
    project, env = host
    script = 'id; pwd; echo "$PWD|$PATH|$HOME|${LD_PRELOAD-unset}"; command -v id'
    extra = dict(project.environ, LD_PRELOAD="")
    keeper = project.who.popen([str(env / "bin" / "sleep"), "30"], env=project.environ, cwd=str(project.path))
    try:
        assert wait_for(lambda: _cmdline(keeper.pid) == ["sleep", "30"], 10)  # the namespaces run
        assert (env / ".venvroot" / "shim.sh").is_file()
        fast = project.run([env / "bin" / "sh", "-c", script], env=extra)  # nsenter from sh
        slow = project.run([*VENVROOT, "run", env, "--", "sh", "-c", script], env=extra)  # Python
    finally:
        keeper.kill()
        keeper.wait()
    assert fast.returncode == slow.returncode == 0, (fast.stderr, slow.stderr)
    assert fast.stdout == slow.stdout
    # Inside, the shim on PATH runs the program itself (not the env again).
    assert fast.stdout.splitlines()[-1] == f"{env}/bin/id"


def test_info_reports_the_fallbacks(host: tuple[Project, Path]) -> None:
    project, env = host
    out = project.venvroot("info", env)
    assert out.returncode == 0, out.stderr
    info = dict(line.split(None, 1) if " " in line else (line, "") for line in out.stdout.splitlines())
    assert "fallbacks" in out.stdout and "overlaid" in out.stdout
    if project.who.user is not None:  # rootless: a directory with mounts below cannot be overlaid
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        tops = {p.split("/")[1] for p in points if p.count("/") >= 2}
        tops -= {"proc", "sys", "dev", "tmp", "r"}
        for top in tops:
            assert f"/{top} " in out.stdout, (top, info)


def test_pip_console_script_works_from_outside_and_survives_reset(who: Who) -> None:
    project = Project(who)
    try:
        env = project.create("env", "--link", "sh")
        wheel = write_wheel(project.path)
        out = project.run([env / "bin" / "pip", "install", "--no-index", "--no-cache-dir", wheel])
        assert out.returncode == 0, out.stdout + out.stderr
        script = env / "bin" / "hello-vr"
        assert script.read_text().splitlines()[0] == f"#!{env}/bin/python"
        out = project.run([script, "a", "b c"], cwd=Path("/"))
        assert (out.returncode, out.stdout) == (3, f"hello {env} ['a', 'b c']\n"), out.stderr
        assert project.run([env / "bin" / "sh", "-c", "echo x > /etc/vr-reset"]).returncode == 0
        assert project.venvroot("reset", env).returncode == 0
        assert project.run([env / "bin" / "sh", "-c", "test -e /etc/vr-reset"]).returncode == 1
        out = project.run([script, "again"], cwd=Path("/"))
        assert (out.returncode, out.stdout) == (3, f"hello {env} ['again']\n"), out.stderr
    finally:
        project.close()


def test_destroy_leaves_no_process_mount_or_file(who: Who) -> None:
    project = Project(who)
    shell = Shell(who, project.path, project.environ)
    try:
        env = project.create("env", "--link", "sh", "--persistent")
        assert shell.status("source env/bin/activate")[0] == 0
        shell.run("sh -c 'sleep 4322 >/dev/null 2>&1 &' </dev/null")
        assert wait_for(lambda: bool(processes_with("sleep 4322")))
        assert in_environment(env)
        code, out = shell.status("env/bin/destroy")
        assert code == 0, out
        assert not env.exists()
        assert processes_with("sleep 4322") == []
        assert in_environment(env) == [] and processes_with(str(env)) == []
        assert host_mounts_mention(env) == []
        assert sorted(p.name for p in project.path.iterdir()) == []
    finally:
        shell.close()
        project.close()


def test_bad_link_leaves_nothing(who: Who) -> None:
    project = Project(who)
    try:
        result = project.venvroot(project.path / "env", "--link", "no-such-program-xyz")
        assert result.returncode == 2
        assert "cannot link 'no-such-program-xyz'" in one_error_line(result)
        assert list(project.path.iterdir()) == []
        assert in_environment(project.path / "env") == []
    finally:
        project.close()


def test_directory_mappings_and_hostname(who: Who, bb_root: Path) -> None:
    project = Project(who)
    data = Project(who, prefix="venvroot-nsb-data-")
    try:
        (data.path / "in").mkdir()
        os.chown(data.path / "in", who.uid, who.gid)
        env = project.create(
            "env", "--root", bb_root, "--link", "sh", "--hostname", "box.example.org",
            "--directory", f"{data.path}:/data:rw", "--directory", f"{bb_root}/etc:/ro-etc",
        )  # fmt: skip
        script = (
            "hostname; cat /proc/sys/kernel/domainname; pwd; echo made > /data/in/made; "
            "cat /ro-etc/hostname; touch /ro-etc/x 2>/dev/null || echo read-only"
        )
        out = project.run([env / "bin" / "sh", "-c", script], cwd=data.path / "in")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["box", "example.org", "/data/in", "busybox-root", "read-only"]
        made = data.path / "in" / "made"
        assert made.read_text() == "made\n" and made.stat().st_uid == who.uid
        assert not (bb_root / "etc" / "x").exists()
    finally:
        project.close()
        data.close()


def test_the_fast_path_names_nsenter_by_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """shim.sh is run from any directory: a relative or empty PATH entry must not end up in it."""
    from venvroot.backends.ns.fastpath import _which

    planted = tmp_path / "rel" / "nsenter"
    planted.parent.mkdir()
    planted.write_text("#!/bin/sh\n")
    planted.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    real = shutil.which("nsenter", path="/usr/bin:/bin")
    assert real is not None, "nsenter (util-linux) is missing"
    for path in ("rel:/usr/bin:/bin", ":/usr/bin:/bin", "./rel:/usr/bin:/bin"):
        monkeypatch.setenv("PATH", path)
        assert _which("nsenter") == real, path
    monkeypatch.setenv("PATH", "")
    assert _which("nsenter") is None


def test_an_env_path_with_a_comma_gets_its_overlays(who: Who) -> None:
    """Overlay options escape ',' and ':' in the probe as in the real mount, so a comma in the
    env's path is data, not a refused overlay falling back to a read-only bind."""
    project = Project(who)
    try:
        env = project.create("a,b", "--link", "sh")
        info = project.venvroot("info", env)
        assert info.returncode == 0, info.stderr
        assert "the kernel refused an overlay" not in info.stdout, info.stdout
        wrote = shim(project, env, "sh", "-c", "echo x > /etc/venvroot-comma && cat /etc/venvroot-comma")
        assert (wrote.returncode, wrote.stdout) == (0, "x\n"), wrote.stderr
        assert not os.path.exists("/etc/venvroot-comma")
    finally:
        project.close()


def test_the_probe_names_each_overlay_the_kernel_refuses(tmp_path: Path) -> None:
    """The host view's probe (replay.trial): each planned overlay mounted once, in a throwaway
    namespace; those the kernel refuses are named, the rest mount, and the host sees none."""
    from venvroot.backends.ns import replay
    from venvroot.ns.mounts import Mount

    for d in ("root/fine", "root/refused", "lower", "upper", "work", "work2"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "lower" / "file").write_text("x")
    lower = str(tmp_path / "lower")
    fine = Mount.overlay("/fine", lower, str(tmp_path / "upper"), str(tmp_path / "work"))
    refused = Mount.overlay("/refused", lower, str(tmp_path / "gone"), str(tmp_path / "work2"))
    steps = [("mount", "overlay", "overlay", m.dest, m.options, "") for m in (fine, refused)]
    assert replay.trial(steps, str(tmp_path / "root")) == {"/refused"}
    assert not (tmp_path / "root" / "fine" / "file").exists(), "the probe's mount reached the host"


def test_pyvenv_cfg_has_virtualenvs_keys_true_on_the_host(who: Who) -> None:
    """What IDEs and tools read from pyvenv.cfg: virtualenv's keys beside venv's, the --prompt,
    and paths that exist on the host (the host view's interpreter is the host's own)."""
    project = Project(who)
    try:
        env = project.create("env", "--prompt", "myp")
        text = (env / "pyvenv.cfg").read_text()
        cfg = dict(line.split(" = ", 1) for line in text.splitlines())
        assert cfg["prompt"] == "myp", text
        inside = shim(
            project, env, "python", "-c", "import sys; print(sys.base_prefix, sys.version_info[:3])"
        )
        assert inside.returncode == 0, inside.stderr
        base_prefix = inside.stdout.split()[0]
        assert cfg["base-prefix"] == cfg["base-exec-prefix"] == base_prefix
        assert cfg["implementation"] == "CPython"
        assert cfg["version_info"].split(".")[:3] == cfg["version"].split(".")[:3]
        assert cfg["venvroot"] and cfg["include-system-site-packages"] == "false"
        for key in ("home", "base-prefix", "base-executable"):
            assert os.path.exists(cfg[key]), (key, cfg[key])
    finally:
        project.close()
