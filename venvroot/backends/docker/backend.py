"""Management side of the ``docker`` backend, through the docker SDK.

Create, in order: check the daemon and the image (pulling it if it is not local); make a setup
container from the image, merge the env's user into its ``/etc/passwd`` and ``/etc/group`` and
make its home (archive API, no tool of the image's), and commit that as the env's *base image*;
create the env's container from the base image with the env's mounts, keeping its spec in the
state directory so that a shim can recreate it after ``reset``; start it and, when the image has
a Python, make the env a Python virtual environment with it. Everything made outside the env
directory carries the label ``io.venvroot.env=<path>``, which is how ``destroy`` finds it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import stat
import tempfile
from functools import cached_property
from typing import Any

from ...errors import UsageError, VenvrootError
from .. import envstate, users
from ..base import Backend as BaseBackend
from ..envconfig import EnvConfig
from ..inside import DEFAULT_PATH
from ..mapping import UserSpec
from . import agentpath, baseimage, endpoint, images, layout, mounts, pull, session, transfer
from .container import ensure_running
from .engine import Connection, encode, error_message, use
from .run import Usage, live_sessions, no_shell
from .transfer import remote_programs, remove_volumes

# The main process without the agent: waits on a stdin that never delivers, leaves on SIGTERM.
KEEPER = 'trap "exit 0" TERM INT HUP; while read -r _; do :; done'
# Exit 0 when $1 (a name looked up on PATH, or a path) is an executable file.
FIND_PROGRAM = (
    'case $1 in */*) [ -f "$1" ] && [ -x "$1" ]; exit ;; esac; set -f; IFS=:; '
    'for d in $PATH; do [ -f "${d:-.}/$1" ] && [ -x "${d:-.}/$1" ] && exit 0; done; exit 1'
)


class Backend(BaseBackend):
    name = "docker"
    uses_session = True
    python_extra_paths = layout.PYTHON_EXTRA_PATHS

    @property
    def env_dir(self) -> str:
        return self.settings.path

    @property
    def state(self) -> layout.StateDir:
        return layout.StateDir(self.env_dir)

    @property
    def container(self) -> str:
        return self.settings.extra.get(layout.CFG_CONTAINER) or layout.container_name(self.env_dir)

    @cached_property
    def endpoint(self) -> endpoint.Endpoint:
        """The env's engine: the one recorded at create, else (creating) the one the docker CLI
        would use now. Every Engine API call of this process goes there."""
        found = endpoint.recorded(self.settings.extra)
        if found is None:
            found = endpoint.resolve()
            found.record(self.settings.extra)
        use(found.target)
        return found

    @property
    def remote(self) -> bool:
        """Whether the engine cannot see this machine's files: nothing is bound from here then."""
        recorded = self.settings.extra.get(layout.CFG_REMOTE)
        if recorded:
            return recorded == "true"
        mapping = self.settings.mapping
        if mapping not in (None, "remote", "local"):
            raise UsageError(
                f"mapping {mapping!r}: expected 'remote', 'local' or None (decided by the engine)"
            )
        return mapping == "remote" or (mapping is None and not self.endpoint.is_local())

    @cached_property
    def client(self) -> Any:
        ping(self.endpoint)  # the stdlib client's messages are the clear ones
        # the SDK's client (threading, tempfile): only for the calls that need the SDK
        from .sdkclient import make_client

        return make_client(self.endpoint.target)

    # -- create ----------------------------------------------------------------------------
    def preflight(self) -> None:
        mounts.check_project(self.env_dir)
        UserSpec.parse(self.settings.user)
        mounts.container_mounts(self.env_dir, self.settings.directory)  # checks --directory specs
        self._image  # noqa: B018 - resolves (or pulls) the image, or says why it cannot
        found = images.find_container(self)
        if found is not None and found.labels.get(layout.LABEL_ENV) != self.env_dir:
            raise VenvrootError(
                f"a container named {self.container} exists and is not this environment's "
                f"(it belongs to {found.labels.get(layout.LABEL_ENV) or 'nobody known'}); remove it"
            )

    @cached_property
    def _image(self) -> Any:
        # the docker SDK (~120 ms): only for the calls that need it
        import docker

        ref = self.settings.image
        if not ref:
            raise UsageError("the docker backend needs an image: add --image IMAGE")
        try:
            return self.client.images.get(ref)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise VenvrootError(f"cannot look up image {ref}: {images.explain(exc)}") from None

        try:
            pull.pull(self.client, ref)
            return self.client.images.get(ref)
        except (docker.errors.APIError, pull.PullError) as exc:
            raise VenvrootError(
                f"image {ref} is not on this machine and pulling it failed ({images.explain(exc)}); "
                f"build it or `docker pull {ref}` first"
            ) from None

    def create(self) -> None:
        state = self.state
        os.makedirs(state.inner_bin)
        os.makedirs(state.sessions)
        for path in (state.lock, os.path.join(state.sessions, ".lock"), state.watcher_lock):
            open(path, "a").close()
        images.remove_containers(self)  # a leftover of an env that once lived at this path
        account, base = baseimage.make(self)
        with open(state.container_spec, "wb") as handle:
            handle.write(encode(self._container_spec(base, account)))
        extra = self.settings.extra
        extra[layout.CFG_CONTAINER] = self.container
        extra[layout.CFG_REMOTE] = "true" if self.remote else "false"
        extra["docker-image-id"] = self._image.id
        extra["docker-base-image"] = base
        image_path = baseimage.env_value(self._image.attrs, "PATH") or DEFAULT_PATH
        extra[layout.CFG_PATH] = f"{self.env_dir}/bin:{image_path}"
        if not UserSpec.parse(self.settings.user).is_caller:
            extra[layout.CFG_USER] = account.user_spec
            extra[layout.CFG_LOGIN] = account.name
            extra[layout.CFG_HOME] = account.home
        if not self.remote:  # the agent's socket in the env directory cannot cross machines
            agentpath.write_fragment(self._cfg())
        self._use()
        self._setup_python()

    def labels(self) -> dict[str, str]:
        return {
            layout.LABEL_ENV: self.env_dir,
            layout.LABEL_OWNER: baseimage.login_name(),
            layout.LABEL_IMAGE: self.settings.image or "",
        }

    def _container_spec(self, base: str, account: users.Account) -> dict:
        short, _, domain = (self.settings.hostname or os.uname().nodename).partition(".")
        caller = UserSpec.parse(self.settings.user).is_caller
        if self.remote:
            labels = {layout.LABEL_ENV: self.env_dir, layout.LABEL_OWNER: baseimage.login_name()}
            binds = mounts.remote_mounts(
                self.env_dir, self.settings.directory, self.container, account.home, labels
            )
        else:
            binds = mounts.container_mounts(self.env_dir, self.settings.directory)
        host_config: dict[str, Any] = {
            "Mounts": binds,
            "Init": True,  # reaps what programs leave behind, passes SIGTERM to the keeper
            "RestartPolicy": {"Name": "no"},
        }
        if caller and account.groups:
            host_config["GroupAdd"] = [str(gid) for _name, gid in account.groups]
        spec = {  # the keeper: main process of a container made without the agent (no C compiler)
            "Image": base,
            "Entrypoint": ["/bin/sh", "-c", KEEPER],
            "Cmd": None,
            "OpenStdin": True,
            "StdinOnce": False,
            "Tty": False,
            "WorkingDir": "/",
            "Hostname": short,
            "Domainname": domain,
            "Labels": self.labels() | {layout.LABEL_ROLE: "container"},
            "HostConfig": host_config,
        }
        if self.remote:
            return spec
        return agentpath.with_agent(spec, self.state, account, caller, self.settings.persistent)

    def _setup_python(self) -> None:
        """Make the env a Python virtual environment with the image's interpreter, if it has one."""
        settings = self.settings
        wanted = settings.python
        names = [*settings.try_first_with, *([wanted] if wanted else ["python3", "python"])]
        found = next((py for py in names if self.has_program(py)), None)
        if found is None:
            if wanted:
                raise UsageError(
                    f"-p {wanted}: no such interpreter in the image {self.settings.image}; give one it has"
                )
            return
        venv = [found, "-m", "venv", *(["--system-site-packages"] if settings.system_site_packages else [])]
        code, err = 1, "ensurepip"
        if settings.pip != "none":
            code, _out, err = self._capture([*venv, self.env_dir])
        if code and "ensurepip" in err:  # --without-pip, or Debian without python3-venv's ensurepip
            code, _out, err = self._capture([*venv, "--without-pip", self.env_dir])
        if code:
            last = err.strip().splitlines()[-1] if err.strip() else f"exit status {code}"
            raise VenvrootError(f"making the Python virtual environment with {found} failed: {last}")

    # -- running things inside during management -------------------------------------------
    def _cfg(self) -> EnvConfig:
        return self.settings.to_envconfig()

    def _use(self) -> None:
        """Have the container running for this process; when the process ends, stop it again
        unless it is persistent or an activated shell uses it (the shims' protocol)."""
        if getattr(self, "_usage", None) is None:
            self._usage = Usage(self.state, persistent=self.settings.persistent)
            atexit.register(self._release)
        conn = Connection(self.endpoint.target)
        try:
            ensure_running(conn, self.container, self.state)
        except VenvrootError as exc:
            raise VenvrootError(f"{exc}{_hint_no_shell(str(exc), self.settings.image)}") from None
        finally:
            conn.close()

    def _release(self) -> None:
        usage: Usage | None = self._usage
        self._usage = None  # type: ignore[assignment]
        if usage is not None:
            with contextlib.suppress(VenvrootError):  # e.g. destroyed meanwhile
                usage.release(self.container)

    def _capture(self, argv: list[str]) -> tuple[int, str, str]:
        self._use()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            code = session.run_inside(self._cfg(), argv, out.fileno(), err.fileno(), cwd=self.env_dir)
            out.seek(0)
            err.seek(0)
            return code, out.read().decode(errors="replace"), err.read().decode(errors="replace")

    def has_program(self, program: str) -> bool:
        code, out, err = self._capture(["/bin/sh", "-c", FIND_PROGRAM, "venvroot", program])
        if code in (126, 127) and '"/bin/sh"' in out + err:  # the engine could not exec the shell
            raise VenvrootError(no_shell(self.container))
        return code == 0

    def programs_to_link(self) -> list[str]:
        """The env's own programs (the Python venv's ``bin``: python, pip, console scripts)."""
        if self.remote:
            return remote_programs(self.client, self.container, os.path.join(self.env_dir, "bin"))
        state = self.state
        try:
            mtime = os.stat(state.inner_bin).st_mtime_ns
            names = sorted(os.listdir(state.inner_bin))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.startswith(("activate", "Activate", ".")):
                continue
            # A symlink points into the container (python -> /usr/bin/python3): take it as it is.
            st = os.lstat(os.path.join(state.inner_bin, name))
            if stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and st.st_mode & 0o111):
                found.append(name)
        with open(state.synced, "w", encoding="ascii") as handle:
            handle.write(f"{mtime}\n")
        return found

    def transfer(self, direction: str, paths: list[str]) -> None:
        """``venvroot push``/``pull``: copy files between this machine and the env's volumes."""
        if not self.remote:
            raise UsageError(
                f"venvroot {direction}: {self.env_dir} uses bind mounts (its engine sees this machine's "
                "files), so there is nothing to copy"
            )

        self._use()
        maps = mounts.transfer_maps(self.env_dir, self.settings.directory)
        transfer.copy(self.client, self.container, self.env_dir, maps, direction, paths)

    # -- sessions --------------------------------------------------------------------------
    def session_start(self, shell_pid: int) -> None:
        session.start(self._cfg(), shell_pid)

    def session_stop(self, shell_pid: int) -> None:
        session.stop(self._cfg(), shell_pid)

    # -- reset, destroy, info --------------------------------------------------------------
    def reset(self) -> None:
        """Remove the container (a shim recreates it on next use) from the base image, or from the
        frozen base when the env is frozen. If the base image is gone, rebuild it from the original
        image."""
        # the docker SDK (~120 ms): only for the calls that need it
        import docker

        images.remove_containers(self)
        frozen = envstate.frozen_dir(self.env_dir)
        if frozen is not None:
            found = envstate.Snapshot.load(frozen)
            if found is not None:
                self.restore_root(found.path, found.facts)
                return
        base = self.settings.extra.get("docker-base-image", "")
        try:
            self.client.images.get(base)
        except (docker.errors.ImageNotFound, docker.errors.NullResource):
            account, base = baseimage.make(self)
            with open(self.state.container_spec, "wb") as handle:
                handle.write(encode(self._container_spec(base, account)))
            self.settings.extra["docker-base-image"] = base
            self.settings.save()
        images.use_image(self, base)

    def destroy(self) -> None:
        """Remove the env's containers, its snapshots and every image it made."""
        images.remove_containers(self)

        remove_volumes(self.client, self.env_dir)
        envstate.remove_all(self.env_dir)
        images.remove_all(self)

    # -- snapshots: the container's file system, committed as an image (images.py) ------------
    def snapshot_root(self, dest: str, snap_id: str, previous: str | None) -> dict[str, str]:
        return images.snapshot_root(self, dest, snap_id, previous)

    def restore_root(self, src: str, facts: dict[str, str]) -> None:
        images.restore_root(self, src, facts)

    def drop_root_snapshot(self, src: str, facts: dict[str, str]) -> None:
        images.drop_root_snapshot(self, src, facts)

    def freeze_root(self, src: str, facts: dict[str, str]) -> None:
        """The snapshot's image becomes the one the container is made from; the container goes
        when the last session ends (or the next one starts, for a persistent env)."""
        images.use_image(self, facts["docker-image"])

    def unfreeze_root(self, src: str, facts: dict[str, str]) -> None:
        """Nothing to undo: the container keeps its state and now keeps it past the session."""

    def info(self) -> dict[str, str]:
        facts = {
            "engine": self.endpoint.describe(),
            "mappings": "volumes on the engine (venvroot push/pull)" if self.remote else "bind mounts",
            "container": self.container,
        }
        try:
            found = images.find_container(self)
        except VenvrootError as exc:
            facts["container state"] = f"unknown ({exc})"
            return facts
        facts["container state"] = found.status if found is not None else "absent (made on next use)"
        if self.settings.extra.get("docker-base-image"):
            facts["base image"] = self.settings.extra["docker-base-image"][:19]
        facts["sessions"] = str(len(live_sessions(self.state)))
        if self.remote:  # the env's Python is in its volume on the engine
            has = "python" in remote_programs(self.client, self.container, os.path.join(self.env_dir, "bin"))
            facts["env python"] = "yes (in its volume on the engine)" if has else "no"
        else:
            facts["env python"] = "yes" if os.path.exists(os.path.join(self.env_dir, "pyvenv.cfg")) else "no"
        return facts


def ping(where: endpoint.Endpoint) -> None:
    with Connection(where.target) as conn:
        status, data = conn.request("GET", "/_ping")
    if status != 200:
        raise VenvrootError(
            f"the Docker daemon at {conn.display} does not answer properly: {error_message(data) or status}"
        )


def _hint_no_shell(message: str, image: str | None) -> str:
    if "/bin/sh" in message and ("no such file" in message or "not found" in message):
        return f" (the image {image} has no /bin/sh, which venvroot's docker backend needs)"
    return ""
