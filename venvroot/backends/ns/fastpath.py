"""The sh the ``ns`` backend puts on the shims' and the activate scripts' hot paths.

A Python start alone costs more than joining a running environment, so the common cases need no
Python at all:

* ``<env>/.venvroot/shim.sh`` (host side), sourced by every shim: when the env's holder is alive
  (its liveness marker is visible through ``/proc/PID/root``, which a reused pid never shows), map
  the current directory and the environment exactly as the Python path does and join the holder's
  namespaces with the compiled starter's ``--join`` (or ``nsenter`` without it). When nothing
  runs, the compiled starter starts the namespaces first (startfile.py); when it cannot, the
  fragment returns and the shim goes on to Python, which starts them.
* ``<env>/.venvroot/shim.cfg``: the same steps for the compiled shim (shim.c): ``bin/NAME``, a
  link to ``bin/.venvroot-shim`` (the env's copy of the static compiled starter): no shell at all.
  Without a static starter the shims stay sh (shims/writer.py).
* the inside version (written by the holder into the tmpfs covering ``<env>/.venvroot`` inside):
  a shim run *inside* the root (it is on PATH there) runs the program itself, found on the root's
  PATH without ``<env>/bin``, instead of entering the env again.
* ``bin/.venvroot-session``: registering an activated shell is a file write; deactivating when no
  holder runs is a truncation. Python runs only for hooks and to stop a running holder.

Everything interpolated is a single-quoted literal: paths are data, never code.
"""

from __future__ import annotations

import os
import sys

from ...shims.marker import ENTRY
from ...util.shquote import quote as q
from .. import envstate
from ..inside import DEFAULT_PATH
from . import rangehint, startfile
from .layout import CFG_HOME, CFG_LOGIN, CFG_PATH, CFG_UID, MARKER_PREFIX, State

# Host variables that would mislead programs inside (the docker backend drops the same ones).
DROPPED = ("LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONHOME", "HOSTNAME")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..envconfig import EnvConfig


def root_search_path(cfg: EnvConfig) -> str:
    """The root's own PATH (the env's bin removed): where shims find their programs inside."""
    bin_dir = cfg.env_dir + "/bin"
    full = cfg.get(CFG_PATH) or f"{bin_dir}:{DEFAULT_PATH}"
    return ":".join(d for d in full.split(":") if d != bin_dir)


def nsenter_flags(ids: tuple[int, int] | None, pid: bool = False) -> list[str]:
    """``pid`` (--pid): nsenter then forks the program into the holder's PID namespace and waits."""
    own_pid = ["-p"] if pid else []
    if os.geteuid() != 0:
        return ["-U", "--preserve-credentials", "-m", "-u", "-i", *own_pid]
    flags = ["-m", "-u", "-i", *own_pid]
    if ids is not None:
        flags += ["-S", str(ids[0]), "-G", str(ids[1])]
    return flags


def _cwd_maps(cfg: EnvConfig) -> list[tuple[str, str]]:
    """(host, inside) directories, in the order a physical $PWD is tried against them, as
    ``inside.map_cwd`` does: the deepest mapping wins, a --directory over the project at equal depth."""
    # backends.mapping: only a create or reset writes the fragments, not a cold start (coldstart.py)
    from ..mapping import DirectoryMapping

    project = os.path.dirname(cfg.env_dir)
    maps = [(project, project)]
    for spec in cfg.get_list("directory"):
        d = DirectoryMapping.parse(spec, check_exists=False)
        maps.append((d.host, d.inside))
    order = sorted(range(len(maps)), key=lambda i: (-len(maps[i][0]), -i))
    return [maps[i] for i in order if maps[i][0] != "/"]


def _cwd_cases(cfg: EnvConfig) -> str:
    """sh ``case`` arms mapping $PWD (physical) to the directory inside (``_cwd_maps``); anything
    else is under /r, where the host's / is seen."""
    arms = []
    for host, inside in _cwd_maps(cfg):
        if host == inside:
            arms.append(f"    {q(host)} | {q(host)}/*) _vr_wd=$PWD ;;")
        else:
            arms.append(f"    {q(host)}) _vr_wd={q(inside)} ;;")
            arms.append(f"    {q(host)}/*) _vr_wd={q(inside.rstrip('/'))}${{PWD#{q(host)}}} ;;")
    arms.append("    /) _vr_wd=/r ;;")
    arms.append("    *) _vr_wd=/r$PWD ;;")
    return "\n".join(arms)


def _which(name: str) -> str | None:
    """shutil.which for a plain name (shutil imports bz2 and lzma: ~1.5 ms of every create)."""
    for directory in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if not directory.startswith("/"):  # the path is written into every shim: absolute only
            continue
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _watched(cfg: EnvConfig) -> bool:
    """Whether apt and dpkg must take the Python path: root inside, rootless (rangehint.py decides
    there whether the env lacks a range: one may be given later)."""
    return os.geteuid() != 0 and cfg.get(CFG_UID) == "0"


