"""Test harness for processors: feed events, read back profiles, records and dead letters.

In memory (no broker, no Redis)::

    from cdp.testing import run_in_memory

    result = run_in_memory(events, [churn_risk])
    assert result.trait("email:anna@example.com", "churn_risk") == "high"
    assert result.dead_letters == []

In a pytest suite, the ``cdp_pipeline`` fixture of :mod:`cdp.testing.plugin`
(``pytest_plugins = ["cdp.testing.plugin"]``) runs the same test in memory or,
with ``--cdp-real-stack``, on the real stack. See ``docs/processors.md``.
"""

from __future__ import annotations

from cdp.testing.memory import run_in_memory
from cdp.testing.result import PipelineResult, Record
from cdp.testing.stack import run_on_stack

__all__ = ["PipelineResult", "Record", "run_in_memory", "run_on_stack"]
