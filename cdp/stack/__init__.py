"""The local stack: a Kafka broker (KRaft, one node) and a Redis server, without Docker.

``cdp stack up|down|status|logs`` is the command line; :class:`LocalStack` is the
library API used by tests and other commands::

    from cdp.settings import get_settings
    from cdp.stack import LocalStack

    stack = LocalStack(get_settings())
    stack.up(progress=print)
    assert all(s.running for s in stack.status())
    stack.down()
"""

from cdp.stack.local import LocalStack
from cdp.stack.runner import CommandRunner, LoggedRunner, Progress
from cdp.stack.service import ServiceName, ServiceState, ServiceStatus

__all__ = [
    "CommandRunner",
    "LocalStack",
    "LoggedRunner",
    "Progress",
    "ServiceName",
    "ServiceState",
    "ServiceStatus",
]
