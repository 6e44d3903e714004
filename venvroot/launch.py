"""Run one program in an environment: what every shim and ``venvroot run`` do.

On the shims' hot path (``shims/entry.py``): builtins and venvroot's light modules only.
"""

from __future__ import annotations

from . import envconfig


def run(env_dir: str, program: str, args: list[str]) -> int:
    """Read the env's venvroot.cfg, take an automatic snapshot when a rule asks for one, and hand
    the program to the backend's hot path (which normally replaces this process)."""
    cfg = envconfig.read(env_dir)
    for key in cfg.values:
        if key.startswith("auto-snapshot."):  # `venvroot snapshot configure`: maybe a snapshot first
            from .snapshots import auto_snapshot

            auto_snapshot(cfg, program, args)
            break
    module = __import__(f"venvroot.backends.{cfg.backend}.run", fromlist=["run"])
    return module.run(cfg, program, args)
