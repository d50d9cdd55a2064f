"""The controllers every master runs while it leads, in start order.

Options come from MasterConfig.controllers, one mapping per controller:

```yaml
controllers:
  scheduler: {scoring: MostAllocated, nodes_to_score: 50}
  nodeLifecycle: {node_monitor_grace_seconds: 6, eviction_toleration_seconds: 2}
  volumes: {base_path: /var/lib/raftkube/volumes}
```
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raftkube.masters.controllers.deployment import DeploymentController
from raftkube.masters.controllers.endpoints import EndpointsController
from raftkube.masters.controllers.garbage_collector import GarbageCollector
from raftkube.masters.controllers.manager import ControllerContext, ControllerFactory
from raftkube.masters.controllers.node_lifecycle import (
    NodeLifecycleConfig,
    NodeLifecycleController,
)
from raftkube.masters.controllers.replicaset import ReplicaSetController
from raftkube.masters.controllers.scheduler import Scheduler
from raftkube.masters.controllers.scheduling import SchedulerConfig
from raftkube.masters.controllers.statefulset import StatefulSetController
from raftkube.masters.controllers.volumes import VolumeConfig, VolumeController


def _section(context: ControllerContext, name: str) -> Mapping[str, Any]:
    section = context.options.get(name) or {}
    if not isinstance(section, Mapping):
        raise ValueError(f"controllers.{name}: expected a mapping")
    return section


def controller_factories() -> list[ControllerFactory]:
    """Factories of the controllers run by the controller manager."""
    return [
        # A full pass looks at every cached object: at most once a second.
        lambda context: GarbageCollector(context, min_interval=1.0),
        lambda context: Scheduler(context, SchedulerConfig.from_options(
            _section(context, "scheduler"))),
        lambda context: ReplicaSetController(context),
        lambda context: DeploymentController(context),
        lambda context: StatefulSetController(context),
        lambda context: EndpointsController(context),
        lambda context: VolumeController(context, VolumeConfig.from_options(
            _section(context, "volumes"))),
        lambda context: NodeLifecycleController(context, NodeLifecycleConfig.from_options(
            _section(context, "nodeLifecycle"))),
    ]
