"""Run the whole chat topology as local processes: `make run`, and the integration tests.

    from stack import LocalStack, StackConfig
    with LocalStack(StackConfig.from_env()) as running:
        print(running.lb_url)

Stdlib only, so it can be imported before the project's dependencies are installed.
"""

from stack.infra import InfraError, ensure_database, ensure_infra, free_port
from stack.local import REPO_ROOT, LocalStack, StackConfig
from stack.process import ManagedProcess, StackStartError, http_status

__all__ = [
    "REPO_ROOT",
    "InfraError",
    "LocalStack",
    "ManagedProcess",
    "StackConfig",
    "StackStartError",
    "ensure_database",
    "ensure_infra",
    "free_port",
    "http_status",
]
