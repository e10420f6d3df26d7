"""The docker stand-in: real output shapes (parsed by the bot's own parsers) and mutations."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable

from bot.diagnosis.parsers import parse_docker_ps, resolve_container
from qcc_sandbox import SandboxDir

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ")
PS_JSON = [
    "docker",
    "ps",
    "-a",
    "--no-trunc",
    "--filter",
    "label=com.docker.compose.project=qcc_test",
    "--format",
    "{{json .}}",
]


def out(box: SandboxDir, argv: list[str] | str) -> str:
    res = box.run(argv)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode("utf-8", "replace")


def test_ps_json_parses_with_the_bot_parser(loaded: Callable[[str], SandboxDir]) -> None:
    """`ps --format '{{json .}}'` rows parse into Containers with labels, state and exit code."""
    box = loaded("migration_failed")
    containers = parse_docker_ps(out(box, PS_JSON))
    by_name = {c.name: c for c in containers}
    assert set(by_name) == {"qcc_test_proxy", "qcc_test_mysql"}
    proxy = by_name["qcc_test_proxy"]
    assert proxy.state == "exited" and proxy.exit_code == 1
    assert re.fullmatch(r"Exited \(1\) \d+ minutes ago", proxy.status)
    assert proxy.compose_project == "qcc_test" and proxy.compose_service == "proxy"
    assert len(proxy.id) == 64
    assert resolve_container(containers, "qcc_test", "proxy") is proxy


def test_ps_json_is_go_shaped(loaded: Callable[[str], SandboxDir]) -> None:
    """Keys are sorted, Labels is one "k=v,k=v" string and `->` is escaped as Go does."""
    raw = out(loaded("healthy"), PS_JSON).splitlines()
    row = json.loads(raw[0])
    assert list(row) == sorted(row)
    assert isinstance(row["Labels"], str) and "com.docker.compose.service=" in row["Labels"]
    assert "\\u003e" in raw[0] and "->" in row["Ports"]
    assert row["Command"].startswith('"') and row["Size"] == "0B"


def test_old_naming_is_resolved_from_labels(loaded: Callable[[str], SandboxDir]) -> None:
    """With the seed's compose-default names the bot still finds the proxy by its labels."""
    containers = parse_docker_ps(out(loaded("migration_failed_seed_naming"), PS_JSON))
    found = resolve_container(containers, "qcc_test", "proxy")
    assert found is not None and found.name == "qcc_test-proxy-1"


def test_ps_filters_quiet_and_publish(loaded: Callable[[str], SandboxDir]) -> None:
    """-q prints short IDs; publish=8001 finds only the running squatter; default hides stopped."""
    box = loaded("port_conflict")
    ids = out(box, ["docker", "ps", "-aq", "--filter", "label=com.docker.compose.project=qcc_test"]).split()
    assert len(ids) == 2 and all(len(i) == 12 for i in ids)
    pub = parse_docker_ps(
        out(box, ["docker", "ps", "-a", "--no-trunc", "--filter", "publish=8001", "--format", "{{json .}}"])
    )
    assert [c.name for c in pub] == ["qcc_proxy_debug"]
    running = parse_docker_ps(out(box, ["docker", "ps", "--format", "{{json .}}"]))
    assert "qcc_test_proxy" not in {c.name for c in running}  # Created, so not in plain `ps`
    table = out(box, ["docker", "ps", "-a"])
    assert table.startswith("CONTAINER ID   IMAGE") and "qcc_proxy_debug" in table


def test_inspect_array_and_missing_object(loaded: Callable[[str], SandboxDir]) -> None:
    """inspect prints a real-shaped array; a missing name adds an error and exit 1."""
    box = loaded("panic")
    data = json.loads(out(box, ["docker", "inspect", "qcc_test_proxy"]))
    assert isinstance(data, list) and len(data) == 1
    st = data[0]["State"]
    assert st["Status"] == "exited" and st["ExitCode"] == 2 and st["OOMKilled"] is False
    assert data[0]["Name"] == "/qcc_test_proxy" and data[0]["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", st["FinishedAt"])
    res = box.run(["docker", "inspect", "qcc_test_proxy", "ghost"])
    assert res.returncode == 1
    assert b"Error: No such object: ghost" in res.stderr
    assert len(json.loads(res.stdout)) == 1
    fmt = out(
        box, ["docker", "inspect", "-f", "{{.State.ExitCode}} {{json .State.Running}}", "qcc_test_proxy"]
    )
    assert fmt == "2 false\n"


