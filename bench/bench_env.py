"""Time the ns backend against its anchors, in one run: creation, shims, activation.

    python bench/bench_env.py [--runs N]

1. creating an environment: ``venvroot PATH`` against ``python -m venv --without-pip`` and
   ``virtualenv --no-seed`` (a busybox root: no Python to set up), and the default env (the host
   view, with its Python venv and pip) against a seeded ``virtualenv``;
2. a shim running ``true``, in an active session and outside one, against ``bwrap`` on the same
   root (a busybox root, and the host's ``/``). Outside a session a shim joins namespaces that are
   still up (an env's namespaces stay ``LINGER`` seconds after their last use, so shims run in a
   row share them) or, cold, builds them first: both are shown;
3. ``source bin/activate; deactivate`` in bash against virtualenv's own (``bash -c true`` subtracted).

Every group runs round-robin (machine noise hits all alike); medians and ratios are printed. Run it
as an unprivileged user for the rootless numbers, as root for the privileged ones.

It measures the installed venvroot (``pip install .``: the compiled starter and shim are built only
there), never the checkout beside it: the children run with ``PYTHONSAFEPATH`` and this script
refuses a venvroot imported from the checkout. Each shim row names the way it went in (the compiled
shim, the sh fragment with the compiled starter, nsenter, Python). Cold rows (2b) are timed
as cold starts come, once the namespaces have ended by themselves after ``LINGER`` seconds (each
call waits for that), each call preceded by one of its bwrap anchor (a shared machine's load moves
in seconds: their ratio is the one to read), and name which starter built them, call by call (the
compiled starter replays a start only while nothing it depends on changed: the host's mounts among
them, for the host view). ``--direct N`` checks each cold row against a plain loop over its env.
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
from collections.abc import Callable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
VENVROOT = [PY, "-m", "venvroot"]
# The children import the installed venvroot, not one in their working directory.
os.environ["PYTHONSAFEPATH"] = "1"


def build_root(dest: Path) -> Path:
    busybox = shutil.which("busybox")
    if busybox is None:
        sys.exit("bench_env: busybox (busybox-static) is needed to build a root")
    for d in ("bin", "etc", "dev", "proc", "sys", "tmp", "root", "home"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in ("true", "sh", "cat", "sleep"):
        (dest / "bin" / applet).symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return dest


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        sys.exit(f"bench_env: {' '.join(map(str, argv))} failed: {result.stderr.strip()[-500:]}")
    return result


def round_robin(commands: Mapping[str, Callable[[], object]], runs: int) -> dict:
    """Median seconds of each callable."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, call in commands.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def quiet(argv: list[str], cwd: str | None = None) -> Callable[[], None]:
    def call() -> None:
        code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, cwd=cwd).returncode
        if code:
            sys.exit(f"bench_env: {' '.join(argv)} failed with {code}")

    return call


def show(title: str, medians: dict[str, float], anchors: list[str]) -> None:
    print(f"\n{title}")
    width = max(54, *(len(name) for name in medians))
    head = "".join(f" {'vs ' + a:>22s}" for a in anchors)
    print(f"  {'':{width}s} {'median':>9s}{head}")
    for name, median in medians.items():
        ratios = "".join(f" {median / medians[a]:21.2f}x" for a in anchors)
        print(f"  {name:{width}s} {median * 1000:7.1f}ms{ratios}")


