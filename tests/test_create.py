"""`venvroot PATH`: layout, options, config file, and every bad input leaving nothing behind."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import missing

from venvroot import Environment, Settings, create
from venvroot.errors import UsageError

VENVROOT = [sys.executable, "-m", "venvroot"]


def venvroot(*args: str | os.PathLike[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*VENVROOT, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def snapshot(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("venvroot: error: "), lines[0]
    return lines[0]


def test_layout(tmp_path: Path) -> None:
    env = tmp_path / "proj" / ".venv"
    result = venvroot(env, "--link", "ls")
    assert result.returncode == 0, result.stderr
    assert (env / "venvroot.cfg").read_text().startswith("venvroot = ")
    assert (env / ".gitignore").read_text().splitlines()[-1] == "*"
    for name in ("activate", "activate.fish", "activate.csh", "activate.xsh"):
        assert (env / "bin" / name).is_file(), name
    destroy = env / "bin" / "destroy"
    assert destroy.stat().st_mode & stat.S_IXUSR
    assert (env / "bin" / "ls").stat().st_mode & stat.S_IXUSR
    assert "activate with: source" in result.stdout


def test_python_m_and_console_script_agree(tmp_path: Path) -> None:
    version = venvroot("--version")
    assert version.returncode == 0 and version.stdout.startswith("venvroot ")
    script = Path(sys.executable).parent / "venvroot"
    if not script.exists():
        missing(f"no console script {script}: venvroot is not installed in this interpreter's environment")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert out.stdout == version.stdout


def test_create_verb_makes_env_named_like_a_verb(tmp_path: Path) -> None:
    result = venvroot("create", "./run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "run" / "venvroot.cfg").is_file()


def test_options_are_recorded_and_info_prints_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    env = tmp_path / "e"
    result = venvroot(
        env, "--prompt", "my env", "--activators", "bash,fish", "--user", "system:1234:svc",
        "--directory", f"{data}:/data:rw", "--persistent", "--on-activate", "echo one",
        "--on-activate", "echo two", "--on-deactivate", "echo bye", "--hostname", "box.example.org",
        "--no-vcs-ignore",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    settings = Environment.open(env).settings
    assert settings.prompt == "my env"
    assert settings.activators == ["bash", "fish"]
    assert settings.user == "system:1234:svc"
    assert settings.directory == [f"{data}:/data:rw"]
    assert settings.persistent is True
    assert settings.on_activate == ["echo one", "echo two"]
    assert settings.on_deactivate == ["echo bye"]
    assert settings.hostname == "box.example.org"
    assert not (env / ".gitignore").exists()
    assert not (env / "bin" / "activate.csh").exists()
    info = venvroot("info", env)
    assert info.returncode == 0
    assert "my env" in info.stdout and "echo two" in info.stdout and "box.example.org" in info.stdout


def test_prompt_dot_is_the_current_directory(tmp_path: Path) -> None:
    work = tmp_path / "workdir"
    work.mkdir()
    assert venvroot("e", "--prompt", ".", cwd=work).returncode == 0
    assert Environment.open(work / "e").settings.effective_prompt == "workdir"


def test_library_api_round_trip(tmp_path: Path) -> None:
    env = create(Settings(path=tmp_path / "lib", on_activate=["  spaced  ", "multi\nline"]))
    again = Environment.open(tmp_path / "lib")
    assert again.settings.on_activate == ["  spaced  ", "multi\nline"]
    assert again.path == env.path == tmp_path / "lib"  # a pathlib.Path, for library users
    assert again.dir == env.dir == str(tmp_path / "lib") == env.settings.path
    assert again.bin_dir == tmp_path / "lib" / "bin"


def test_config_file_and_command_line_override(tmp_path: Path) -> None:
    (tmp_path / ".venvroot.conf").write_text(
        'prompt = "from-file"\nhostname = "filehost"\non-activate = ["a", "b"]\npersistent = true\n'
    )
    assert venvroot("e1", cwd=tmp_path).returncode == 0
    s = Environment.open(tmp_path / "e1").settings
    assert (s.prompt, s.hostname, s.on_activate, s.persistent) == ("from-file", "filehost", ["a", "b"], True)
    assert venvroot("e2", "--hostname", "clihost", cwd=tmp_path).returncode == 0
    s = Environment.open(tmp_path / "e2").settings
    assert (s.prompt, s.hostname) == ("from-file", "clihost")
    other = tmp_path / "other.toml"
    other.write_text('prompt = "other"\n')
    assert venvroot("e3", "--config", other, cwd=tmp_path).returncode == 0
    assert Environment.open(tmp_path / "e3").settings.prompt == "other"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('prompt = "x"\n\nbogus = 1\n', ":3: key 'bogus': unknown key"),
        ('prompt = "x"\npersistent = "yes"\n', ":2: key 'persistent': expected true or false"),
        ('directory = ["/nonexistent-dir-xyz:/d"]\n', ":1: key 'directory': bad --directory spec"),
        ('backend = "lxc"\n', ":1: key 'backend': unknown backend 'lxc'"),
        ("prompt = \n", "not valid TOML"),
    ],
)
def test_bad_config_line(tmp_path: Path, text: str, expected: str) -> None:
    conf = tmp_path / ".venvroot.conf"
    conf.write_text(text)
    result = venvroot("e", cwd=tmp_path)
    assert result.returncode == 2
    line = one_error_line(result)
    assert expected in line and str(conf.name) in line
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--directory", "{tmp}"], None),  # the good case: a sanity check for the others
        (["--directory", "{tmp}:relative"], "must be absolute"),
        (["--directory", "{tmp}::rw"], "bad --directory spec"),
        (["--directory", "{tmp}/missing:/m"], "is not a directory"),
        (["--activators", "bash,powershell"], "unknown activator 'powershell'"),
        (["--backend", "lxc"], "invalid choice" if False else "unknown backend"),
        (["--user", "1:2:3:x"], "bad --user spec"),
        (["--hostname", "bad host"], "bad hostname"),
        (["--link", "activate.fish"], "would replace the environment's own"),
        (["--link", "destroy"], "would replace the environment's own"),
        (["--backend", "docker"], "needs an image"),
        (["--no-such-option"], "unrecognized arguments"),
    ],
)
def test_bad_options_leave_nothing(tmp_path: Path, args: list[str], expected: str | None) -> None:
    env = tmp_path / "e"
    result = venvroot(env, *(a.format(tmp=tmp_path) for a in args))
    if expected is None:
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2, result.stderr
    assert expected in one_error_line(result)
    assert not env.exists()


def test_path_with_colon_is_refused(tmp_path: Path) -> None:
    result = venvroot(tmp_path / "a:b")
    assert result.returncode == 2
    assert "contains ':'" in one_error_line(result)
    assert not (tmp_path / "a:b").exists()


def test_non_empty_target_needs_clear(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    result = venvroot(target)
    assert result.returncode == 2
    assert "not empty; use --clear" in one_error_line(result)
    assert snapshot(target) == ["keep.txt"]
    # --clear replaces only environments, never an arbitrary directory
    result = venvroot(target, "--clear")
    assert result.returncode == 2
    assert "neither a venvroot nor a virtualenv" in one_error_line(result)
    assert (target / "keep.txt").read_text() == "precious"


def test_clear_replaces_an_environment(tmp_path: Path) -> None:
    env = tmp_path / "e"
    assert venvroot(env, "--prompt", "old").returncode == 0
    (env / "junk").write_text("x")
    assert venvroot(env, "--clear", "--prompt", "new").returncode == 0
    assert not (env / "junk").exists()
    assert Environment.open(env).settings.prompt == "new"


def test_unwritable_parent(tmp_path: Path, unprivileged_user, shared_tmp: Path) -> None:
    from conftest import as_user

    locked = shared_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    os.chown(locked, 0, 0)
    target = locked / "sub" / "env"
    result = subprocess.run(
        as_user(unprivileged_user, [*VENVROOT, str(target)]), capture_output=True, text=True
    )
    assert result.returncode == 1, result.stderr
    assert "is not writable" in one_error_line(result)
    assert not (locked / "sub").exists()


def test_failed_create_removes_created_parents(tmp_path: Path) -> None:
    # --link of a program the root lacks fails after the layout is written: all of it must go.
    target = tmp_path / "a" / "b" / "env"
    result = venvroot(target, "--link", "definitely-not-a-program-xyz")
    assert result.returncode == 2
    assert "cannot link" in one_error_line(result)
    assert not (tmp_path / "a").exists()


def test_link_unlink(tmp_path: Path) -> None:
    env = tmp_path / "e"
    assert venvroot(env).returncode == 0
    assert venvroot("link", env, "ls", "/bin/cat").returncode == 0
    assert (env / "bin" / "ls").exists() and (env / "bin" / "cat").exists()
    result = venvroot("link", env, "activate")
    assert result.returncode == 2 and "would replace" in one_error_line(result)
    assert (env / "bin" / "activate").read_text().startswith("#")
    assert venvroot("unlink", env, "ls").returncode == 0
    assert not (env / "bin" / "ls").exists()
    result = venvroot("unlink", env, "activate")
    assert result.returncode == 2
    assert (env / "bin" / "activate").exists()


def test_shim_passes_arguments_untouched(tmp_path: Path) -> None:
    """The shim's own layer: whatever it gets reaches the backend's run path byte for byte."""
    env = tmp_path / "e"
    assert venvroot(env, "--link", "printf").returncode == 0
    args = ["%s|", "a b", "", "'q'", '"d"', "$(x)", "(", "new\nline", "ü"]
    out = subprocess.run([str(env / "bin" / "printf"), *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "".join(f"{a}|" for a in args[1:])


def test_destroy(tmp_path: Path) -> None:
    env = tmp_path / "proj" / "e"
    assert venvroot(env).returncode == 0
    out = subprocess.run([str(env / "bin" / "destroy")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert not env.exists()
    assert (tmp_path / "proj").exists()
    assert venvroot(env).returncode == 0
    assert venvroot("destroy", env).returncode == 0
    assert not env.exists()


def test_destroy_refuses_a_non_environment(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep")
    result = venvroot("destroy", tmp_path / "x")
    assert result.returncode == 2
    assert "not a venvroot environment" in one_error_line(result)
    assert (tmp_path / "x" / "file").read_text() == "keep"


def test_reserved_verbs_are_parsed_as_verbs(tmp_path: Path) -> None:
    for verb in ("info", "reset", "sync", "destroy"):
        result = venvroot(verb, tmp_path / "nope")
        assert result.returncode == 2
        assert "not a venvroot environment" in one_error_line(result)
        assert not (tmp_path / "nope").exists()


def test_library_errors_are_exceptions(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown activator"):
        create(Settings(path=tmp_path / "e", activators=["nope"]))
    assert not (tmp_path / "e").exists()


def test_destroy_removes_read_only_directories(unprivileged_user, shared_tmp: Path) -> None:
    """A program inside may leave directories its owner cannot write (as `go mod` does)."""
    from conftest import as_user

    env = shared_tmp / "e"
    made = subprocess.run(
        as_user(unprivileged_user, [*VENVROOT, str(env), "-q"]), capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr
    locked = env / "cache" / "pkg"
    subprocess.run(as_user(unprivileged_user, ["mkdir", "-p", str(locked)]), check=True)
    subprocess.run(as_user(unprivileged_user, ["touch", str(locked / "f")]), check=True)
    subprocess.run(as_user(unprivileged_user, ["chmod", "0500", str(locked), str(locked.parent)]), check=True)
    out = subprocess.run(
        as_user(unprivileged_user, [str(env / "bin" / "destroy")]), capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 0, out.stderr
    assert not env.exists()


def test_settings_defaults_are_fresh_and_unknown_names_refused(tmp_path: Path) -> None:
    first, second = Settings(path=tmp_path / "a"), Settings(path=tmp_path / "b")
    first.link.append("ls")
    first.activators.remove("xonsh")
    assert second.link == [] and second.activators == ["bash", "fish", "cshell", "xonsh", "nushell"]
    with pytest.raises(TypeError, match="'bogus'"):
        Settings(path=tmp_path / "c", bogus=1)


def test_settings_round_trip_through_venvroot_cfg(tmp_path: Path) -> None:
    settings = Settings(
        path=tmp_path / "e", prompt="p 'q' $x", on_activate=["a", "b c"], persistent=True, hostname="h.x"
    )
    create(settings)
    again = Environment.open(tmp_path / "e").settings
    assert again == settings and again is not settings
    again.on_activate.append("d")
    assert again != settings


@pytest.mark.parametrize(
    ("hostname", "good"),
    [
        ("box", True),
        ("box.example.org", True),
        ("a-1.b2", True),
        ("9", True),
        ("x" * 63, True),
        (".".join(["a" * 63] * 3) + "." + "b" * 61, True),  # 253 characters
        (".".join(["a" * 63] * 3) + "." + "b" * 62, False),  # 254
        ("x" * 64, False),
        ("", False),
        ("-box", False),
        ("box-", False),
        ("box..org", False),
        ("box.", False),
        ("box_1", False),
        ("bøx", False),
        ("box\n", False),
        ("bad host", False),
    ],
)
def test_hostname_check(hostname: str, good: bool) -> None:
    from venvroot.env.options import check_hostname

    if good:
        assert check_hostname(hostname) == hostname
    else:
        with pytest.raises(UsageError, match="bad hostname"):
            check_hostname(hostname)
