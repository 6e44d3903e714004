import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, find_packages, setup
from setuptools.command.build_py import build_py

STARTER = "venvroot/backends/ns/starter"
AGENT = "venvroot/backends/docker/agent"
# The starter is also every ns env's compiled shim (shim.c): one static program.
SOURCES = {
    STARTER: [
        STARTER + ".c",
        *(f"venvroot/backends/ns/{unit}.c" for unit in ("replay", "userns", "shim", "join", "steps")),
    ],
    AGENT: [f"{AGENT}.c", f"{AGENT}_serve.c", f"{AGENT}_run.c", f"{AGENT}_msg.c"],
}


class BuildWithStarter(build_py):
    """Also compile the ns backend's starter (starter.c) and the docker backend's agent (agent.c)
    when a C compiler is at hand. Without them venvroot works the same, slower: ns shims start an
    environment's namespaces through Python only, docker shims go through the Engine API."""

    def run(self) -> None:
        super().run()
        editable = getattr(self, "editable_mode", False)
        compiler = shutil.which(os.environ.get("CC", "cc"))
        if compiler is None:
            print("venvroot: no C compiler (cc): the compiled starter and agent are left out")
            return
        musl = None if "CC" in os.environ else self.musl(compiler)
        for program, static_only in ((STARTER, False), (AGENT, True)):
            target = Path(program if editable else os.path.join(self.build_lib, program))
            target.parent.mkdir(parents=True, exist_ok=True)
            command = ["-O2", "-Wall", "-pthread", "-o", str(target), *SOURCES[program]]
            # Static when the C library allows it: no dynamic loading, a cheaper fork and exec. The
            # agent must be: it runs inside images that have no C library (busybox, distroless).
            # musl first: its static start costs a third of glibc's, on every shim call.
            statics = [[*musl, *command, "-static"]] if musl else []
            statics.append([compiler, *command, "-static"])
            if any(subprocess.run(c, stderr=subprocess.DEVNULL).returncode == 0 for c in statics):
                continue
            if not static_only and subprocess.run([compiler, *command]).returncode == 0:
                continue
            print(f"venvroot: {compiler} {' '.join(command)} failed: {os.path.basename(program)} is left out")

    def musl(self, compiler: str) -> list[str] | None:
        """``musl-gcc`` (Debian's musl-tools) with the kernel's headers beside musl's own, which
        lack them: only linux/, asm/ and asm-generic/, never glibc's."""
        musl = shutil.which("musl-gcc")
        if musl is None or not os.path.isdir("/usr/include/linux"):
            return None
        machine = subprocess.run([compiler, "-dumpmachine"], capture_output=True, text=True).stdout.strip()
        headers = Path(self.build_lib).parent / "kernel-headers"
        headers.mkdir(parents=True, exist_ok=True)
        for name, source in (("linux", "linux"), ("asm-generic", "asm-generic"), ("asm", f"{machine}/asm")):
            if not (headers / name).exists():
                (headers / name).symlink_to(f"/usr/include/{source}")
        return [musl, "-isystem", str(headers)]


class PlatformDistribution(Distribution):
    def has_ext_modules(self) -> bool:  # a compiled program inside: the wheel is this platform's
        return True


# Host tools the tests run against real envs (tests/test_host_tools.py, tests/test_host_ide.py).
HOST_TOOLS = ["uv", "poetry", "pipx", "pre-commit", "jupyter_client"]

version: dict[str, str] = {}
exec(Path("venvroot/version.py").read_text(), version)

setup(
    name="venvroot",
    version=version["__version__"],
    description="virtualenv for whole systems: isolated roots behind activate scripts and PATH shims",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["venvroot", "venvroot.*"]),
    include_package_data=True,
    package_data={"venvroot": ["activators/activate*", "shims/*.tmpl", "py.typed"]},
    install_requires=[
        "virtualenv>=20",
        "docker>=6",
        "jinja2>=3",
        "shellingham>=1.4",
        "tomli>=1.1; python_version < '3.11'",
    ],
    extras_require={
        "test": ["pytest>=7", "pexpect>=4.8", "ruff", "mypy", "xonsh", "wheel", "setuptools>=61", *HOST_TOOLS]
        # the virtualenv plugin's tests drive the real tools
        + ["tox>=4", "nox", "hatch"]
    },
    entry_points={
        "console_scripts": ["venvroot = venvroot.cli.main:main"],
        "virtualenv.create": ["venvroot = venvroot.virtualenv_plugin:VenvrootCreator"],
    },
    cmdclass={"build_py": BuildWithStarter},
    distclass=PlatformDistribution,
    classifiers=[
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Environment :: Console",
    ],
)
