"""The ``venvroot`` command line: its entry point, verbs and parsers, thin over :mod:`venvroot.env`."""