def creation(tmp: Path, root: Path, runs: int) -> None:
    counter = iter(range(1_000_000))
    made: list[Path] = []

    def fresh(argv_of: Callable[[Path], list[str]]) -> Callable[[], None]:
        def call() -> None:
            path = tmp / f"create-{next(counter)}" / "env"
            path.parent.mkdir()
            made.append(path)
            quiet(argv_of(path), cwd=str(path.parent))()

        return call

    commands = {
        "python -m venv --without-pip": fresh(lambda p: [PY, "-m", "venv", "--without-pip", str(p)]),
        "virtualenv --no-seed": fresh(lambda p: [PY, "-m", "virtualenv", "-q", "--no-seed", str(p)]),
        "venvroot PATH --root BUSYBOX (no Python in the root)": fresh(
            lambda p: [*VENVROOT, str(p), "-q", "--root", str(root)]
        ),
        "virtualenv (seeded: pip)": fresh(lambda p: [PY, "-m", "virtualenv", "-q", str(p)]),
        "venvroot PATH (host view, its Python venv and pip)": fresh(lambda p: [*VENVROOT, str(p), "-q"]),
    }
    medians = round_robin(commands, runs)
    for path in made:
        if (path / "venvroot.cfg").exists():
            run([*VENVROOT, "destroy", str(path)])
        shutil.rmtree(path.parent, ignore_errors=True)
    show("1. creating an environment", medians, ["python -m venv --without-pip", "virtualenv --no-seed"])


