"""``python -m dolite.server [options]``: the same as ``dolite serve``."""

from dolite.server.cli import main

main()
