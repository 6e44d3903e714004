"""The library API: environments created, opened, run and changed (called by the CLI and plugin)."""
