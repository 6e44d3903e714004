"""Snapshots, automatic snapshots and freezing, the same for every backend.

A snapshot lives in ``<env>/.venvroot/snapshots/<id>/``:

* ``meta.json``: its name, id, time, the program whose call took it (automatic snapshots) and the
  backend's facts (the docker backend's image, for one);
* ``python/``: the env's Python packages - everything in the env directory but the env's own
  files (``bin/`` with its shims, ``venvroot.cfg``, venvroot's state), plus what the backend says
  belongs to them (the docker backend's inner ``bin``). Files unchanged since the previous snapshot
  are hard links to its copy;
* what the backend keeps of the root itself (the ``ns`` backend's writable layer, in ``root/``).

Beside them: ``state.json`` (which snapshot the env is at, a counter for generated names),
``frozen`` (the id of the frozen base, when frozen) and ``lock`` (serialises all changes).

Its modules: :mod:`.store` (the snapshots of one env, under one lock), :mod:`.freeze`,
:mod:`.rules` (automatic snapshots), :mod:`.names`; the on-disk facts the backends share with the
store are :mod:`venvroot.backends.envstate`.
"""
