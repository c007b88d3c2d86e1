"""The command line: a thin layer over the library (every command is a call anyone can make)."""

from dolite.cli.main import app

__all__ = ["app"]
