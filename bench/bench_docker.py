"""Time a docker environment's shims (through the agent, and through the Engine API) against a
hand-typed ``docker exec`` on the same container.

    python bench/bench_docker.py [--runs N] [--image IMAGE] [--tls-engine tcp://HOST:PORT --tls-certs DIR]

Without --image a busybox-static image is built and imported (no registry needed). A persistent
env is made, so its container is running; then, round-robin in one loop (machine noise hits all
alike), for ``true`` and for ``cat`` on 10 MB of stdin: the shim (its fast path, the agent in the
container), the shim's Python path through the Engine API (what containers without the agent
get), and ``docker exec [-i] CTR ...``. With ``--tls-engine`` (and ``--tls-certs``, a directory
of ca.pem, cert.pem and key.pem) a second env is made on that engine, and its shim (the Engine API
over TLS: no agent on a remote engine) is timed against ``docker -H ... --tlsverify exec`` there;
the image must be on that engine. Medians and ratios are printed; the envs and the image it built
are removed afterwards.
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


def engine_shim(env: Path, program: str) -> list[str]:
    """The shim's Python path without the hand-over to the agent: the Engine API's exec."""
    code = "; ".join(
        (
            "import sys",
            f"sys.path.insert(0, {str(REPO)!r})",
            "from venvroot.backends import envconfig",
            "from venvroot.backends.docker.run import run_engine",
            "sys.exit(run_engine(envconfig.read(sys.argv[1]), sys.argv[2], sys.argv[3:]))",
        )
    )
    return [sys.executable, "-I", "-S", "-c", code, str(env), program]


def tls_cases(venvroot: list[str], env: Path, image: str, host: str, certs: str) -> dict:
    """A persistent env on the TLS engine (``--remote``: as for a server elsewhere, even on loopback),
    and ``docker -H HOST --tlsverify ... exec`` there."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    environ.update(DOCKER_HOST=host, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=certs)
    subprocess.run(
        [*venvroot, str(env), "--backend", "docker", "--image", image, "--persistent", "-q", "--remote",
         "--link", "true", "--link", "cat"],
        check=True, env=environ,
    )  # fmt: skip
    container = next(
        line.partition(" = ")[2]
        for line in (env / "venvroot.cfg").read_text().splitlines()
        if line.startswith("docker-container = ")
    )
    tls = [f"--tlscacert={certs}/ca.pem", f"--tlscert={certs}/cert.pem", f"--tlskey={certs}/key.pem"]
    cli = ["docker", "-H", host, "--tlsverify", *tls]
    return {
        "TLS shim true": ([str(env / "bin" / "true")], None),
        "TLS docker exec true": ([*cli, "exec", container, "true"], None),
        "TLS shim cat 10MB": ([str(env / "bin" / "cat")], PAYLOAD),
        "TLS docker exec -i cat 10MB": ([*cli, "exec", "-i", container, "cat"], PAYLOAD),
    }


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
    parser.add_argument("--tls-engine", help="also time a shim on this TLS engine (tcp://HOST:PORT)")
    parser.add_argument("--tls-certs", help="the TLS engine's ca.pem, cert.pem and key.pem")
    args = parser.parse_args()
    image = args.image or build_image()
    work = Path(tempfile.mkdtemp(prefix="venvroot-bench-docker-"))
    env = work / "proj" / ".venv"
    remote = work / "proj" / "tls"
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
        if not (env / ".venvroot" / "shim.sh").is_file():
            sys.exit("bench_docker: this venvroot has no compiled agent (build it: pip install .)")
        cases = {
            "agent shim true": ([str(env / "bin" / "true")], None),
            "engine API true": (engine_shim(env, "true"), None),
            "docker exec true": (["docker", "exec", container, "true"], None),
            "agent shim cat 10MB": ([str(env / "bin" / "cat")], PAYLOAD),
            "engine API cat 10MB": (engine_shim(env, "cat"), PAYLOAD),
            "docker exec -i cat 10MB": (["docker", "exec", "-i", container, "cat"], PAYLOAD),
        }
        if args.tls_engine:
            cases.update(tls_cases(venvroot, remote, image, args.tls_engine, args.tls_certs))
        os.chdir(env.parent)  # the project directory: mapped on every engine (a remote one has no /r)
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
        for what, cli in (("true", "docker exec true"), ("cat 10MB", "docker exec -i cat 10MB")):
            for path in ("agent shim", "engine API"):
                print(f"  ratio {path} / docker exec, {what:<9} {med[f'{path} {what}'] / med[cli]:.3f}x")
            agent, engine = med[f"agent shim {what}"], med[f"engine API {what}"]
            print(f"  ratio agent shim / engine API, {what:<9} {agent / engine:.3f}x")
            if args.tls_engine:
                ratio = med[f"TLS shim {what}"] / med[f"TLS {cli}"]
                print(f"  ratio TLS shim / docker -H exec over TLS, {what:<9} {ratio:.3f}x")
    finally:
        subprocess.run([*venvroot, "destroy", str(env)], capture_output=True)
        subprocess.run([*venvroot, "destroy", str(remote)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        if not args.image:
            subprocess.run(["docker", "rmi", image], capture_output=True)


if __name__ == "__main__":
    main()