def host_fragment(cfg: EnvConfig, ids: tuple[int, int] | None) -> str | None:
    """The shims' fast path, or None when this machine has neither the compiled starter nor nsenter."""
    compiled = startfile.available()
    if compiled:  # it joins too, statically linked: half a millisecond less than nsenter
        join = f'{q(startfile.STARTER)} --join "$_vr_pid" "$_vr_wd" {_ids_arg(ids)}'
        enter = f'{join} --again "$0" "$_vr_prog" "$@"'
    else:
        nsenter = _which("nsenter")
        if nsenter is None:
            return None
        flags = " ".join(nsenter_flags(ids, cfg.get_bool("pid")))
        enter = f'{q(nsenter)} -t "$_vr_pid" {flags} -W "$_vr_wd" -- "$_vr_prog" "$@"'
    state = State(cfg.env_dir)
    login = cfg.get(CFG_LOGIN)
    if login:
        who = (
            f"USER={q(login)} LOGNAME={q(login)} HOME={q(cfg.get(CFG_HOME) or '/')}\nexport USER LOGNAME HOME"
        )
    else:
        who = f'[ -n "${{HOME+x}}" ] || {{ HOME={q(os.path.expanduser("~"))}; export HOME; }}'
    path = cfg.get(CFG_PATH) or f"{cfg.env_dir}/bin:{DEFAULT_PATH}"
    start = "_vr_live || return 0\n"
    tools = ""
    if _watched(cfg):
        tools = f"""\
# apt and dpkg take the Python path, which names a missing subordinate id range if they fail (rangehint.py).
case ${{_venvroot_program##*/}} in {" | ".join(rangehint.TOOLS)}) return 0 ;; esac
"""
    if compiled:
        steps = q(startfile.path(state))
        start = f"""\
# Not running: the compiled starter starts it when it can (startfile.py), else the Python path does.
_vr_live || {{ [ -e {steps} ] && {q(startfile.STARTER)} {steps} 2>/dev/null && _vr_live; }} || return 0
"""
    return f"""\
# venvroot ns: the shims' fast way into the running environment {cfg.env_dir}.
# Sourced by every shim; it execs the program in the env's namespaces (the compiled starter's
# --join, or nsenter), or returns
# (namespaces not running and not startable here, or a case it does not handle) and the shim's
# Python path takes over.
# Automatic-snapshot rules (`venvroot snapshot configure`) are the Python path's to apply.
[ ! -e {q(envstate.auto_dir(cfg.env_dir))} ] || return 0
{tools}_vr_live() {{
    {{ read -r _vr_pid _vr_tok < {q(state.holder)}; }} 2>/dev/null &&
        [ -e "/proc/$_vr_pid/root"{q(state.hidden)}"/{MARKER_PREFIX}$_vr_tok" ]
}}
{start}# The physical current directory (a deleted one is left to the Python path, which says so).
cd -P . 2>/dev/null && [ "$PWD" -ef . ] || return 0
case $PWD in
{_cwd_cases(cfg)}
esac
[ -d "/proc/$_vr_pid/root$_vr_wd" ] || return 0
case $_venvroot_program in
*/*) _vr_prog=$_venvroot_program ;;
*)
    _vr_prog=
    _vr_ifs=$IFS
    IFS=:
    set -f
    _vr_dirs={q(root_search_path(cfg))}
    for _vr_d in $_vr_dirs; do
        _vr_here=/proc/$_vr_pid/root$_vr_d/$_venvroot_program
        if [ -f "$_vr_here" ] && [ -x "$_vr_here" ]; then
            _vr_prog=$_vr_d/$_venvroot_program
            break
        fi
    done
    IFS=$_vr_ifs
    set +f
    [ -n "$_vr_prog" ] || return 0
    ;;
esac
unset {" ".join(DROPPED)}
{who}
PATH={q(path)}
PWD=$_vr_wd
export PATH PWD
exec {enter}
"""


def _ids_arg(ids: tuple[int, int] | None) -> str:
    return "-" if os.geteuid() != 0 or ids is None else f"{ids[0]}:{ids[1]}"


def shim_config(cfg: EnvConfig, ids: tuple[int, int] | None) -> bytes:
    """``<env>/.venvroot/shim.cfg``: the host fragment's steps for the compiled shim (shim.c)."""
    state = State(cfg.env_dir)
    steps: list[tuple[str, ...]] = [
        ("env", cfg.env_dir),
        ("auto", envstate.auto_dir(cfg.env_dir)),
        ("holder", state.holder),
        ("hidden", state.hidden),
        ("start", startfile.STARTER, startfile.path(state)),
        *(("map", host, inside) for host, inside in _cwd_maps(cfg)),
        ("search", *root_search_path(cfg).split(":")),
        ("unset", *DROPPED),
    ]
    login = cfg.get(CFG_LOGIN)
    if login:
        steps += [
            ("set", "USER", login),
            ("set", "LOGNAME", login),
            ("set", "HOME", cfg.get(CFG_HOME) or "/"),
        ]
    else:
        steps.append(("default", "HOME", os.path.expanduser("~")))
    steps.append(("set", "PATH", cfg.get(CFG_PATH) or f"{cfg.env_dir}/bin:{DEFAULT_PATH}"))
    steps.append(("ids", _ids_arg(ids)))
    steps.append(("python", sys.executable, "-I", "-S", ENTRY, cfg.env_dir))
    if _watched(cfg):
        steps.append(("python-for", *rangehint.TOOLS))
    tokens = ["venvroot-shim 1"]
    for name, *args in steps:
        tokens += [name, str(len(args)), *args]
    return b"".join(t.encode() + b"\0" for t in tokens)


