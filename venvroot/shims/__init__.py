"""Shims: small executables in ``<env>/bin`` that run a program inside the environment.

``writer`` writes them from ``shim.tmpl``; ``entry`` is what they run (the hot path). This package
imports nothing so that the hot path stays light.
"""
