"""The `ssvae` command line, one module per group of commands; `main` is the group itself.

Importing any of these modules is cheap: the container, JAX and matplotlib load inside the
commands.
"""
