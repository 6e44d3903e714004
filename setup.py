from pathlib import Path

from setuptools import find_packages, setup

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
    extras_require={"test": ["pytest>=7", "pexpect>=4.8", "ruff", "xonsh", "wheel", "setuptools>=61"]},
    entry_points={"console_scripts": ["venvroot = venvroot.cli:main"]},
    classifiers=[
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Environment :: Console",
    ],
)
