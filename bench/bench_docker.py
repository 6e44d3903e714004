"""Time a docker environment's shims against a hand-typed ``docker exec`` on the same container.

    python bench/bench_docker.py [--runs N] [--image IMAGE]

Without --image a busybox-static image is built and imported (no registry needed). A persistent
env is made, so its container is running; then, round-robin in one loop (machine noise hits all
alike): a shim running ``true`` against ``docker exec CTR true``, and a shim running ``cat`` on
10 MB of stdin against ``docker exec -i CTR cat``. "lean init" is the shim's code with the
package ``__init__`` modules stubbed out (they import ``typing``), to show what that costs.
Medians and ratios are printed; the env and the image it built are removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAYLOAD = os.urandom(10 * 1024 * 1024)


def build_image() -> str:
    busybox = shutil.which("busybox")
    if busybox is None:
        sys.exit("bench_docker: busybox (busybox-static) is needed to build an image; or pass --image")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        for d in ("bin", "etc", "tmp", "root"):
            (root / d).mkdir(parents=True)
        shutil.copy2(busybox, root / "bin" / "busybox")
        for applet in ("sh", "true", "cat", "sleep", "stty"):
            (root / "bin" / applet).symlink_to("busybox")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\n")
        tag = "venvroot-bench/busybox:latest"
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(["docker", "import", "-", tag], stdin=tar.stdout, check=True, capture_output=True)
        tar.wait()
    return tag


def lean_shim(env: Path, program: str) -> list[str]:
    """What a shim does, with bare package objects standing in for ``venvroot/__init__.py`` and
    ``venvroot/backends/__init__.py``, which import ``typing`` (~9 ms) on every shim's path."""
    code = "; ".join(
        (
            "import sys, types",
            f"sys.path.insert(0, {str(REPO)!r})",
            "pkg = types.ModuleType('venvroot')",
            f"pkg.__path__ = [{str(REPO / 'venvroot')!r}]",
            "sys.modules['venvroot'] = pkg",
            "b = types.ModuleType('venvroot.backends')",
            f"b.__path__ = [{str(REPO / 'venvroot' / 'backends')!r}]",
            "sys.modules['venvroot.backends'] = b",
            "from venvroot import envconfig",
            "from venvroot.backends.docker.run import run",
            "sys.exit(run(envconfig.read(sys.argv[1]), sys.argv[2], sys.argv[3:]))",
        )
    )
    return [sys.executable, "-I", "-S", "-c", code, str(env), program]


def timed(argv: list[str], stdin: bytes | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench_docker: {' '.join(argv)} failed: {done.stderr.decode(errors='replace')}")
    if stdin is not None and done.stdout != stdin:
        sys.exit(f"bench_docker: {' '.join(argv)} did not return its input")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--image", help="image with sh, true and cat (default: a busybox image built here)")
    args = parser.parse_args()
    image = args.image or build_image()
    work = Path(tempfile.mkdtemp(prefix="venvroot-bench-docker-"))
    env = work / "proj" / ".venv"
    venvroot = [sys.executable, "-m", "venvroot"]
    try:
        subprocess.run(
            [*venvroot, str(env), "--backend", "docker", "--image", image, "--persistent", "-q",
             "--link", "true", "--link", "cat"],
            check=True,
        )  # fmt: skip
        container = next(
            line.partition(" = ")[2]
            for line in (env / "venvroot.cfg").read_text().splitlines()
            if line.startswith("docker-container = ")
        )
        cases = {
            "shim true": ([str(env / "bin" / "true")], None),
            "shim true, lean init": (lean_shim(env, "true"), None),
            "docker exec true": (["docker", "exec", container, "true"], None),
            "shim cat 10MB": ([str(env / "bin" / "cat")], PAYLOAD),
            "docker exec -i cat 10MB": (["docker", "exec", "-i", container, "cat"], PAYLOAD),
        }
        for argv, stdin in cases.values():  # warm up: container, page cache, the daemon
            timed(argv, stdin)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (argv, stdin) in cases.items():
                times[name].append(timed(argv, stdin))
        med = {name: statistics.median(values) * 1000 for name, values in times.items()}
        print(f"docker backend, {args.runs} runs each, image {image}")
        for name, value in med.items():
            print(f"  {name:<26} median {value:7.1f} ms   (min {min(times[name]) * 1000:6.1f})")
        for what, shim, cli in (("true", "shim true", "docker exec true"),
                                ("true, lean", "shim true, lean init", "docker exec true"),
                                ("cat 10MB", "shim cat 10MB", "docker exec -i cat 10MB")):  # fmt: skip
            print(f"  ratio shim / docker exec, {what:<11} {med[shim] / med[cli]:.2f}x")
    finally:
        subprocess.run([*venvroot, "destroy", str(env)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        if not args.image:
            subprocess.run(["docker", "rmi", image], capture_output=True)


if __name__ == "__main__":
    main()
