"""The ``ns`` backend: the environment's root through Linux namespaces (rootless with user namespaces)."""