def holder_pid(env: Path) -> int | None:
    """The pid recorded as ``env``'s holder, if that process is alive."""
    from venvroot.backends.ns.layout import State

    try:
        pid = int(Path(State(str(env)).holder).read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if os.path.exists(f"/proc/{pid}") else None


def starter_of(env: Path) -> str:
    """Which starter built ``env``'s running namespaces: the recorded holder's program says."""
    pid = holder_pid(env)
    if pid is None:
        return "ended already"
    exe = os.readlink(f"/proc/{pid}/exe")
    return "compiled starter" if exe.endswith("/starter") else "Python starter"


def way_in(env: Path) -> str:
    """How ``env``'s shims go in: the compiled shim, or the sh fragment and what it execs."""
    if (env / "bin" / "true").is_symlink():
        return "compiled shim"
    try:
        fragment = (env / ".venvroot" / "shim.sh").read_text()
    except FileNotFoundError:
        return "sh shim, Python"
    enter = [line for line in fragment.splitlines() if line.startswith("exec ")]
    return "sh shim, nsenter" if enter and "nsenter" in enter[-1] else "sh shim, starter --join"


def wait_ended(envs: list[Path], timeout: float = 30.0) -> None:
    """Wait until none of ``envs`` has a holder process left (they end by themselves, LINGER)."""
    deadline = time.monotonic() + timeout
    for env in envs:
        while holder_pid(env) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    time.sleep(0.2)  # the kernel releases the last mounts after the process is reaped


def cold_row(env: Path, runs: int, anchor: Callable[[], None]) -> tuple[float, float, dict[str, list[float]]]:
    """A cold row: ``runs`` shim calls of ``env``, each made once its namespaces have ended by
    themselves (``LINGER`` after their last use, as a real cold start comes), each preceded by a
    call of its bwrap ``anchor`` just before, so that both see the same machine (a shared one's load moves
    between rows). Returns the median seconds of both, and the seconds of each shim call by the
    starter that built its namespaces (read right after it)."""
    times: list[float] = []
    anchors: list[float] = []
    by_starter: dict[str, list[float]] = {}
    for _ in range(runs):
        wait_ended([env])
        start = time.perf_counter()  # first: after the shim, the brain's Python start would slow it
        anchor()
        anchors.append(time.perf_counter() - start)
        time.sleep(0.3)  # and the kernel's end of its namespaces would slow the shim
        start = time.perf_counter()
        quiet([str(env / "bin" / "true")])()
        times.append(time.perf_counter() - start)
        by_starter.setdefault(starter_of(env), []).append(times[-1])
    return statistics.median(times), statistics.median(anchors), by_starter


def direct(env: Path, runs: int) -> tuple[float, str]:
    """The plain check of a cold row: ``runs`` times, wait until ``env``'s namespaces are gone,
    then time one shim call; the median seconds, and which starters built them, how often."""
    times = []
    starters: dict[str, int] = {}
    for _ in range(runs):
        wait_ended([env])
        start = time.perf_counter()
        subprocess.run([str(env / "bin" / "true")], stdin=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
        built = starter_of(env)
        starters[built] = starters.get(built, 0) + 1
    return statistics.median(times), ", ".join(f"{what} {n}/{runs}" for what, n in sorted(starters.items()))


def shims(tmp: Path, root: Path, runs: int, cold_runs: int, direct_runs: int) -> None:
    project = tmp / "shims"
    project.mkdir()
    envs = {}
    for name, options in (
        ("bb-session", ["--root", str(root)]),
        ("bb-outside", ["--root", str(root)]),
        ("host-session", []),
        ("host-outside", []),
        ("bb-python", ["--root", str(root)]),  # made with the compiled starter turned off
    ):
        envs[name] = project / name
        environ = dict(os.environ, VENVROOT_NO_STARTER="1") if name == "bb-python" else None
        run([*VENVROOT, str(envs[name]), "-q", "--link", "true", *options], env=environ)
    # An active session: this process is the activated shell (as `source bin/activate` registers it).
    for name in ("bb-session", "host-session"):
        run([str(envs[name] / "bin" / ".venvroot-session"), "start", str(os.getpid())])
        run([str(envs[name] / "bin" / "true")])
    bwrap = ["bwrap", "--unshare-all", "--share-net", "--dev", "/dev", "--proc", "/proc"]
    bb, host = "bwrap --ro-bind BUSYBOX / true", "bwrap --ro-bind / / true"
    shim = {name: quiet([str(env / "bin" / "true")]) for name, env in envs.items()}
    warm = {
        "busybox root, active session": "bb-session",
        "busybox root, outside (namespaces up)": "bb-outside",
        "host view, active session": "host-session",
        "host view, outside (namespaces up)": "host-outside",
    }
    rows = {f"shim true, {k} [{way_in(envs[v])}]": shim[v] for k, v in warm.items()}
    commands = {bb: quiet([*bwrap[:3], "--ro-bind", str(root), "/", *bwrap[3:], "/bin/true"])}
    commands.update({k: v for k, v in rows.items() if "busybox" in k})
    commands[host] = quiet([*bwrap[:3], "--ro-bind", "/", "/", *bwrap[3:], "/bin/true"])
    commands.update({k: v for k, v in rows.items() if "host" in k})
    if not shutil.which("bwrap"):
        commands = {k: v for k, v in commands.items() if not k.startswith("bwrap")}
    for call in commands.values():  # warm up; the outside envs' namespaces start here
        call()
    medians = round_robin(commands, runs)
    anchors = [a for a in (bb, host) if a in medians]
    show("2. a shim running true (bwrap: same root, same kind of namespaces)", medians, anchors)
    # Cold: the compiled starter replays what the warm-up's (Python) start wrote down.
    cold_rows = {
        "shim true, busybox root, cold (builds the namespaces)": ("bb-outside", bb),
        "shim true, host view, cold (builds the namespaces)": ("host-outside", host),
        "shim true, busybox root, cold, Python starter (no compiler)": ("bb-python", bb),
    }
    print("\n2b. a cold shim running true, each call after the namespaces ended by themselves (and a bwrap)")
    for name, (env_name, anchor) in cold_rows.items():
        if anchor not in commands:
            continue
        median, anchored, by_starter = cold_row(envs[env_name], cold_runs, commands[anchor])
        built = ", ".join(
            f"{what} {len(times)}/{cold_runs}: {statistics.median(times) * 1000:.1f} ms"
            for what, times in sorted(by_starter.items(), key=lambda item: -len(item[1]))
        )
        print(f"  {name} [{way_in(envs[env_name])}; {built}]")
        ratio = f"{median / anchored:.2f}x"
        print(f"    {median * 1000:.1f} ms; {anchor} between: {anchored * 1000:.1f} ms: {ratio}")
        if direct_runs:
            plain, starters = direct(envs[env_name], direct_runs)
            print(
                f"    direct check, a plain loop [{starters}]: {plain * 1000:.1f} ms "
                f"(the row: {median / plain:.2f}x that)"
            )
    alone = round_robin({"python": quiet([PY, "-I", "-S", "-c", "pass"]), bb: commands[bb]}, runs)
    ratio = alone["python"] / alone[bb]
    print(
        f"  python -I -S -c pass (a Python start alone): {alone['python'] * 1000:.1f} ms, {ratio:.2f}x {bb}"
    )
    for name in ("bb-session", "host-session"):
        run([str(envs[name] / "bin" / ".venvroot-session"), "stop", str(os.getpid())])
    for env in envs.values():
        run([*VENVROOT, "destroy", str(env)])


def activation(tmp: Path, root: Path, runs: int) -> None:
    bash = shutil.which("bash")
    if bash is None:
        print("\n3. activation: bash is not installed, skipped")
        return
    project = tmp / "activate"
    project.mkdir()
    run([PY, "-m", "virtualenv", "-q", "--no-seed", str(project / "virtualenv")])
    run([*VENVROOT, str(project / "bb"), "-q", "--root", str(root)])
    run([*VENVROOT, str(project / "host"), "-q"])
    run([*VENVROOT, str(project / "hooked"), "-q", "--root", str(root), "--on-activate", "true"])
    cycle = "source {}/bin/activate; deactivate"
    commands = {
        "bash -c true": quiet([bash, "-c", "true"]),
        "virtualenv: source activate; deactivate": quiet([bash, "-c", cycle.format(project / "virtualenv")]),
        "venvroot, busybox root": quiet([bash, "-c", cycle.format(project / "bb")]),
        "venvroot, host view": quiet([bash, "-c", cycle.format(project / "host")]),
        "venvroot with an --on-activate hook (starts the session)": quiet(
            [bash, "-c", cycle.format(project / "hooked")]
        ),
    }
    medians = round_robin(commands, runs)
    for name in ("bb", "host", "hooked"):
        run([*VENVROOT, "destroy", str(project / name)])
    base = medians.pop("bash -c true")
    net = {name: max(m - base, 1e-6) for name, m in medians.items()}
    show(
        f"3. source activate; deactivate in bash, minus bash -c true ({base * 1000:.1f} ms)",
        net,
        ["virtualenv: source activate; deactivate"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=40, help="runs of the fast commands (creation: a quarter)"
    )
    parser.add_argument(
        "--cold-runs", type=int, default=10, help="cold calls of each env (each waits LINGER seconds)"
    )
    parser.add_argument("--only", choices=("create", "shims", "activate"), help="run one group only")
    parser.add_argument(
        "--direct", type=int, default=0, metavar="N", help="check the cold rows against N plain calls"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="venvroot-bench-env-") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        root = build_root(tmp / "busybox-root")
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (rootless)"
        print(f"venvroot ns backend benchmark, as {who}, Python {sys.version.split()[0]}, one run")
        import venvroot
        from venvroot.backends.ns import startfile

        where = Path(venvroot.__file__).resolve().parent
        if where.is_relative_to(REPO):
            sys.exit(f"bench_env: venvroot is imported from the checkout {where}: run the installed copy")
        print(f"venvroot {venvroot.__version__} from {where}")
        if not startfile.available():  # a checkout is not built: only `pip install` compiles it
            print(
                f"note: no compiled starter at {startfile.STARTER} (pip install builds it): "
                "cold rows use Python"
            )
        if args.only in (None, "create"):
            creation(tmp, root, max(3, args.runs // 4))
        if args.only in (None, "shims"):
            shims(tmp, root, args.runs, args.cold_runs, args.direct)
        if args.only in (None, "activate"):
            activation(tmp, root, args.runs)


if __name__ == "__main__":
    main()
