"""Management side of the ``ns`` backend: create, sessions, reset, destroy, info.

Create, in order: check the root source and the mappings (nothing written yet); make the state
directory; get the pristine lower layer (the host, the directory, or a tarball, image or debootstrap
root unpacked once) and, for the host, plan and probe its copy-on-write view; settle who runs
inside (the caller, root, or a user made inside: passwd/group and home in the writable layer); make
every mount point; write the shims' sh fast path and the session hook; and, when the root has a
Python, make the env a Python virtual environment with it (pyenv.py).
"""

from __future__ import annotations

import contextlib
import os
import stat

from ...errors import UsageError, VenvrootError
from ...shims import writer
from .. import envstate, inside
from ..activations import process_start_time
from ..base import Backend as BaseBackend
from ..envconfig import EnvConfig
from ..inside import DEFAULT_PATH
from ..mapping import DirectoryMapping, UserSpec
from . import (
    accounts,
    coldstart,
    enter,
    fastpath,
    holder,
    hostview,
    mappedroot,
    mountplan,
    pidns,
    processes,
    sources,
    survivors,
)
from .caller import inside_environ, runner_ids, switch_ids
from .layout import (
    CFG_FALLBACKS,
    CFG_LOGIN,
    CFG_LOWER,
    CFG_PATH,
    CFG_PYTHON,
    CFG_SOURCE,
    State,
)  # fmt: skip
from .record import read_holder
from .removal import remove_tree
from .rootview import Layer, RootView

# A project directory that is one of these would put a host system directory over the root's own.
SYSTEM_DIRS = {
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
    "/sbin", "/sys", "/usr", "/var", "/r",
}  # fmt: skip