def test_logs_split_streams_with_timestamps(loaded: Callable[[str], SandboxDir]) -> None:
    """The entrypoint banner is on stdout, Go's log lines on stderr, each with RFC3339Nano stamps."""
    box = loaded("migration_failed")
    res = box.run(["docker", "logs", "--timestamps", "qcc_test_proxy"])
    stdout, stderr = res.stdout.decode().splitlines(), res.stderr.decode().splitlines()
    assert any("Claude Code CLI" in line for line in stdout)
    assert all(TS_RE.match(line) for line in stdout + stderr)
    assert stderr[-1].endswith("Error 1054 (42S22): Unknown column 'health_check_model' in 'field list'")
    assert "using MySQL storage" in stderr[-2]
    stamp, go_date, go_time = stderr[-1].split(" ")[:3]
    assert go_date == stamp[:10].replace("-", "/") and go_time == stamp[11:19]


def test_logs_tail_counts_records_across_streams(loaded: Callable[[str], SandboxDir]) -> None:
    """--tail N keeps the last N lines of the merged log; --tail 0 prints nothing."""
    box = loaded("panic")
    merged = out(box, "docker logs --tail 5 qcc_test_proxy 2>&1").splitlines()
    assert len(merged) == 5 and merged[-1].strip().startswith("/app/cmd/cccli/main.go:41")
    assert out(box, "docker logs --tail 0 qcc_test_proxy 2>&1") == ""
    panic_line = next(
        line for line in out(box, "docker logs qcc_test_proxy 2>&1").splitlines() if line.startswith("panic:")
    )
    assert panic_line == "panic: runtime error: invalid memory address or nil pointer dereference"


def test_logs_of_missing_container(loaded: Callable[[str], SandboxDir]) -> None:
    """A missing container gives the daemon's error and exit 1."""
    res = loaded("healthy").run(["docker", "logs", "nope"])
    assert res.returncode == 1 and res.stderr == b"Error response from daemon: No such container: nope\n"


def test_stats_dashes_for_stopped(loaded: Callable[[str], SandboxDir]) -> None:
    """stats --all shows `--` for a stopped container and real figures for a running one."""
    rows = [
        json.loads(line)
        for line in out(
            loaded("migration_failed"), ["docker", "stats", "--no-stream", "--all", "--format", "{{json .}}"]
        ).splitlines()
    ]
    by_name = {r["Name"]: r for r in rows}
    # A real engine prints zeros for a stopped container, not "--" (tests/realengine/test_fidelity.py).
    assert by_name["qcc_test_proxy"]["CPUPerc"] == "0.00%" and by_name["qcc_test_proxy"]["MemUsage"] == "0B / 0B"
    assert by_name["qcc_test_mysql"]["CPUPerc"].endswith("%")
    assert set(rows[0]) == {
        "BlockIO",
        "CPUPerc",
        "Container",
        "ID",
        "MemPerc",
        "MemUsage",
        "Name",
        "NetIO",
        "PIDs",
    }


def test_unknown_flag_is_a_usage_error(loaded: Callable[[str], SandboxDir]) -> None:
    """Unknown flags fail like the docker CLI (exit 125), never silently."""
    res = loaded("healthy").run(["docker", "ps", "--bogus"])
    assert res.returncode == 125 and b"unknown flag: --bogus" in res.stderr


def test_compose_restart_needs_the_checkout(loaded: Callable[[str], SandboxDir]) -> None:
    """`compose -f FILE` resolves FILE from the current directory, as the real tool does."""
    box = loaded("migration_failed")
    res = box.run(
        ["docker", "compose", "-p", "qcc_test", "-f", "docker-compose.test.yml", "restart", "proxy"]
    )
    assert res.returncode == 1 and b"no such file or directory" in res.stderr
    assert box.container_state("qcc_test_proxy") == "exited"


def test_restart_without_the_fix_fails_again(loaded: Callable[[str], SandboxDir]) -> None:
    """migration_failed: restart looks Up for a moment, then exits 1 with the same Error 1054."""
    box = loaded("migration_failed")
    res = box.run(
        ["docker", "compose", "-p", "qcc_test", "-f", "docker-compose.test.yml", "restart", "proxy"],
        cwd=box.checkout,
    )
    assert res.returncode == 0
    assert b"Container qcc_test_proxy  Restarting" in res.stderr and b"Started" in res.stderr
    assert box.container_state("qcc_test_proxy") == "running"
    assert box.container_state("qcc_test_proxy", at=time.time() + 5) == "exited"
    c = box.container("qcc_test_proxy")
    assert c is not None and c["exit_code"] == 1 and len(c["logs"]) == 2


