"""The `cips3d` command line: thin wrappers that parse, build and call library functions."""