class Backend(BaseBackend):
    name = "ns"
    uses_session = True

    @property
    def env_dir(self) -> str:
        return self.settings.path

    @property
    def state(self) -> State:
        return State(self.env_dir)

    def cfg(self) -> EnvConfig:
        """The settings as the hot path reads them from venvroot.cfg (with the backend's facts)."""
        return self.settings.to_envconfig()

    # -- create ----------------------------------------------------------------------------
    def preflight(self) -> None:
        if sources.kind_of(self.settings.root) in ("directory", "tarball"):
            self.settings.root = os.path.abspath(self.settings.root or "")  # recorded as such
        UserSpec.parse(self.settings.user)
        if sources.kind_of(self.settings.root) == "debian":
            from . import debian  # debian (subprocess, shutil: ~9 ms): only for a debian:SUITE root

            debian.check(self.settings.root or "")
        project = os.path.dirname(self.env_dir)
        if project in SYSTEM_DIRS or project.startswith(("/usr/", "/proc/", "/sys/", "/dev/", "/r/")):
            raise UsageError(
                f"the env's project directory {project} would be mounted over the root's own {project}; "
                "put the environment in a project directory instead (e.g. ~/proj/.venv)"
            )
        targets = {project}
        for spec in self.settings.directory:
            d = DirectoryMapping.parse(spec)
            if d.host == d.inside == project:
                continue  # the project itself: mapped read-write already (see mountplan.mappings)
            if d.inside in targets or d.inside in ("/", "/r") or d.inside.startswith("/r/"):
                raise UsageError(
                    f"--directory {spec}: {d.inside} is already mapped (or is / or under /r); choose "
                    "another inside path"
                )
            targets.add(d.inside)

    def create(self) -> None:
        settings, state = self.settings, self.state
        for path in (state.base, state.shells):
            os.makedirs(path, exist_ok=True)
        open(state.lock, "a").close()
        kind = sources.kind_of(settings.root)
        extra = settings.extra
        extra[CFG_SOURCE] = kind
        root_path = DEFAULT_PATH
        if kind == "host":
            extra[CFG_LOWER] = "/"
        elif kind == "directory":
            extra[CFG_LOWER] = os.path.realpath(settings.root or "")
        else:
            os.makedirs(state.lower)
            inside = mappedroot.inside_ids(settings.user)  # whose files the caller's are
            if kind == "tarball":
                sources.unpack_tarball(os.path.abspath(settings.root or ""), state.lower, inside)
            elif kind == "debian":
                from . import debian  # debian (subprocess, shutil): only for a debian:SUITE root

                sources.unpack_tarball(debian.cached_root(settings.root or ""), state.lower, inside)
                root_path = debian.PATH
            else:
                config = sources.export_image(
                    (settings.root or "")[len(sources.DOCKER_PREFIX) :], state.lower, inside
                )
                root_path = sources.image_path(config) or DEFAULT_PATH
            extra[CFG_LOWER] = state.lower
        extra[CFG_PATH] = f"{self.env_dir}/bin:{root_path}"
        accounts.record(self.settings, self.view())
        self.prepare_root()
        cfg = self.cfg()
        self._write_scripts(cfg)
        self._make_python(cfg)

    def prepare_root(self) -> None:
        """Make the root ready to enter: the host view's skeleton and plan, the writable layer,
        the users, and every mount point. Run at create and after reset."""
        state, extra = self.state, self.settings.extra
        if extra[CFG_SOURCE] == "host":
            plan = hostview.make_plan(state)
            extra[CFG_FALLBACKS] = "; ".join(plan["fallbacks"])
        else:
            for path in (state.work, state.root):
                os.makedirs(path, exist_ok=True)
            if not os.path.isdir(state.upper):
                # The root directory takes its owner and mode from the upper directory.
                os.makedirs(state.upper)
                st = os.stat(extra.get(CFG_LOWER) or state.lower)
                os.chmod(state.upper, stat.S_IMODE(st.st_mode))
                if os.geteuid() == 0:
                    os.chown(state.upper, st.st_uid, st.st_gid)
        accounts.write_users(self.settings, self.view(), self.state)
        view = self.view()
        for point, kind in mountplan.mount_points(self.cfg()):
            problem = view.ensure(point, kind)
            if problem:
                raise VenvrootError(f"cannot prepare the environment's root: {problem}")

    def _write_scripts(self, cfg: EnvConfig) -> None:
        fragment = fastpath.host_fragment(cfg, switch_ids(cfg))
        if fragment is not None:
            with open(self.state.fastpath, "w", encoding="utf-8") as handle:
                handle.write(fragment)
        fastpath.write_compiled_shim(cfg, switch_ids(cfg))  # before any shim: they name it
        hook = f"{self.env_dir}/bin/{writer.SESSION_HOOK}"
        with open(hook, "w", encoding="utf-8") as handle:
            handle.write(fastpath.session_script(cfg))
        os.chmod(hook, 0o755)

    def _make_python(self, cfg: EnvConfig) -> None:
        from . import pyenv  # pyenv (json, ast, zipfile: ~14 ms): only a create makes the Python venv

        view = self.view()
        search = fastpath.root_search_path(cfg)
        python = pyenv.interpreter(view, search, self.settings.python, self.settings.try_first_with)
        if python is None:
            return
        ids = switch_ids(cfg)
        argv = [python, "-c", pyenv.MAKE_VENV, self.env_dir, pyenv.venv_options(self.settings)]
        code, out, err = self.capture(cfg, argv, as_root=ids is not None)
        if code:
            detail = (err.strip().splitlines() or [f"exit status {code}"])[-1]
            if self.settings.python:
                raise VenvrootError(f"making the Python virtual environment with {python} failed: {detail}")
            self.settings.extra[CFG_PYTHON] = f"none ({python} could not make a venv: {detail})"
            return
        report = pyenv.parse_report(out)
        pyenv.adopt_interpreter(self.env_dir, view, report, self.state.python)
        pip = None if self.settings.pip == "none" else pyenv.install_pip(self.env_dir, report)
        if ids is not None:
            pyenv.chown_venv(self.env_dir, ids)
        self.settings.extra[CFG_PYTHON] = report["full_version"] + (f", pip {pip}" if pip else ", no pip")

    def capture(self, cfg: EnvConfig, argv: list[str], as_root: bool = False) -> tuple[int, str, str]:
        """Run ``argv`` in fresh namespaces of the env (nothing else uses them at create) in the env
        directory; return (status, stdout, stderr)."""
        import tempfile  # tempfile (shutil, random: ~6 ms): only a create's venv step, not a session hook

        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            output = out.fileno(), err.fileno()
            code = coldstart.run_apart(cfg, self.state, argv, self.env_dir, as_root, output)
            out.seek(0)
            err.seek(0)
            return code, out.read().decode(errors="replace"), err.read().decode(errors="replace")

    # -- looking inside without entering -----------------------------------------------------
    def view(self) -> RootView:
        state, extra = self.state, self.settings.extra
        if extra.get(CFG_SOURCE, "host") != "host":
            return RootView([Layer("/", [state.upper, extra.get(CFG_LOWER) or state.lower], True)])
        plan = hostview.current_plan(state)
        layers = [Layer("/", [state.root], True)]
        if not hostview.tmp_overlaid(plan):
            layers.append(Layer("/tmp", [state.tmp], True))
        for entry in plan["entries"]:
            kind, dest = entry["kind"], entry["dest"]
            if kind == "overlay":
                layers.append(Layer(dest, [state.layer(dest)[0], dest], True))
            elif kind == "upper":
                layers.append(Layer(dest, [state.layer(dest)[0]], True))
            elif kind in ("rbind", "bind"):
                layers.append(Layer(dest, [dest], False))
            elif kind == "skeleton" and dest != "/":
                layers.append(Layer(dest, [state.root + dest], True))
        return RootView(layers)

    def has_program(self, program: str) -> bool:
        return self.view().find_program(program, fastpath.root_search_path(self.cfg())) is not None

    def programs_to_link(self) -> list[str]:
        """The env's interpreter names, as absolute paths (inside they are the interpreter itself,
        so a shim goes straight to it). pip and console scripts need no shim: see pyenv.py."""
        return [f"{self.env_dir}/bin/{name}" for name, _ in mountplan.python_binds(self.state)]

    # -- sessions --------------------------------------------------------------------------
    def session_start(self, shell_pid: int) -> None:
        from . import snapshot  # snapshot (filetree): not on a create's path

        state, cfg = self.state, self.cfg()
        started = process_start_time(shell_pid)
        if not started:
            raise VenvrootError(f"no process {shell_pid} to attach the session to")
        with holder.Lock(state).exclusive() as lock:
            holder.forget_dead_shells(state)
            first = not [p for p in holder.live_shells(state) if p != shell_pid]
            with open(os.path.join(state.shells, str(shell_pid)), "w", encoding="ascii") as handle:
                handle.write(started + "\n")
            if first:  # a frozen env starts every session from its frozen state (`venvroot freeze`)
                snapshot.discard_frozen_changes(self, lock)
            if first and cfg.get_list("on-activate"):
                self._hooks(cfg, "on-activate", lock)

    def session_stop(self, shell_pid: int) -> None:
        from . import snapshot  # snapshot (filetree): not on a create's path

        state, cfg = self.state, self.cfg()
        with holder.Lock(state).exclusive() as lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(state.shells, str(shell_pid)))
            holder.forget_dead_shells(state)
            if holder.live_shells(state):
                return
            if cfg.get_list("on-deactivate"):
                self._hooks(cfg, "on-deactivate", lock)
            if not cfg.get_bool("persistent"):
                holder.stop(state, lock)
                snapshot.discard_frozen_changes(self, lock)

    def _hooks(self, cfg: EnvConfig, key: str, lock: holder.Lock) -> None:
        """Run the on-activate/on-deactivate commands in order, each with ``sh -c``, as the env's
        user in the current directory (mapped), stdin empty. A failing one is reported and the
        next ones still run (as in the docker backend)."""
        state = self.state
        found = read_holder(state) or survivors.take_over(cfg, state) or _start(cfg, state)
        try:
            cwd = inside.map_cwd(self.env_dir, cfg.get_list("directory"), os.getcwd())
        except FileNotFoundError:
            cwd = os.path.dirname(self.env_dir)
        if not os.path.isdir(f"/proc/{found[0]}/root{cwd}"):
            cwd = os.path.dirname(self.env_dir)
        env = inside_environ(cfg, cwd)
        null = os.open("/dev/null", os.O_RDONLY)
        try:
            for command in cfg.get_list(key):
                code = enter.run_inside(
                    found[0], ["/bin/sh", "-c", command], cwd, env, switch_ids(cfg), stdin=null
                )
                if code:
                    os.write(
                        2, f"venvroot: {key} command {command!r} failed with exit status {code}\n".encode()
                    )
        finally:
            os.close(null)

    # -- reset, destroy, info --------------------------------------------------------------
    def reset(self) -> None:
        from . import snapshot  # snapshot (filetree): not on a create's path

        state = self.state
        with holder.Lock(state).exclusive() as lock:
            if snapshot.discard_frozen_changes(self, lock, prepare=True):
                return  # frozen: back to the frozen state
            holder.stop(state, lock)
            for path in (state.upper, state.work, state.layers, state.root, state.tmp, state.plan,
                         f"{state.base}/passwd", f"{state.base}/group"):  # fmt: skip
                remove_tree(path)
            self.prepare_root()
        self.settings.save()

    # -- snapshots (venvroot.snapshots; the writable layers, see snapshot.py) ------------------
    def snapshot_root(self, dest: str, snap_id: str, previous: str | None) -> dict[str, str]:
        from . import snapshot  # snapshot (filetree): not on a create's path

        return snapshot.take(self, dest, previous)

    def restore_root(self, src: str, facts: dict[str, str]) -> None:
        from . import snapshot  # snapshot (filetree): not on a create's path

        with holder.Lock(self.state).exclusive() as lock:
            snapshot.put_back(self, src, lock, prepare=True)

    def drop_root_snapshot(self, src: str, facts: dict[str, str]) -> None:
        """The copied layers go here: they may hold files of subordinate ids (removal.py)."""
        remove_tree(os.path.join(src, "root"))

    def freeze_root(self, src: str, facts: dict[str, str]) -> None:
        """Nothing to do now: sessions start and end with the frozen state (session_start/stop)."""

    def unfreeze_root(self, src: str, facts: dict[str, str]) -> None:
        """Nothing to undo: the writable layers are the env's own again from now on."""

    def destroy(self) -> None:
        state = self.state
        if os.path.exists(state.lock):
            with holder.Lock(state).exclusive() as lock:
                holder.stop(state, lock)
        elif os.path.isdir(state.hidden):
            for ns in processes.holding(state):
                processes.terminate(ns)
        remove_tree(state.base)
        remove_tree(envstate.store_dir(self.env_dir))  # copies may hold files of subordinate ids

    def info(self) -> dict[str, str]:
        state, extra = self.state, self.settings.extra
        kind = extra.get(CFG_SOURCE, "host")
        facts = {"root source": kind if kind == "host" else f"{kind} ({self.settings.root})"}
        if kind != "host":
            facts["lower layer"] = extra.get(CFG_LOWER, "")
        facts["writable layer"] = state.layers if kind == "host" else state.upper
        if kind == "host":
            try:
                plan = hostview.current_plan(state)
                fallbacks = plan["fallbacks"]
                overlays = sum(1 for e in plan["entries"] if e["kind"] in hostview.LAYERED)
                facts["overlaid directories"] = str(overlays)
            except (OSError, ValueError, KeyError) as exc:
                fallbacks = [f"(cannot plan the host view: {exc})"]
            facts["fallbacks"] = "; ".join(fallbacks) or "none"
        found = read_holder(state)
        facts["namespaces"] = f"running (holder pid {found[0]})" if found else "not running"
        facts["activated shells"] = str(len(holder.live_shells(state)))
        facts["env python"] = extra.get(CFG_PYTHON, "none (the root has no Python)")
        facts["shim fast path"] = (
            "compiled shim"
            if os.path.exists(state.shim_cfg)
            else "sh"
            if os.path.exists(state.fastpath)
            else "none (no nsenter)"
        )
        uid, _gid = runner_ids(self.cfg())
        facts["user inside"] = (
            extra.get(CFG_LOGIN) or f"the caller (uid {os.getuid() if uid is None else uid})"
        )
        return facts


def _start(cfg: EnvConfig, state: State) -> tuple[int, str]:
    """Start the env's namespaces from management (hooks): with --pid, its holder as init."""
    return (pidns.start if cfg.get_bool("pid") else coldstart.start)(cfg, state)
