"""An ns environment activated from a real interactive nu (pexpect), as root and as the
unprivileged user: the shims run inside the root, and deactivate ends the session and everything
started in it."""

from __future__ import annotations

from pathlib import Path

import pexpect
from ns_backend_helpers import (
    Project,
    bb_root_fixture,  # noqa: F401 - the bb_root fixture
    in_environment,
    processes_with,
    project_fixture,  # noqa: F401 - the project fixture
    wait_for,
)
from ns_helpers import Who, who_fixture  # noqa: F401 - the who fixture
from test_activators import Nushell, nu_program


class EnvNu(Nushell):
    """nu run as ``who`` in the project, with the user's own environment (not ``env -i``)."""

    def __init__(self, who: Who, cwd: Path, environ: dict[str, str]) -> None:
        argv = who.argv([nu_program(), "--no-config-file", "--no-history"])
        self.child = pexpect.spawn(
            argv[0], argv[1:], cwd=str(cwd), env=environ, encoding="utf-8", codec_errors="replace",
            dimensions=(40, 4000), timeout=60,
        )  # fmt: skip
        self.child.delaybeforesend = None
        self.expect_startup()
        self.run(self.setup())


def test_nu_activation_runs_shims_inside_and_deactivate_ends_the_session(
    project: Project, bb_root: Path
) -> None:
    env = project.create("env", "--root", bb_root, "--link", "sh")
    shell = EnvNu(project.who, project.path, project.environ)
    try:
        assert shell.activate(env)[0] == 0
        assert shell.var("VIRTUAL_ENV") == str(env)
        assert shell.run("^sh -c 'cat /etc/hostname'") == "busybox-root"  # through the shim
        shell.run("^sh -c 'sleep 4351 </dev/null >/dev/null 2>&1 &'")
        assert wait_for(lambda: bool(processes_with("sleep 4351")))
        assert in_environment(env)
        assert shell.run("deactivate") == ""
        assert processes_with("sleep 4351") == []  # gone when deactivate returns
        assert in_environment(env) == []
        assert shell.var("VIRTUAL_ENV") is None
    finally:
        shell.close()
