"""The ``docker`` backend: the environment's root is a container; shims run programs through exec.

``backend`` manages containers and images with the docker SDK; ``run`` (a shim's hot path),
``engine`` and ``session`` use only the standard library so that a shim never pays for
``import docker``.
"""