def test_restart_after_the_fix_stays_up(loaded: Callable[[str], SandboxDir]) -> None:
    """With the fix in place (marker), restart gives a healthy start-up log and /version answers."""
    box = loaded("migration_failed")
    box.set_marker("health_check_model_added")
    box.run(
        ["docker", "compose", "-p", "qcc_test", "-f", "docker-compose.test.yml", "restart", "proxy"],
        cwd=box.checkout,
    )
    assert box.container_state("qcc_test_proxy", at=time.time() + 60) == "running"
    time.sleep(0.6)  # log lines appear at their own time: the listening line ~0.3 s after start
    logs = out(box, "docker logs --tail 20 qcc_test_proxy 2>&1")
    assert "Claude Code proxy listening on :8001" in logs
    version = json.loads(out(box, ["curl", "-s", "-m", "5", "http://127.0.0.1:8001/version"]))
    assert version["version"] == "v1.9.4"


def test_up_starts_mysql_first(loaded: Callable[[str], SandboxDir]) -> None:
    """mysql_unavailable: `restart proxy` fails again; `up -d --no-build` starts MySQL then the proxy."""
    box = loaded("mysql_unavailable")
    compose = ["docker", "compose", "-p", "qcc_test", "-f", "docker-compose.test.yml"]
    box.run([*compose, "restart", "proxy"], cwd=box.checkout)
    assert box.container_state("qcc_test_proxy", at=time.time() + 5) == "exited"
    time.sleep(0.5)  # the restarted proxy needs ~0.3 s to die; `up` would otherwise see it Running
    res = box.run([*compose, "up", "-d", "--no-build"], cwd=box.checkout)
    lines = res.stderr.decode().splitlines()
    assert lines.index(" Container qcc_test_mysql  Started") < lines.index(
        " Container qcc_test_proxy  Started"
    )
    assert box.container_state("qcc_test_proxy", at=time.time() + 60) == "running"


def test_port_conflict_then_removal(loaded: Callable[[str], SandboxDir]) -> None:
    """The port holder blocks `up` (port is already allocated); after `rm -f` it starts."""
    box = loaded("port_conflict")
    compose = ["docker", "compose", "-p", "qcc_test", "-f", "docker-compose.test.yml", "up", "-d"]
    res = box.run(compose, cwd=box.checkout)
    assert res.returncode == 1 and b"Bind for 0.0.0.0:8001 failed: port is already allocated" in res.stderr
    assert box.container_state("qcc_test_proxy") == "created"
    assert out(box, ["docker", "rm", "-f", "qcc_proxy_debug"]) == "qcc_proxy_debug\n"
    assert box.run(compose, cwd=box.checkout).returncode == 0
    assert box.container_state("qcc_test_proxy", at=time.time() + 60) == "running"


def test_rm_running_needs_force(loaded: Callable[[str], SandboxDir]) -> None:
    """`docker rm` of a running container fails without -f, like the daemon."""
    res = loaded("healthy").run(["docker", "rm", "qcc_test_proxy"])
    assert res.returncode == 1 and b"stop the container before removing or force remove" in res.stderr


def test_rollback_rebuilds_from_the_pinned_commit(loaded: Callable[[str], SandboxDir]) -> None:
    """panic: restart panics again; checkout of the previous commit + `up -d --build` recreates and runs."""
    box = loaded("panic")
    compose = "docker compose -p qcc_test -f docker-compose.test.yml"
    box.run(f"{compose} restart proxy", cwd=box.checkout)
    assert box.container_state("qcc_test_proxy", at=time.time() + 5) == "exited"
    old_id = box.container("qcc_test_proxy")["id"]  # type: ignore[index]
    good = "2ecc82e78cad33e4e071a4a991a45028ceecc7dd"
    res = box.run(
        [
            "sh",
            "-c",
            'git checkout --detach "$1" && docker compose -p "$2" -f "$3" up -d --build',
            "rollback",
            good,
            "qcc_test",
            "docker-compose.test.yml",
        ],
        cwd=box.checkout,
    )
    assert res.returncode == 0, res.stderr
    assert b"Container qcc_test_proxy  Recreated" in res.stderr
    c = box.container("qcc_test_proxy")
    assert c is not None and c["id"] != old_id and c["image_commit"] == good
    assert box.container_state("qcc_test_proxy", at=time.time() + 60) == "running"
    assert json.loads(out(box, ["curl", "-s", "http://127.0.0.1:8001/version"]))["git_commit"] == good[:7]


def test_concurrent_mutations_keep_state_consistent(loaded: Callable[[str], SandboxDir]) -> None:
    """20 parallel restarts: state.json stays valid and every invocation is logged once."""
    import subprocess

    box = loaded("healthy")
    procs = [
        subprocess.Popen(
            ["docker", "restart", "qcc_test_proxy"],
            env=box.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(20)
    ]
    assert all(p.wait(60) == 0 for p in procs)
    assert box.count("docker", "restart") == 20
    c = box.container("qcc_test_proxy")
    assert c is not None and len(c["logs"]) == 21  # the original run plus one per restart
