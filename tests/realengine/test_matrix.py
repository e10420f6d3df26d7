"""The real-engine failure matrix: each test makes one failure state for real (real Docker,
the real MariaDB container, the Go stand-in with the real MySQL driver) and proves that
``qcc-bot diagnose`` over a real sshd names the right top cause and quotes the deciding line.

The bundle of every run is saved to ``tests/realengine/captures/<state>/``: those captures are
the ground truth offline rule tests can replay (tests/realengine/test_captures.py).
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.realengine.diag import diagnose, expect
from tests.realengine.host import MYSQL, PROXY, RealHost, docker
from tests.realengine.outcomes import OUTCOMES

pytestmark = [pytest.mark.docker, pytest.mark.sshd]



@pytest.fixture(autouse=True)
def _state_counted(request: pytest.FixtureRequest) -> Any:
    """A state whose test failed before the bot was asked still counts (as not right)."""
    before = len(OUTCOMES.states)
    yield
    if len(OUTCOMES.states) == before:
        state = request.node.name.removeprefix("test_")
        OUTCOMES.states[state] = False
        OUTCOMES.said[state] = "the state could not be made or the bot did not answer (see the test's error)"


def _serving(host: RealHost) -> None:
    host.up("--build")
    host.wait_serving()


def _crashed(host: RealHost, *up_args: str) -> dict[str, Any]:
    host.up("--build", *up_args, check=False)
    return host.wait_exited()


def _drop_column(host: RealHost, *, forget_migration: bool) -> None:
    stmts = ["ALTER TABLE nodes DROP COLUMN health_check_model"]
    if forget_migration:
        stmts.append("DELETE FROM schema_migrations")
    host.sql(*stmts)


def test_healthy_start(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A clean start (listening, /version answering, MySQL healthy) is diagnosed healthy."""
    _serving(real_host)
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "healthy_start")
    expect("healthy_start", report, real_host, "healthy", "Claude Code proxy listening on :8001")


def test_docker_stop(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """`docker stop` of a serving proxy: exit 2 (Go PID 1, no SIGTERM handler), no crash line."""
    _serving(real_host)
    docker("stop", "-t", "2", PROXY)
    assert real_host.state(PROXY)["ExitCode"] == 2
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "docker_stop")
    expect("docker_stop", report, real_host, "unknown", "exit 2", "Exited (2)", "ExitCode")


def _column_missing(host: RealHost) -> None:
    host.up_mysql()
    _drop_column(host, forget_migration=False)  # recorded as done: the ALTER is not re-run
    state = _crashed(host)
    assert state["ExitCode"] == 1
    assert "Error 1054" in host.logs()


def test_column_missing_at_query_time(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """The migration is recorded but the column is gone: Error 1054 when the nodes are loaded."""
    _column_missing(real_host)
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "column_missing")
    expect("column_missing", report, real_host, "migration_failed", "Unknown column 'health_check_model'")


def test_alter_denied(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """ALTER revoked from qcc while the migration must run: Error 1142 after the pool line."""
    real_host.up_mysql()
    _drop_column(real_host, forget_migration=True)
    real_host.sql("REVOKE ALTER ON qcc_proxy.* FROM 'qcc'@'%'", "FLUSH PRIVILEGES")
    _crashed(real_host)
    assert "Error 1142" in real_host.logs()
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "alter_denied")
    expect("alter_denied", report, real_host, "mysql_access_denied", "ALTER command denied")


def test_duplicate_column(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """The column was added by hand, the migration is not recorded: Error 1060."""
    real_host.up_mysql()
    real_host.sql("DELETE FROM schema_migrations")
    _crashed(real_host)
    assert "Error 1060" in real_host.logs()
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "duplicate_column")
    expect("duplicate_column", report, real_host, "migration_failed", "Duplicate column name")


def test_metadata_lock(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """Another session holds a metadata lock on nodes: the ALTER waits, a bare deadline 5 s later."""
    real_host.up_mysql()
    _drop_column(real_host, forget_migration=True)
    conn = real_host.connect_admin()
    try:
        with conn.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT COUNT(*) FROM nodes")  # the open transaction keeps its MDL
        _crashed(real_host)
    finally:
        conn.close()
    assert "context deadline exceeded" in real_host.logs()
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "metadata_lock")
    expect("metadata_lock", report, real_host, "mysql_unavailable", "context deadline exceeded")


def test_mysql_stopped_before_start(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """MySQL stopped, then the proxy started by hand (`docker start`): no such host, exit 1."""
    _serving(real_host)
    docker("stop", "-t", "2", PROXY, MYSQL)
    docker("start", PROXY)
    real_host.wait_log("no such host")
    real_host.wait_exited()
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "mysql_stopped_before_start")
    expect("mysql_stopped_before_start", report, real_host, "mysql_unavailable", "no such host")


