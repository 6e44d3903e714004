"""Shims: small executables in ``<env>/bin`` that run a program inside the environment.

``writer`` writes them from ``shim.tmpl``; ``marker`` tells them and names what they run,
``venvroot/cli/shimentry.py`` (the hot path). This package imports nothing so that the hot path
stays light.
"""
