"""Docker parsers read captured `docker ps` / `docker inspect` / `docker stats` output, quirks included."""

from __future__ import annotations

import pytest

from bot.diagnosis.parsers import (
    PARSERS,
    Container,
    parse_docker_inspect,
    parse_docker_ps,
    parse_docker_stats,
    parse_resource_usage,
    parse_size,
    resolve_container,
)
from bot.runbook.loader import load_runbook

from .quirks import DOCUMENT_QUIRKS, QUIRKS, fixture


@pytest.mark.parametrize("quirk", QUIRKS)
def test_docker_ps_labels_any_quirk(quirk: str) -> None:
    """`docker ps --format '{{json .}}'` rows parse identically with ANSI, CRLF, junk and U+FFFD lines."""
    rows = parse_docker_ps(QUIRKS[quirk](fixture("docker_ps_labels.jsonl")))
    assert [(c.name, c.state, c.exit_code) for c in rows] == [("qcc_test_proxy", "exited", 1),
                                                            ("qcc_test_mysql", "running", None)]
    assert rows[0].compose_project == "qcc_test" and rows[0].compose_service == "proxy"
    assert rows[0].row == "qcc_test_proxy Exited (1) 2 minutes ago"


@pytest.mark.parametrize("quirk", QUIRKS)
def test_docker_ps_seed_names_without_state(quirk: str) -> None:
    """Older Docker omits State: it is derived from Status; seed names `qcc_test-proxy-1` resolve."""
    rows = parse_docker_ps(QUIRKS[quirk](fixture("docker_ps_seed_names.jsonl")))
    assert [c.state for c in rows] == ["running", "running"]
    assert resolve_container(rows, "qcc_test", "proxy").name == "qcc_test-proxy-1"  # type: ignore[union-attr]


@pytest.mark.parametrize(("names", "expected"), [
    (["qcc_test_proxy", "qcc_test_mysql"], "qcc_test_proxy"),  # current fixed names
    (["qcc_test-proxy-1", "qcc_test-mysql-1"], "qcc_test-proxy-1"),  # compose v2 default
    (["qcc_test_proxy_1"], "qcc_test_proxy_1"),  # compose v1 default
    (["other"], None),
])
def test_resolve_container_by_name_without_labels(names: list[str], expected: str | None) -> None:
    """Without compose labels the fixed name wins, then compose's default names."""
    found = resolve_container([Container(name=n) for n in names], "qcc_test", "proxy")
    assert (found.name if found else None) == expected


def test_resolve_container_prefers_labels() -> None:
    """A container labelled project=qcc_test service=proxy wins whatever its name."""
    cs = [Container(name="qcc_test_proxy"),
          Container(name="renamed", labels={"com.docker.compose.project": "qcc_test",
                                            "com.docker.compose.service": "proxy"})]
    assert resolve_container(cs, "qcc_test", "proxy").name == "renamed"  # type: ignore[union-attr]


def test_docker_ps_labels_as_object_and_multiple_names() -> None:
    """Labels given as an object and `Names` with several names are accepted."""
    rows = parse_docker_ps('{"Names":"/a,/b","Status":"Restarting (2) 5 seconds ago",'
                           '"Labels":{"com.docker.compose.project":"p"}}')
    assert rows[0].name == "a" and rows[0].state == "restarting" and rows[0].exit_code == 2
    assert rows[0].compose_project == "p"


@pytest.mark.parametrize("quirk", DOCUMENT_QUIRKS)
def test_docker_inspect_exited(quirk: str) -> None:
    """`docker inspect` JSON array: exit code, timestamps (RFC3339Nano), labels, DSN presence (not value)."""
    states = parse_docker_inspect(DOCUMENT_QUIRKS[quirk](fixture("docker_inspect_exited.json")))
    proxy, mysql = states
    assert (proxy.name, proxy.status, proxy.exit_code) == ("qcc_test_proxy", "exited", 1)
    assert not proxy.running
    assert proxy.started_at is not None and proxy.finished_at is not None
    assert proxy.finished_at > proxy.started_at
    assert proxy.compose_service == "proxy" and proxy.dsn_configured is True
    assert "S3cr3t" not in proxy.model_dump_json()
    assert mysql.running and mysql.pid == 1822 and mysql.exit_code == 0


def test_docker_inspect_oom_and_created() -> None:
    """OOMKilled, memory limit, restart count; a never-started container has no exit code and keeps Error."""
    (oom,) = parse_docker_inspect(fixture("docker_inspect_oom.json"))
    assert oom.oom_killed and oom.memory_limit == 512 * 1024 * 1024 and oom.exit_code == 137
    assert oom.restart_count == 3 and oom.restart_policy == "on-failure"
    (created,) = parse_docker_inspect(fixture("docker_inspect_created.json"))
    assert created.status == "created" and created.exit_code is None and created.started_at is None
    assert "port is already allocated" in created.error


@pytest.mark.parametrize("text", ["", "[]", "Error: No such object: abc", "[{]", "{\"Name\": 1}", "null",
                                  "Error: No such object\n[]", "\ufffd\ufffd"])