def test_mysql_stopped_while_running(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """MySQL stopped under a serving proxy: the driver's own lines, then ping failures."""
    _serving(real_host)
    docker("stop", "-t", "2", MYSQL)
    real_host.wait_log("no such host", timeout_s=30)
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "mysql_stopped_while_running")
    expect("mysql_stopped_while_running", report, real_host, "mysql_lost", "no such host",
           "closing bad idle connection", "bad connection")


def test_wrong_password(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A wrong password in the DSN: Error 1045 after the pool line."""
    real_host.write_env(PROXY_MYSQL_DSN=real_host.dsn(password="not-the-password"))
    _crashed(real_host)
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "wrong_password")
    expect("wrong_password", report, real_host, "mysql_access_denied", "Access denied for user 'qcc'")


def test_dsn_wrong_port(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """The DSN names port 3307 while MySQL is healthy on 3306: connection refused."""
    real_host.write_env(PROXY_MYSQL_DSN=real_host.dsn(port=3307))
    _crashed(real_host)
    assert "connection refused" in real_host.logs()
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "dsn_wrong_port")
    expect("dsn_wrong_port", report, real_host, "dsn_wrong_target", ":3307")


def test_port_taken_by_container(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """Another container publishes 127.0.0.1:8001: the proxy stays Created, exit 128."""
    docker("run", "-d", "--name", "qcc_squatter", "--label", "qcc.realengine=1", "-p", "127.0.0.1:8001:80",
           real_host.images.base, "httpd", "-f", "-p", "80")
    try:
        res = real_host.up("--build", check=False)
        assert "allocated" in res.stderr or "already in use" in res.stderr, res.stderr[-500:]
        report, _ = diagnose(real_host, engine_sshd, tmp_path, "port_taken_by_container")
    finally:
        docker("rm", "-f", "qcc_squatter", check=False)
    expect("port_taken_by_container", report, real_host, "port_conflict", "qcc_squatter")


def test_port_taken_by_host_process(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A host process listens on 127.0.0.1:8001: Docker cannot publish, the proxy stays Created."""
    squatter = subprocess.Popen(["python3", "-m", "http.server", "8001", "--bind", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", 8001)) == 0:
                    break
            time.sleep(0.1)
        res = real_host.up("--build", check=False)
        assert "already in use" in res.stderr, res.stderr[-500:]
        report, _ = diagnose(real_host, engine_sshd, tmp_path, "port_taken_by_host_process")
    finally:
        squatter.terminate()
        squatter.wait(10)
    expect("port_taken_by_host_process", report, real_host, "port_conflict", "python3", "8001")


def test_crash_loop(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """Error 1054 under `restart: unless-stopped`: Restarting, RestartCount growing. The root cause
    stays first (the 1054 line); the loop is listed as its own cause."""
    real_host.write_env(PROXY_RESTART="unless-stopped")
    real_host.up_mysql()
    _drop_column(real_host, forget_migration=False)
    real_host.up("--build")
    # Docker's restart back-off doubles (seconds apart on a loaded host): two crashes are enough.
    real_host.wait(lambda: real_host.logs().count("Error 1054") >= 2 and real_host.state(PROXY).get("Restarting")
                   or real_host.state(PROXY).get("RestartCount", 0) >= 1, "a restart under the policy", 120)
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "crash_loop")
    expect("crash_loop", report, real_host, "migration_failed", "Unknown column 'health_check_model'",
           also="crash_loop")


def test_empty_dsn(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """PROXY_MYSQL_DSN empty: the proxy silently serves from SQLite."""
    real_host.write_env(PROXY_MYSQL_DSN="")
    _serving(real_host)
    assert "using SQLite storage" in real_host.logs()
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "empty_dsn")
    expect("empty_dsn", report, real_host, "config_error", "using SQLite storage")


def test_malformed_dsn(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A DSN without the slash before the database: the driver's `invalid DSN`, no store line."""
    real_host.write_env(PROXY_MYSQL_DSN=real_host.dsn().replace(")/", ")"))
    _crashed(real_host)
    assert "invalid DSN" in real_host.logs()
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "malformed_dsn")
    expect("malformed_dsn", report, real_host, "config_error", "invalid DSN")


def test_listen_addr_mismatch(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """LISTEN_ADDR=:8000 while 8001 is published: listening, but nothing answers on 8001."""
    real_host.write_env(LISTEN_ADDR=":8000")
    real_host.up("--build")
    real_host.wait_log("Claude Code proxy listening on :8000")
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "listen_addr_mismatch")
    expect("listen_addr_mismatch", report, real_host, "listen_addr_mismatch", "listening on :8000")


BROKEN_DOCKERFILE_LINE = "RUN go build -o /app/ccproxy ./cmd/cccli\n"


def _previous_image(host: RealHost) -> tuple[str, str]:
    _serving(host)
    good = host.head()
    text = (host.checkout / "Dockerfile").read_text().replace("COPY bin/ccproxy /app/ccproxy\n",
                                                               BROKEN_DOCKERFILE_LINE)
    bad = host.commit("build ccproxy in the image", {"Dockerfile": text, "VERSION": "v1.9.5\n"})
    # What deploy-server.sh does: remove, build (fails), bring the previous image back up.
    host.compose("rm", "-s", "-f", "proxy")
    build = host.compose("build", "proxy", check=False)
    # compose 2.40 with the classic builder (no buildx) exits 0 even when the build failed.
    assert build.returncode != 0 or "failed to solve" in build.stderr, build.stderr[-800:]
    host.up("--no-build")
    host.wait_serving()
    return good, bad


def test_previous_image_reupped(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A failed build re-upped the previous image: /version's commit is not the checkout HEAD."""
    good, bad = _previous_image(real_host)
    status, body = real_host.http_get("/version") or (0, "")
    assert good in body and bad not in body
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "previous_image_reupped")
    expect("previous_image_reupped", report, real_host, "previous_image_running", good[:12], good)


def test_oneoff_beside_stopped_proxy(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A `docker compose run --rm proxy` one-off runs beside the stopped proxy: it is not the proxy."""
    _serving(real_host)
    docker("stop", "-t", "2", PROXY)
    real_host.compose("run", "-d", "--rm", "--no-deps", "--entrypoint", "sh", "proxy", "-c", "sleep 600")
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "oneoff_beside_stopped_proxy")
    expect("oneoff_beside_stopped_proxy", report, real_host, "unknown", "exit 2", "Exited (2)", "ExitCode")


def test_chinese_locale_host(real_host: RealHost, zh_sshd: Any, tmp_path: Path) -> None:
    """The same Error 1054 crash on a host whose sessions run with LANG=zh_CN.UTF-8."""
    _column_missing(real_host)
    report, _ = diagnose(real_host, zh_sshd, tmp_path, "chinese_locale_host")
    expect("chinese_locale_host", report, real_host, "migration_failed", "Unknown column 'health_check_model'")


def test_panic_in_health_scheduler(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A nil dereference in the first health check: `panic:` and goroutine frames, exit 2."""
    real_host.write_env(HEALTH_CHECK_PANIC="1", HEALTH_CHECK_FIRST_DELAY="1s")
    _serving(real_host)
    state = real_host.wait_exited()
    assert state["ExitCode"] == 2
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "panic_in_health_scheduler")
    expect("panic_in_health_scheduler", report, real_host, "panic", "panic: runtime error")


def test_null_in_nodes_row(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """A node row with NULL last_error: the real Scan error when the nodes are loaded."""
    real_host.up_mysql()
    real_host.sql("UPDATE nodes SET last_error = NULL WHERE id = 'n2'")
    _crashed(real_host)
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "null_in_nodes_row")
    expect("null_in_nodes_row", report, real_host, "bad_data", 'name "last_error"')


# Last: these leave kernel OOM lines in dmesg, which every later diagnosis on this machine sees.
def test_cgroup_oom_kill(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """Health checks pile up under a 96 MB limit: the kernel kills ccproxy (OOMKilled, 137)."""
    real_host.write_env(PROXY_MEM_LIMIT="96m", HEALTH_CHECK_CLI_MB="24", HEALTH_CHECK_FIRST_DELAY="2s",
                        HEALTH_CHECK_INTERVAL="500ms")
    _serving(real_host)
    state = real_host.wait_exited(timeout_s=60)
    assert state["OOMKilled"] and state["ExitCode"] == 137, state
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "cgroup_oom_kill")
    expect("cgroup_oom_kill", report, real_host, "oom_killed", "OOMKilled", "Memory cgroup out of memory")


def _kmsg(line: str) -> bool:
    try:
        with open("/dev/kmsg", "w") as f:
            f.write(line + "\n")
        return True
    except OSError:
        return False


def test_stale_kernel_oom_line(real_host: RealHost, engine_sshd: Any, tmp_path: Path) -> None:
    """An OOM kill of another pid from an earlier incident is in dmesg; today's crash is Error 1054."""
    if not _kmsg("<3>Out of memory: Killed process 4242 (ccproxy) total-vm:1843212kB, anon-rss:912344kB, "
                 "file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:2100kB oom_score_adj:0"):
        pytest.fail("/dev/kmsg is not writable: this state needs a kernel OOM line in dmesg", pytrace=False)
    _column_missing(real_host)
    report, _ = diagnose(real_host, engine_sshd, tmp_path, "stale_kernel_oom_line")
    expect("stale_kernel_oom_line", report, real_host, "migration_failed", "Unknown column 'health_check_model'")