def _is_static(path: str) -> bool:
    """Whether the ELF program ``path`` has no PT_INTERP header: it runs in a root without a C library."""
    # struct: only a create checks the starter, not a cold start (coldstart.py imports this module)
    import struct

    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
        if head[:5] != b"\x7fELF\x02" or head[5] != 1:  # 64-bit, little-endian: what setup.py builds here
            return False
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        types = [struct.unpack_from("<I", head, phoff + i * phentsize)[0] for i in range(phnum)]
    except (OSError, struct.error):
        return False
    return 3 not in types  # PT_INTERP


def write_compiled_shim(cfg: EnvConfig, ids: tuple[int, int] | None) -> bool:
    """Give the env its compiled shim: shim.cfg, and ``bin/.venvroot-shim``, a hard link to the
    installed static starter (or a copy where it cannot be linked: another filesystem, a file this
    user does not own). Returns False, leaving neither, where there is no static starter."""
    state = State(cfg.env_dir)
    if not startfile.available() or not _is_static(startfile.STARTER):
        for name in (state.shim_binary, state.shim_cfg):
            if os.path.lexists(name):
                os.unlink(name)
        return False
    tmp = f"{state.shim_binary}.tmp"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        os.link(startfile.STARTER, tmp)
    except OSError:
        with open(startfile.STARTER, "rb") as src, open(tmp, "wb") as dst:
            dst.write(src.read())
        os.chmod(tmp, 0o755)
    os.replace(tmp, state.shim_binary)  # atomic: a shim running now keeps the old one
    with open(state.shim_cfg + ".tmp", "wb") as handle:
        handle.write(shim_config(cfg, ids))
    os.replace(state.shim_cfg + ".tmp", state.shim_cfg)
    return True


def inside_fragment(cfg: EnvConfig) -> str:
    """What a shim runs when it is run inside the root: the program itself."""
    return f"""\
# venvroot ns, inside the environment: run the program itself, never enter the env again.
case $_venvroot_program in
*/*) exec "$_venvroot_program" "$@" ;;
esac
_vr_dirs={q(root_search_path(cfg))}
IFS=:
set -f
for _vr_d in $_vr_dirs; do
    if [ -f "$_vr_d/$_venvroot_program" ] && [ -x "$_vr_d/$_venvroot_program" ]; then
        exec "$_vr_d/$_venvroot_program" "$@"
    fi
done
printf 'venvroot: %s: not found on the PATH inside the environment\\n' "$_venvroot_program" >&2
exit 127
"""


def session_script(cfg: EnvConfig) -> str:
    """``bin/.venvroot-session start|stop SHELL_PID``, as the activate scripts call it."""
    state = State(cfg.env_dir)
    python = [sys.executable, "-I", "-S", ENTRY, "--manage", cfg.env_dir, "session"]
    start = stop = ""
    if not cfg.get_list("on-activate"):
        frozen = os.path.join(envstate.store_dir(cfg.env_dir), envstate.FROZEN_FILE)
        start = f"""
    # A frozen env (`venvroot freeze`): Python decides whether the session starts afresh.
    [ ! -e {q(frozen)} ] || exec {" ".join(q(a) for a in python)} "$@"
    # Register the shell: its pid and start time (field 22 of /proc/PID/stat).
    {{ read -r _vr_stat < "/proc/$2/stat"; }} 2>/dev/null || {{
        echo "venvroot: no process $2 to attach the session to" >&2
        exit 1
    }}
    _vr_shell=$2
    _vr_stat=${{_vr_stat##*) }}
    set -f
    set -- $_vr_stat
    {{ printf '%s\\n' "${{20}}" > {q(state.shells)}/"$_vr_shell"; }} || exit 1
    exit 0"""
    if not cfg.get_list("on-deactivate"):
        # No record: nothing runs. A record, live or left by a killed holder (whose programs may
        # still run, survivors.py): Python stops it.
        stop = f"""
    [ -e {q(state.holder)} ] || exit 0"""
    return f"""\
#!/bin/sh
# venvroot: `session` for the environment {cfg.env_dir}. Called by the activate scripts as
# `start|stop SHELL_PID`. Registering a shell needs no Python: the environment's namespaces start
# with the first program run in it, and Python is needed only to run hooks or stop them.
case ${{1-}}:$# in
start:2)
    case $2 in *[!0-9]* | '') echo "venvroot: bad shell pid $2" >&2; exit 2 ;; esac{start}
    ;;
stop:2)
    case $2 in *[!0-9]* | '') echo "venvroot: bad shell pid $2" >&2; exit 2 ;; esac
    {{ : > {q(state.shells)}/"$2"; }} 2>/dev/null{stop}
    ;;
esac
exec {" ".join(q(a) for a in python)} "$@"
"""
