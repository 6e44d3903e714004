"""Small helpers that know nothing of environments: atomic files, quoting, progress, copies."""
