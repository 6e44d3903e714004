"""Host IDE tooling finds and uses a venvroot env: an IDE-style discovery (tests/ide_discovery.py)
sees it with true host paths, and a kernel registered from inside with `ipykernel install --user`
starts from the host's jupyter_client (its connection file in the host's /tmp, which the env sees
copy-on-write) and runs inside the env's root."""

from __future__ import annotations

import pwd
import tempfile
import uuid
from pathlib import Path
from types import ModuleType

import pytest
from conftest import missing
from host_envs import destroy, inside, make_env, run
from ide_discovery import discover
from wheels import build_wheel


@pytest.mark.parametrize("as_test_user", [False, True], ids=["invoker", "unprivileged"])
def test_ide_discovery_finds_the_env_with_host_paths(
    tmp_path: Path, shared_tmp: Path, unprivileged_user: pwd.struct_passwd, as_test_user: bool
) -> None:
    user = unprivileged_user if as_test_user else None
    workspace = shared_tmp if user else tmp_path
    env = make_env(workspace / ".venv", "--prompt", "myproj", user=user)
    try:
        wheel = build_wheel(workspace, "idepkg", "idepkg", "print(sys.prefix)")
        run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", str(wheel)], user=user)
        (found,) = discover(workspace)
        assert found["problems"] == [], found["problems"]
        assert (found["env"], found["name"]) == (env, "myproj")
        assert found["version"] == inside(env, "import platform; print(platform.python_version())")
        # What the IDE indexes for completion is on the host where the interpreter says it is.
        (site,) = found["site_packages"]
        assert (Path(site) / "idepkg" / "__init__.py").is_file()
    finally:
        destroy(env, user)


def test_ipykernel_installed_from_inside_starts_from_a_host_jupyter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = _jupyter_client()
    # Jupyter's per-user data directory (kernel specs, runtime connection files): the env maps it
    # read-write, or `ipykernel install --user` would write the spec to the env's own layer.
    data = tmp_path / "jupyter-data"
    data.mkdir()
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    env = make_env(tmp_path / "work" / ".venv", "--directory", f"{data}:rw")
    name = f"venvroot-{uuid.uuid4().hex[:8]}"
    probe = f"/etc/venvroot-kernel-{name}"
    try:
        python = str(env / "bin" / "python")
        run([python, "-m", "pip", "install", "-q", "ipykernel"])  # from the package index
        run(
            [python, "-m", "ipykernel", "install", "--user", "--name", name],
            env={"JUPYTER_DATA_DIR": str(data)},
        )
        assert (data / "kernels" / name / "kernel.json").is_file()
        code = f"import sys; open({probe!r}, 'w').write('x'); print(sys.prefix)"
        assert _run_in_kernel(manager, name, code) == str(env)
        assert not Path(probe).exists(), "the kernel wrote to the host's /etc"
        assert inside(env, f"print(open({probe!r}).read())") == "x"
        assert list(env.glob(f".venvroot/ns/**/{Path(probe).name}")), "not in the env's layer"
    finally:
        destroy(env)


def _jupyter_client() -> ModuleType:
    try:
        from jupyter_client import manager
    except ImportError:
        missing("jupyter_client is not installed in the test venv (pip install '.[test]')")
    return manager


def _run_in_kernel(manager: ModuleType, kernel_name: str, code: str) -> str:
    """Start the kernel as jupyter_client's KernelManager does by default (its connection file in
    the host's /tmp), run ``code`` and return what it printed."""
    km = manager.KernelManager(kernel_name=kernel_name)
    km.start_kernel()
    assert km.connection_file.startswith(("/tmp/", str(Path(tempfile.gettempdir())))), km.connection_file
    client = km.client()
    client.start_channels()
    printed: list[str] = []
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(
            code,
            timeout=60,
            output_hook=lambda m: printed.append(m["content"]["text"]) if m["msg_type"] == "stream" else None,
        )
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)
    return "".join(printed).strip()
