"""Errors that reach the user as one line and an exit code."""

from __future__ import annotations


class VenvrootError(Exception):
    """A failure explained to the user in one line; exit code 1."""

    exit_code = 1


class UsageError(VenvrootError):
    """Bad input on the command line or in a config file; exit code 2."""

    exit_code = 2


class NotAnEnvironment(VenvrootError):  # noqa: N818 - reads as a sentence
    """A path that should hold a venvroot environment does not."""

    exit_code = 2
