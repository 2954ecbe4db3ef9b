"""Every benchmark script imports: they run only by hand, so a broken import (a helper moved
or renamed) would otherwise go unnoticed until someone measures."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

MODULES = sorted(info.name for info in pkgutil.iter_modules(bench.__path__))


def test_the_benchmarks_are_found() -> None:
    assert {"e2e_throughput", "faust_floor", "freshness", "api_latency"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_a_benchmark_module_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench.{name} has no docstring saying what it measures"
