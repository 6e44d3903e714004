"""The jinja2 set-up shared by every template venvroot writes (activate scripts, shims).

Compiling the templates costs ~35 ms, a third of a create, so compiled templates are kept in
jinja2's per-user bytecode cache in the temporary directory (it checks the cache directory's owner
and mode, and a changed template changes its checksum).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jinja2


@functools.cache
def _bytecode_cache() -> jinja2.BytecodeCache | None:
    try:
        return jinja2.FileSystemBytecodeCache()
    except (OSError, RuntimeError):  # no usable temporary directory: compile every time
        return None


@functools.cache
def _environment(directory: str) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        keep_trailing_newline=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        bytecode_cache=_bytecode_cache(),
        auto_reload=False,
    )


def render(directory: str, template: str, quote: Callable[[str], str], **values: object) -> str:
    """Render ``directory/template``; ``|q`` quotes a value as a literal of the target language."""
    env = _environment(directory)
    env.filters["q"] = quote  # compiled templates look filters up when rendering, so this is per call
    return env.get_template(template).render(**values)
