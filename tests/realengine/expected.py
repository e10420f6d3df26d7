"""What an expert says about each captured real-engine state (``tests/realengine/captures``).

``EXPECTED[state] = (top cause, needles, also)``: the top cause, lines of which one must be
quoted in its evidence (empty: the cause alone decides), and a cause that must be listed as
well (or None). Same expectations as the live tests in ``test_matrix.py``; the
``previous_image_reupped`` needle there is the run's own commit, so here the cause decides.
"""

from __future__ import annotations

UNKNOWN_COLUMN = "Unknown column 'health_check_model'"
STOPPED = ("exit 2", "Exited (2)", "ExitCode")

EXPECTED: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "healthy_start": ("healthy", ("Claude Code proxy listening on :8001",), None),
    "docker_stop": ("unknown", STOPPED, None),
    "column_missing": ("migration_failed", (UNKNOWN_COLUMN,), None),
    "alter_denied": ("mysql_access_denied", ("ALTER command denied",), None),
    "duplicate_column": ("migration_failed", ("Duplicate column name",), None),
    "metadata_lock": ("mysql_unavailable", ("context deadline exceeded",), None),
    "mysql_stopped_before_start": ("mysql_unavailable", ("no such host",), None),
    "mysql_stopped_while_running": ("mysql_lost", ("no such host", "closing bad idle connection",
                                                   "bad connection"), None),
    "wrong_password": ("mysql_access_denied", ("Access denied for user 'qcc'",), None),
    "dsn_wrong_port": ("dsn_wrong_target", (":3307",), None),
    "port_taken_by_container": ("port_conflict", ("qcc_squatter",), None),
    "port_taken_by_host_process": ("port_conflict", ("python3", "8001"), None),
    "crash_loop": ("migration_failed", (UNKNOWN_COLUMN,), "crash_loop"),
    "empty_dsn": ("config_error", ("using SQLite storage",), None),
    "malformed_dsn": ("config_error", ("invalid DSN",), None),
    "listen_addr_mismatch": ("listen_addr_mismatch", ("listening on :8000",), None),
    "previous_image_reupped": ("previous_image_running", (), None),
    "oneoff_beside_stopped_proxy": ("unknown", STOPPED, None),
    "chinese_locale_host": ("migration_failed", (UNKNOWN_COLUMN,), None),
    "panic_in_health_scheduler": ("panic", ("panic: runtime error",), None),
    "null_in_nodes_row": ("bad_data", ('name "last_error"',), None),
    "cgroup_oom_kill": ("oom_killed", ("OOMKilled", "Memory cgroup out of memory"), None),
    "stale_kernel_oom_line": ("migration_failed", (UNKNOWN_COLUMN,), None),
}