def test_docker_inspect_never_raises(text: str) -> None:
    """Empty, error and malformed output gives an empty list, never an exception."""
    assert parse_docker_inspect(text) == []


@pytest.mark.parametrize("quirk", QUIRKS)
def test_docker_stats_percent_and_dashes(quirk: str) -> None:
    """CPUPerc "199.50%", MemUsage "1.9GiB / 1.94GiB"; `--` of stopped containers become None."""
    rows = {s.name: s for s in parse_docker_stats(QUIRKS[quirk](fixture("docker_stats.jsonl")))}
    proxy = rows["qcc_test_proxy"]
    assert proxy.cpu_pct == 199.5 and proxy.mem_pct == 97.94 and proxy.pids == 61
    assert proxy.mem_usage == round(1.9 * 1024**3) and proxy.mem_limit == round(1.94 * 1024**3)
    s = rows["qcc_prod_proxy"]
    assert [s.cpu_pct, s.mem_usage, s.mem_limit, s.mem_pct, s.pids] == [None] * 5


@pytest.mark.parametrize(("value", "expected"), [
    ("1.9GiB", round(1.9 * 1024**3)), ("402.1MiB", round(402.1 * 1024**2)), ("8.19kB", 8190), ("0B", 0),
    ("--", None), ("", None), ("12XB", None)])
def test_parse_size(value: str, expected: int | None) -> None:
    """Docker's binary and decimal size units."""
    assert parse_size(value) == expected


def test_every_runbook_parser_is_registered() -> None:
    """Every `parser:` the packaged runbook names exists and survives junk input."""
    runbook = load_runbook()
    for step in runbook.steps:
        for _, parser, _ in step.leaves:
            assert parser in PARSERS, parser
            PARSERS[parser]("\x1b[31m\ufffd junk\r\n{not json\n--\n")


BUSY_V1 = "e39c03d88499779a63ff24de5a9541f5196e8d15e0cdf2855620d13366068618"
IDLE_V1 = "3bf41ee30d77ab2facf322fe6d0fb4d387dbf16985fc4a8fb8e75237c4d386d4"


@pytest.mark.parametrize("quirk", QUIRKS)
def test_cgroup_v1_read_matches_docker_stats(quirk: str) -> None:
    """A cgroup v1 read captured on the real engine, beside `docker stats` of the same moment:
    busy "100.90% 972KiB / 64MiB (1.48%)", idle "0.00% 640KiB / 23.54GiB (0.00%)"."""
    rows = {s.id: s for s in parse_resource_usage(QUIRKS[quirk](fixture("cgroup_v1.txt")))}
    busy, idle = rows[BUSY_V1], rows[IDLE_V1]
    assert busy.source == idle.source == "cgroup files" and busy.name == idle.name == ""
    assert busy.mem_usage == 1007616 - 12288 and busy.mem_limit == 64 * 1024**2 and busy.mem_pct == 1.48
    assert busy.cpu_pct == 99.14 and busy.pids == 1
    assert busy.raw == "e39c03d88499 CPU 99.14% MEM 972KiB / 64MiB (1.48%)"
    # unlimited: the host's memory is the limit, as docker stats shows it
    assert idle.mem_limit == 24683584 * 1024 and idle.cpu_pct == 0.0
    assert idle.named("qcc_test_mysql").raw == "qcc_test_mysql CPU 0.00% MEM 640KiB / 23.54GiB (0.00%)"


def test_cgroup_v2_read_max_limit_and_missing_values() -> None:
    """cgroup v2 (`memory.max` "max", `cpu.stat` usage_usec); an unreadable CPU counter or pid
    count stays None, and the figures are still computed from what was read."""
    rows = {s.id[:1]: s for s in parse_resource_usage(fixture("cgroup_v2.txt"))}
    proxy, other = rows["1"], rows["2"]
    assert proxy.mem_limit == 2030000 * 1024 and proxy.mem_usage == 2020000000
    assert proxy.mem_pct == 97.18 and proxy.cpu_pct == 199.5 and proxy.pids == 61
    assert other.cpu_pct is None and other.pids is None and other.mem_limit == 536870912
    assert other.raw.endswith("CPU -- MEM 381.5MiB / 512MiB (74.51%)")


@pytest.mark.parametrize("text", [
    "@@qcc-cgroup memtotal_kb=1\n",  # no container
    "@@qcc-cgroup memtotal_kb=x\nmem " + "a" * 64 + " usage=junk limit=max\n@@qcc-cpu t=5\n",  # one sample
    "mem " + "a" * 63 + " usage=1\n",  # not an id
])
def test_cgroup_read_odd_input(text: str) -> None:
    """Short, unsampled or junk reads never raise; what cannot be read is None."""
    for row in parse_resource_usage(text):
        assert row.cpu_pct is None and row.mem_pct is None


def test_resource_usage_falls_back_to_docker_stats_rows() -> None:
    """Without the cgroup header the step's output is `docker stats` JSON (the fallback)."""
    rows = parse_resource_usage(fixture("docker_stats.jsonl"))
    assert {r.source for r in rows} == {"docker stats"} and "qcc_test_proxy" in {r.name for r in rows}
