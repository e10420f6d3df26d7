"""The step ids that code names: the one place a step id is spelled outside the runbook YAML.

``StepId`` values are checked against the runbook when it loads (a missing or renamed id fails
with a message naming it); a test forbids other step-id string literals in ``bot/``.
"""

from __future__ import annotations

from enum import StrEnum


class StepId(StrEnum):
    """Ids of runbook steps (and parts of multi-part steps) that code refers to."""

    CONTAINER_STATUS = "container_status"
    CONTAINER_INSPECT = "container_inspect"
    PROXY_LOGS = "proxy_logs"
    GREP_MIGRATION = "grep_migration"
    GREP_HEALTH_SCHEDULER = "grep_health_scheduler"
    GREP_PANIC = "grep_panic"
    SCHEMA_NODES = "schema_nodes"
    RESOURCE_USAGE = "resource_usage"
    PORT_PUBLISHERS = "port_publishers"
    HOST_FACTS = "host_facts"
    HOST_MEMORY = "host_memory"
    HOST_DISK = "host_disk"
    HOST_PROCESSES = "host_processes"
    PORT_LISTENERS = "port_listeners"
    DEPLOY_RUNNING = "deploy_running"
    KERNEL_OOM = "kernel_oom"
    CHECKOUT_HEAD = "checkout_head"
    DEPLOYED_VERSION = "deployed_version"
    PROXY_ROOT = "proxy_root"
