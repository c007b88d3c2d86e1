"""The object host: each database is a named actor (see host.py and actor.py)."""

from dolite.server.objects.actor import DatabaseObject, ObjectConfig
from dolite.server.objects.errors import RequestError
from dolite.server.objects.host import HostConfig, ObjectHost
from dolite.server.objects.runner import Bounds

__all__ = ["Bounds", "DatabaseObject", "HostConfig", "ObjectConfig", "ObjectHost", "RequestError"]
