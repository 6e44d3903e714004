"""Time running /bin/true inside a root: venvroot chroot and the shim API against bwrap and unshare.

    python bench/bench_chroot.py [--runs N] [ROOT]

Without ROOT a busybox-static root is built in a temporary directory. Every command runs in the
same round-robin loop (so that machine noise hits all alike); medians and ratios are printed.
Run it as an unprivileged user to time the rootless paths, as root for the privileged ones.
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


def build_root(dest: Path) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        sys.exit("bench_chroot: busybox (busybox-static) is needed to build a root; or pass ROOT")
    for d in ("bin", "etc", "dev", "proc", "sys", "tmp"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in ("true", "sh"):
        (dest / "bin" / applet).symlink_to("busybox")
    (dest / "etc" / "resolv.conf").write_text("")
    return dest


def shim_code(root: str, skip_package_init: bool) -> str:
    """What a shim does: a fresh ``python -I -S`` that calls exec_command with bwrap-like mounts."""
    lines = ["import sys", f"sys.path.insert(0, {str(REPO)!r})"]
    if skip_package_init:
        # venvroot/__init__.py imports typing (~9 ms); a bare package object stands in for it here.
        lines += [
            "import types",
            "pkg = types.ModuleType('venvroot')",
            f"pkg.__path__ = [{str(REPO / 'venvroot')!r}]",
            "sys.modules['venvroot'] = pkg",
        ]
    lines += [
        "from venvroot.ns.runner import exec_command",
        "from venvroot.ns.mounts import Mount",
        f"root = {root!r}",
        "exec_command(root, ['/bin/true'], mounts=[Mount.bind(root, '/', readonly=True, recursive=True),"
        " Mount.dev(), Mount.proc()])",
    ]
    return "\n".join(lines)


def cli_code(root: str) -> str:
    return (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from venvroot.ns.cli import main\n"
        f"sys.exit(main([{root!r}, '/bin/true']))"
    )


def candidates(root: str) -> dict[str, list[str]]:
    py = sys.executable
    venvroot_chroot = [py, "-m", "venvroot", "chroot"]
    probe = subprocess.run([*venvroot_chroot, "--help"], capture_output=True, text=True, cwd=REPO)
    if probe.returncode != 0:
        venvroot_chroot = [py, "-m", "venvroot.ns.cli"]
    out = {
        "host /bin/true": ["/bin/true"],
        "python -I -S -c pass": [py, "-I", "-S", "-c", "pass"],
        "bwrap": [
            "bwrap",
            "--unshare-all",
            "--share-net",
            "--ro-bind",
            root,
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "/bin/true",
        ],
        "unshare -Urm chroot": ["unshare", "-Urm", "chroot", root, "/bin/true"],
        "venvroot chroot ROOT /bin/true": [*venvroot_chroot, root, "/bin/true"],
        "venvroot chroot --no-pid --no-mounts": [
            *venvroot_chroot,
            "--no-pid",
            "--no-mounts",
            root,
            "/bin/true",
        ],
        # The same CLI code without site-packages and the top-level CLI: what venvroot.ns itself costs.
        "ns.cli main(ROOT /bin/true) (python -I -S)": [py, "-I", "-S", "-c", cli_code(root)],
        "shim: exec_command (python -I -S)": [py, "-I", "-S", "-c", shim_code(root, False)],
        "shim: exec_command, no package __init__": [py, "-I", "-S", "-c", shim_code(root, True)],
    }
    return {name: argv for name, argv in out.items() if shutil.which(argv[0])}


def join_candidates(holder: int) -> dict[str, list[str]]:
    """Entering a live root (a session): venvroot's join_command against nsenter."""
    py = sys.executable
    code = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from venvroot.ns.join import join_command\n"
        f"join_command({holder}, ['/bin/true'])"
    )
    nsenter = ["nsenter", "-t", str(holder), "-m", "-u", "-i"]
    if os.geteuid() != 0:
        nsenter[3:3] = ["-U", "--preserve-credentials"]
    out = {
        "session: nsenter -t HOLDER /bin/true": [*nsenter, "/bin/true"],
        "session: join_command (python -I -S)": [py, "-I", "-S", "-c", code],
    }
    return {name: argv for name, argv in out.items() if shutil.which(argv[0])}


def start_holder(root: str) -> tuple[subprocess.Popen, int]:
    """A program kept running inside the root, as a session would keep one."""
    argv = [
        sys.executable,
        "-m",
        "venvroot.ns.cli",
        "--no-pid",
        "--no-mounts",
        root,
        "/bin/sh",
        "-c",
        "echo $$; read x",
    ]
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    return holder, int(holder.stdout.readline())  # type: ignore[union-attr]


def time_in_process(root: str, runs: int) -> float:
    """run_command from a warm process (what a session holder pays per command)."""
    code = (
        f"import sys, time, statistics; sys.path.insert(0, {str(REPO)!r})\n"
        "from venvroot.ns import run_command, Mount\n"
        f"root = {root!r}\n"
        "mounts = [Mount.bind(root, '/', readonly=True, recursive=True), Mount.dev(), Mount.proc()]\n"
        "times = []\n"
        f"for _ in range({runs}):\n"
        "    t = time.perf_counter(); assert run_command(root, ['/bin/true'], mounts=mounts) == 0\n"
        "    times.append(time.perf_counter() - t)\n"
        "print(statistics.median(times))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?")
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="venvroot-bench-") as tmp:
        os.chmod(tmp, 0o755)
        root = os.path.abspath(args.root) if args.root else str(build_root(Path(tmp) / "root"))
        holder, holder_pid = start_holder(root)
        commands = {**candidates(root), **join_candidates(holder_pid)}
        for name, argv in commands.items():  # warm caches, and fail loudly on a broken command
            result = subprocess.run(argv, capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"bench_chroot: {name} failed: {result.stderr.strip()}")
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                start = time.perf_counter()
                subprocess.run(argv, stdin=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
        holder.communicate("done\n")
        medians = {name: statistics.median(values) for name, values in times.items()}
        in_process = time_in_process(root, args.runs)
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (rootless)"
    print(f"venvroot ns benchmark: {args.runs} runs each, round-robin, as {who}, {sys.version.split()[0]}")
    bwrap, unshare = medians.get("bwrap"), medians.get("unshare -Urm chroot")
    print(f"{'command':42s} {'median':>9s} {'vs bwrap':>9s} {'vs unshare':>11s}")
    for name, median in [*medians.items(), ("run_command from a warm process", in_process)]:
        ratio_b = f"{median / bwrap:8.2f}x" if bwrap else "        -"
        ratio_u = f"{median / unshare:10.2f}x" if unshare else "          -"
        print(f"{name:42s} {median * 1000:7.2f}ms {ratio_b} {ratio_u}")


if __name__ == "__main__":
    main()
