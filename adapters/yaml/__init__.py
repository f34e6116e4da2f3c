"""YAML adapters: model spec files, experiment files and `--set` values, read within limits."""
