"""Rendering the templates venvroot writes (activate scripts, shims) without jinja2 on a warm create.

jinja2 is the template language, but importing it costs more than all the rest of a create. So a
template is rendered by jinja2 once into a *skeleton*: its text with a slot wherever a value goes,
each slot naming the value and whether ``|q`` quotes it. A create then fills the slots from Python,
quoting with the caller's function.

A template gets two kinds of variables. A ``str`` is data: it becomes a slot, and the template may
only write it out, join it with ``~`` and quote it with ``|q`` (the one filter there is), never
compare it or branch on it. Anything else (``None``, a bool) is shape: jinja2 sees it as it is,
``{% if %}`` tests it, and it is part of the skeleton's cache key. A template includes no other.

Skeletons are cached per user in ``$TMPDIR/venvroot-UID``, a directory that must be the user's own
with mode 0700, else nothing is cached: a skeleton planted by someone else would be code in every
activate script written after. A cached skeleton is used only when it was made by this venvroot
version, for the same shape, from exactly the template's current text.
"""

from __future__ import annotations

import functools
import os
import stat

from ..version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import jinja2

# Slot markers. No template holds these characters (checked when a skeleton is made); a value may,
# since filling never scans a value.
SLOT = "\x00"  # SLOT name SLOT: the value, written as it is
QUOTED = "\x01"  # QUOTED ... END: the text between (literals and slots) quoted as a whole
END = "\x02"
FORMAT = "venvroot-skeleton-1"


def render(directory: str, template: str, quote: Callable[[str], str], values: Mapping[str, object]) -> str:
    """Render ``directory/template`` with ``values``; ``|q`` quotes with ``quote``."""
    slots = {name: value for name, value in values.items() if isinstance(value, str)}
    shape = tuple(sorted((name, value) for name, value in values.items() if not isinstance(value, str)))
    return fill(skeleton(directory, template, shape, tuple(sorted(slots))), slots, quote)


def render_with_jinja(
    directory: str, template: str, quote: Callable[[str], str], values: Mapping[str, object]
) -> str:
    """Render with jinja2 alone, every value in place: what :func:`render` must give, byte for byte."""
    return _jinja(_read(directory, template), quote).render(values)


def fill(skeleton_text: str, slots: Mapping[str, str], quote: Callable[[str], str]) -> str:
    """The skeleton with each slot replaced by its value, quoted where the template said ``|q``."""
    head, *quoted = skeleton_text.split(QUOTED)
    out = [_join(head, slots)]
    for chunk in quoted:
        inner, _, tail = chunk.partition(END)
        out.append(quote(_join(inner, slots)))
        out.append(_join(tail, slots))
    return "".join(out)


def _join(text: str, slots: Mapping[str, str]) -> str:
    parts = text.split(SLOT)  # literal, name, literal, name, ..., literal
    parts[1::2] = [slots[name] for name in parts[1::2]]
    return "".join(parts)


@functools.cache
def skeleton(
    directory: str, template: str, shape: tuple[tuple[str, object], ...], names: tuple[str, ...]
) -> str:
    """The skeleton of ``directory/template`` for ``shape`` (sorted ``(name, value)`` pairs) with a
    slot for each of ``names``: from the cache, else made by jinja2 and cached."""
    source = _read(directory, template)
    shape_key = ",".join(f"{name}={value!r}" for name, value in shape)
    # The directory's own name tells apart templates of the same name in different directories.
    key = f"{__version__}-{os.path.basename(directory)}-{template}" + (f"-{shape_key}" if shape_key else "")
    header = f"{FORMAT} {key} {','.join(names)}"
    cache = cache_dir()
    text = _load(cache, key, header, source) if cache else None
    if text is None:
        text = _make(directory, template, source, shape, names)
        if cache:
            _store(cache, key, f"{header}\n{len(source)} {len(text)}\n{source}{text}")
    return text


def _read(directory: str, template: str) -> str:
    # Text mode, as jinja2's own loader reads a template.
    with open(os.path.join(directory, template), encoding="utf-8") as handle:
        return handle.read()


def _make(
    directory: str, template: str, source: str, shape: tuple[tuple[str, object], ...], names: tuple[str, ...]
) -> str:
    if any(marker in source for marker in (SLOT, QUOTED, END)):
        raise ValueError(f"{directory}/{template} holds a character that venvroot uses as a slot marker")
    markers = {name: f"{SLOT}{name}{SLOT}" for name in names}
    # From the text just read, which the cache records: never a template jinja2 compiled earlier.
    return _jinja(source, _quoted_slot).render({**markers, **dict(shape)})


def _quoted_slot(text: str) -> str:
    if QUOTED in text or END in text:
        raise ValueError("|q applied to a value twice")
    return f"{QUOTED}{text}{END}"


@functools.cache
def _environment() -> jinja2.Environment:
    # jinja2: not on a warm create's path
    import jinja2

    return jinja2.Environment(keep_trailing_newline=True, autoescape=False, undefined=jinja2.StrictUndefined)


def _jinja(source: str, quote: Callable[[str], str]) -> jinja2.Template:
    env = _environment()
    # The only filter, so that a template cannot compute with a value a skeleton only has a slot for.
    # Compiled templates look filters up when rendering.
    env.filters = {"q": quote}
    return env.from_string(source)


# -- the per-user cache ----------------------------------------------------------------------------
@functools.cache
def cache_dir() -> str | None:
    """``$TMPDIR/venvroot-UID``, made if missing; None unless it is a directory of ours, mode 0700,
    in directories nobody else can rename it out of."""
    tmp = os.environ.get("TMPDIR") or os.environ.get("TEMP") or os.environ.get("TMP") or "/tmp"
    if not _only_ours_or_sticky(os.path.realpath(tmp)):
        return None
    path = os.path.join(tmp, f"venvroot-{os.geteuid()}")
    try:
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)  # whatever the umask
    except FileExistsError:
        pass  # checked below, like one just made: a symlink or someone else's directory is refused
    except OSError:
        return None
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700:
        return path
    return None


def _only_ours_or_sticky(directory: str) -> bool:
    """Whether ``directory`` and each one above it belong to us or root and are writable by nobody
    else, or sticky (like /tmp): otherwise another user could swap our cache directory for theirs
    between the check and a later open."""
    me = os.geteuid()
    while True:
        try:
            st = os.stat(directory)
        except OSError:
            return False
        if st.st_uid not in (0, me) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
            return False
        if directory == "/":
            return True
        directory = os.path.dirname(directory)


def _load(cache: str, key: str, header: str, source: str) -> str | None:
    """The skeleton cached under ``key``, if its file has ``header`` and was made from ``source``."""
    try:
        fd = os.open(os.path.join(cache, key), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        with open(fd, encoding="utf-8", newline="") as handle:
            text = handle.read()
        line, sizes, rest = text.split("\n", 2)
        source_size, skeleton_size = (int(n) for n in sizes.split(" "))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if line != header or source_size != len(source) or len(rest) != source_size + skeleton_size:
        return None
    return rest[source_size:] if rest.startswith(source) else None


def _store(cache: str, key: str, text: str) -> None:
    """Write atomically (a create running at the same time reads all or nothing). A full disk or a
    vanished directory costs only the next create a render."""
    path = os.path.join(cache, key)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with open(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError:
        # contextlib: only when a skeleton cannot be stored
        import contextlib

        with contextlib.suppress(OSError):
            os.unlink(tmp)
