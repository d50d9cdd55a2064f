"""Shared pytest options: `--soak` enables the long chaos soaks; `--chaos-seed`,
`--chaos-rounds` and `--chaos-duration` steer the chaos tests that read them."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long chaos soak tests")
    parser.addoption("--chaos-seed", type=int, default=None,
                     help="seed of the chaos tests (default: a random one, printed)")
    parser.addoption("--chaos-rounds", "--rounds", type=int, default=5,
                     help="rounds of the chaos soak tests")
    parser.addoption("--chaos-duration", "--duration", type=float, default=30.0,
                     help="seconds of faults per chaos soak round")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        # A soak lasts as long as its rounds: size its pytest-timeout to them.
        rounds = config.getoption("--chaos-rounds")
        budget = rounds * (config.getoption("--chaos-duration") + 180.0) + 300.0
        for item in items:
            if "soak" in item.keywords:
                item.add_marker(pytest.mark.timeout(budget))
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
