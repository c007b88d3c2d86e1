"""The object host: each database is a named actor (see host.py and actor.py)."""

from dolite.objects.actor import DatabaseObject, ObjectConfig
from dolite.objects.errors import RequestError
from dolite.objects.host import HostConfig, ObjectHost
from dolite.objects.runner import Bounds

__all__ = ["Bounds", "DatabaseObject", "HostConfig", "ObjectConfig", "ObjectHost", "RequestError"]
