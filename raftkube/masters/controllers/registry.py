"""The controllers every master runs while it leads, in start order."""

from __future__ import annotations

from raftkube.masters.controllers.garbage_collector import GarbageCollector
from raftkube.masters.controllers.manager import ControllerFactory


def controller_factories() -> list[ControllerFactory]:
    """Factories of the controllers run by the controller manager."""
    return [
        lambda context: GarbageCollector(context),
    ]
