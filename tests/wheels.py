"""Tiny wheels with a console script, written by hand: pip installs them with no network and no
build backend."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def build_wheel(dest: Path, name: str, script: str, main_body: str, version: str = "1.0") -> Path:
    """``dest/NAME-VERSION-py3-none-any.whl``: package ``name`` whose ``main()`` runs ``main_body``
    (indented code; ``sys`` is imported), exposed as the console script ``script``. Readable by
    every user (the rootless tests install it as the test user)."""
    info = f"{name}-{version}.dist-info"
    body = "".join(f"    {line}\n" for line in main_body.splitlines())
    files = {
        f"{name}/__init__.py": f"import sys\n\n\ndef main():\n{body}",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": f"[console_scripts]\n{script} = {name}:main\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{info}/RECORD,,")
    files[f"{info}/RECORD"] = "\n".join(record) + "\n"
    wheel = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    wheel.chmod(0o644)
    return wheel
