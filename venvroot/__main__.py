"""``python -m venvroot``: the same as the ``venvroot`` command."""

from .cli.main import main

raise SystemExit(main())
