from __future__ import annotations

from collections.abc import Iterator

import pytest

from raftkube.testing.agent_harness import AgentHarness


@pytest.fixture(scope="module")
def harness() -> Iterator[AgentHarness]:
    made = AgentHarness.start(workers=("w1", "w2"))
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="module")
def agent(harness: AgentHarness):
    return harness.start_agent("w1", node_agent=harness.serving_config("w1"))
