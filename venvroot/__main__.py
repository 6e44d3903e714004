"""``python -m venvroot``: the same as the ``venvroot`` command."""

from .cli import main

raise SystemExit(main())
