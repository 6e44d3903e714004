"""Templates rendered through cached skeletons: byte for byte what jinja2 renders, and a cache that
nobody else can plant a skeleton in."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest

from venvroot.activators import ACTIVATORS, ActivationContext
from venvroot.activators.base import HERE as ACTIVATORS_DIR
from venvroot.shims import writer
from venvroot.util import templates

# Data that would break a template that computed with it, or a fill that scanned what it filled in:
# quotes, substitutions, escapes, prompt sequences, jinja2 syntax and the slot markers themselves.
HOSTILE = [
    "plain",
    'it\'s "double" `id` $(touch PWNED) ${HOME} $((1+1))',
    "back\\slash \\\\ \\n \\041 \\044 \\134 \\",
    "new\nline\n",
    "% %% %n %(x)s {RED} {0} {{ x }} {% if %} {# c #} ^A ^ !! !$ !1 ! *?[a] ~ # ; & | < >",
    "ünïcødé ✓ 日本 \U0001f600",
    "markers \x01 \x02 end",
    "'",
    "",
]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh per-user cache: TMPDIR points at an empty directory and this process forgets what it
    rendered before."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    forget()
    yield tmp / f"venvroot-{os.geteuid()}"
    forget()


def forget() -> None:
    templates.cache_dir.cache_clear()
    templates.skeleton.cache_clear()


def contexts() -> Iterator[ActivationContext]:
    for value in HOSTILE:
        env_dir = f"/srv/{value}"
        for session in (None, f"{env_dir}/bin/.venvroot-session"):
            yield ActivationContext(env_dir, f"{env_dir}/bin", value, session)


@pytest.mark.parametrize("name", sorted(ACTIVATORS))
def test_activators_render_like_jinja2_cold_and_warm(name: str, cache: Path) -> None:
    activator = ACTIVATORS[name]()
    for warm in (False, True):
        if warm:
            templates.skeleton.cache_clear()  # read the skeletons back from the cache directory
        for ctx in contexts():
            expected = templates.render_with_jinja(
                ACTIVATORS_DIR, activator.template, activator.quote, activator.values(ctx)
            )
            assert activator.render(ctx) == expected, (warm, ctx)
    assert sorted(p.name for p in cache.iterdir()) == [
        f"{templates.__version__}-activators-{activator.template}",
        f"{templates.__version__}-activators-{activator.template}-session=None",
    ]


def test_shims_and_manage_scripts_render_like_jinja2(cache: Path, tmp_path: Path) -> None:
    for value in HOSTILE:
        env_dir = tmp_path / "envs" / (value.replace("/", "").replace("\n", "") or "empty")
        (env_dir / "bin").mkdir(parents=True)
        base = {"python": sys.executable, "entry": str(writer.ENTRY), "env_dir": str(env_dir)}
        printable = "".join(c for c in value if c.isprintable())  # a shim's program has no control character
        for program in ("python", f"/opt/{printable}/prog"):
            path = Path(writer.write_shim(str(env_dir), program))
            expected = templates.render_with_jinja(
                str(writer.HERE), "shim.tmpl", shlex.quote, {**base, "program": program}
            )
            assert path.read_text(encoding="utf-8") == expected, program
        for name, verb in (("destroy", "destroy"), (writer.SESSION_HOOK, "session")):
            path = Path(writer.write_manage_script(str(env_dir), name, verb))
            values = {**base, "verb": verb, "activation_hook": verb == "session"}
            expected = templates.render_with_jinja(str(writer.HERE), "manage.tmpl", shlex.quote, values)
            assert path.read_text(encoding="utf-8") == expected, verb
    assert "Called by the activate scripts" in (env_dir / "bin" / writer.SESSION_HOOK).read_text()
    assert "Called by" not in (env_dir / "bin" / "destroy").read_text()


def test_the_cache_directory_is_private(cache: Path) -> None:
    assert not cache.exists()
    ACTIVATORS["bash"]().render(ActivationContext("/e", "/e/bin", "e"))
    assert cache.is_dir() and not cache.is_symlink()
    assert cache.stat().st_mode & 0o777 == 0o700 and cache.stat().st_uid == os.geteuid()
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in cache.iterdir())


PLANTED = "echo planted skeleton\n"


def plant(cache: Path) -> None:
    """Cache both skeletons of activate.sh, then replace each by a planted one that passes every
    check of its header and recorded template source."""
    forget()
    render_bash(None)
    render_bash("/hook")
    for path in cache.iterdir():
        header, sizes, rest = path.read_text(encoding="utf-8").split("\n", 2)
        source_size = int(sizes.split()[0])
        sizes = f"{source_size} {len(PLANTED)}"
        path.write_text(f"{header}\n{sizes}\n{rest[:source_size]}{PLANTED}", encoding="utf-8")
    forget()


def genuine(session: str | None) -> str:
    activator = ACTIVATORS["bash"]()
    ctx = ActivationContext("/e", "/e/bin", "e", session)
    values = activator.values(ctx)
    return templates.render_with_jinja(ACTIVATORS_DIR, activator.template, activator.quote, values)


def render_bash(session: str | None) -> str:
    return ACTIVATORS["bash"]().render(ActivationContext("/e", "/e/bin", "e", session))


def test_a_skeleton_in_the_cache_is_what_gets_filled(cache: Path) -> None:
    # The control for the tests below: a skeleton in our own cache directory is used as it is.
    plant(cache)
    assert render_bash(None) == PLANTED
    assert render_bash("/hook") == PLANTED


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o701])
def test_a_cache_directory_others_can_write_or_read_is_not_used(cache: Path, mode: int) -> None:
    plant(cache)
    cache.chmod(mode)
    assert render_bash(None) == genuine(None)
    assert render_bash("/hook") == genuine("/hook")
    assert cache.stat().st_mode & 0o777 == mode  # left alone: never "repaired" into use


def test_a_cache_directory_owned_by_someone_else_is_not_used(cache: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a directory away")
    plant(cache)
    os.chown(cache, 65534, 65534)
    assert render_bash(None) == genuine(None)


def test_a_symlink_as_the_cache_directory_is_not_followed(cache: Path, tmp_path: Path) -> None:
    plant(cache)
    elsewhere = tmp_path / "elsewhere"
    cache.rename(elsewhere)
    cache.symlink_to(elsewhere)
    assert render_bash(None) == genuine(None)


@pytest.mark.parametrize("mode", [0o777, 0o1777])
def test_a_cache_in_a_directory_others_may_rename_in_is_not_used(cache: Path, mode: int) -> None:
    # World-writable without the sticky bit, another user could swap the cache directory for
    # theirs after it was checked; /tmp's sticky bit forbids that.
    plant(cache)
    cache.parent.chmod(mode)
    forget()
    expected = PLANTED if mode & 0o1000 else genuine(None)
    assert render_bash(None) == expected


def test_a_file_as_the_cache_directory_means_no_cache(cache: Path) -> None:
    cache.write_text("not a directory")
    assert render_bash(None) == genuine(None)
    assert cache.read_text() == "not a directory"


def test_a_changed_template_is_rendered_again(cache: Path, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "t.tmpl").write_text("say {{ word|q }} to {{ who }}\n")
    quote = repr
    assert templates.render(str(own), "t.tmpl", quote, {"word": "hi", "who": "you"}) == "say 'hi' to you\n"
    (own / "t.tmpl").write_text("shout {{ word|q }} at {{ who }}\n")
    templates.skeleton.cache_clear()  # a new process: only the cache directory remembers
    assert templates.render(str(own), "t.tmpl", quote, {"word": "hi", "who": "you"}) == "shout 'hi' at you\n"
    # The same length, one character changed: the whole text is compared, not its size.
    (own / "t.tmpl").write_text("shout {{ word|q }} at {{ who }}!\n"[:-2] + "?\n")
    templates.skeleton.cache_clear()
    assert templates.render(str(own), "t.tmpl", quote, {"word": "hi", "who": "you"}) == "shout 'hi' at you?\n"


def test_a_corrupt_cache_file_is_made_again(cache: Path) -> None:
    render_bash(None)
    for path in cache.iterdir():
        path.write_bytes(path.read_bytes()[:-100])
    templates.skeleton.cache_clear()
    assert render_bash(None) == genuine(None)
    for path in cache.iterdir():
        path.write_bytes(b"\xff\xfe not utf-8")
    templates.skeleton.cache_clear()
    assert render_bash(None) == genuine(None)


def test_shape_is_part_of_the_key(cache: Path, tmp_path: Path) -> None:
    own = tmp_path / "own"
    own.mkdir()
    (own / "t.tmpl").write_text("{% if flag %}on {{ x }}{% else %}off{% endif %}\n")
    assert templates.render(str(own), "t.tmpl", repr, {"flag": True, "x": "1"}) == "on 1\n"
    assert templates.render(str(own), "t.tmpl", repr, {"flag": False, "x": "1"}) == "off\n"
    templates.skeleton.cache_clear()
    assert templates.render(str(own), "t.tmpl", repr, {"flag": True, "x": "2"}) == "on 2\n"
    assert templates.render(str(own), "t.tmpl", repr, {"flag": None, "x": "2"}) == "off\n"


def test_a_template_can_only_quote_its_values(cache: Path, tmp_path: Path) -> None:
    # A filter that computed with a value would compute with a slot marker in the skeleton.
    own = tmp_path / "own"
    own.mkdir()
    (own / "t.tmpl").write_text("{{ x|replace('a', 'b') }}\n")
    with pytest.raises(jinja2.TemplateAssertionError, match="replace"):
        templates.render(str(own), "t.tmpl", repr, {"x": "a"})
    with pytest.raises(jinja2.TemplateAssertionError, match="replace"):
        templates.render_with_jinja(str(own), "t.tmpl", repr, {"x": "a"})


def test_no_cache_directory_still_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing" / "deeper"))
    forget()
    try:
        assert templates.cache_dir() is None
        for ctx in list(contexts())[:4]:
            activator = ACTIVATORS["fish"]()
            expected = templates.render_with_jinja(
                ACTIVATORS_DIR, activator.template, activator.quote, activator.values(ctx)
            )
            assert activator.render(ctx) == expected
    finally:
        forget()
    assert not (tmp_path / "missing").exists()


CREATE_AND_REPORT = (
    "import sys\n"
    "from venvroot.cli.commands import dispatch\n"
    "code = dispatch(sys.argv[1:])\n"
    "print('jinja2' in sys.modules)\n"
    "sys.exit(code)\n"
)


def create_and_report(env: Path, root: Path, tmp: Path, pythonpath: str | None = None) -> bool:
    """``venvroot ENV --root ROOT`` in a new process; whether it imported jinja2."""
    environ = {**os.environ, "TMPDIR": str(tmp)}
    if pythonpath is not None:
        environ["PYTHONPATH"] = pythonpath
    result = subprocess.run(
        [sys.executable, "-c", CREATE_AND_REPORT, str(env), "-q", "--prompt", "env", "--root", str(root)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=env.parent,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip() == "True"


def bin_files(env: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((env / "bin").iterdir()) if p.is_file()}


def test_a_warm_create_does_not_import_jinja2(tmp_path: Path, busybox_root: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    assert create_and_report(tmp_path / "first", busybox_root, tmp) is True  # cold: jinja2 makes them
    assert create_and_report(tmp_path / "second", busybox_root, tmp) is False
    first = {k: v.replace(b"/first", b"/ENV") for k, v in bin_files(tmp_path / "first").items()}
    second = {k: v.replace(b"/second", b"/ENV") for k, v in bin_files(tmp_path / "second").items()}
    assert first == second
