"""A private local Ray that listens on 127.0.0.1 only.

Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when it is imported: at "0" a local Ray binds
every socket (GCS, raylet, workers, agents, metrics) to 127.0.0.1 instead of all interfaces
(measured with ``ss -ltnp``, ray 2.60; ``ray.init(_node_ip_address="127.0.0.1")`` is silently
rewritten to the routable address). It also forbids adding other nodes, so it is set only for a
private local Ray, never when the sweep joins a cluster. This module imports nothing of Ray.
"""

from __future__ import annotations

import os
import sys

VARIABLE, VALUE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0"


def prefer_loopback() -> bool:
    """Set the variable unless Ray is already imported; True when it is in effect."""
    if "ray" not in sys.modules:
        os.environ.setdefault(VARIABLE, VALUE)
    return os.environ.get(VARIABLE) == VALUE


def allow_cluster() -> None:
    """Joining a cluster: the loopback-only setting must not reach Ray (it would refuse)."""
    if os.environ.get(VARIABLE) == VALUE and "ray" not in sys.modules:
        del os.environ[VARIABLE]
