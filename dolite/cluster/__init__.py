"""Clusters: data partitioned across many databases (shards) with atomic cross-shard
transactions by two-phase commit. See docs/CLUSTERS.md.

``dolite.cluster(...)`` opens a cluster. Once this package is imported, ``dolite.cluster``
is the package itself (Python binds a subpackage to its parent's attribute), so the package
is made callable: calling it is calling :func:`dolite.open_cluster` (which also opens a
cluster on a server from an ``http(s)://`` URL).
"""

import sys
import types

from dolite.cluster.cluster import Cluster, cluster
from dolite.cluster.results import Result
from dolite.cluster.transaction import Transaction

__all__ = ["Cluster", "Result", "Transaction", "cluster"]


class _CallablePackage(types.ModuleType):
    def __call__(self, *args, **kwargs):
        from dolite import open_cluster

        return open_cluster(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
