"""Host parsers read captured `ss`, `free`, `df`, `ps`, `dmesg`, `curl /version`, `git log` and SQL rows."""

from __future__ import annotations

import json

import pytest

from bot.diagnosis.hostparse import (
    parse_deploy_procs,
    parse_df,
    parse_free,
    parse_git_log,
    parse_ps,
    parse_schema_columns,
    parse_ss_listeners,
    parse_version_json,
)
from bot.diagnosis.logparse import parse_kernel_oom

from .quirks import DOCUMENT_QUIRKS, QUIRKS, fixture


@pytest.mark.parametrize("quirk", QUIRKS)
def test_ss_listeners_with_processes(quirk: str) -> None:
    """`ss -ltnp`: IPv4/IPv6 listeners with the users:(("docker-proxy",pid=..)) holder."""
    rows = parse_ss_listeners(QUIRKS[quirk](fixture("ss_ltnp.txt")))
    on_8001 = [r for r in rows if r.port == 8001]
    assert [r.address for r in on_8001] == ["0.0.0.0", "[::]"]
    assert on_8001[0].processes == [("docker-proxy", 2211)] and on_8001[0].holder == "docker-proxy (pid 2211)"
    assert {r.port for r in rows} == {8001, 33060, 53, 22}


def test_ss_without_root_has_no_holder() -> None:
    """Without root, ss prints no users: part; the holder is unknown, the port still known."""
    rows = parse_ss_listeners(fixture("ss_ltn_noroot.txt"))
    assert [(r.port, r.processes, r.holder) for r in rows] == [(8001, [], "unknown process")] * 2


def test_ss_several_processes_share_a_socket() -> None:
    """nginx master and worker on one socket are both named."""
    (row,) = parse_ss_listeners('LISTEN 0 511 0.0.0.0:8001 0.0.0.0:* '
                                'users:(("nginx",pid=1201,fd=6),("nginx",pid=1200,fd=6))')
    assert row.processes == [("nginx", 1201), ("nginx", 1200)]


@pytest.mark.parametrize("quirk", QUIRKS)
@pytest.mark.parametrize(("name", "available"), [("free_new.txt", 38), ("free_old.txt", 119)])
def test_free_new_and_old_procps(quirk: str, name: str, available: int) -> None:
    """`free -m`: the `available` column (new procps) or `-/+ buffers/cache` free (old procps)."""
    mem = parse_free(QUIRKS[quirk](fixture(name)))
    assert mem is not None and mem.available_mb == available and mem.total_mb in (1987, 1994)
    assert mem.raw.startswith("Mem:")


def test_memory_and_process_evidence_say_what_the_columns_mean() -> None:
    """Quoted `free -m` / `ps` rows carry no header: the evidence line quotes the row, then reads it."""
    mem = parse_free(fixture("free_new.txt"))
    assert mem is not None
    assert mem.evidence == f"free -m: {mem.raw}  (available 38 of 1987 MiB, used 1850)"
    old = parse_free(fixture("free_old.txt"))
    assert old is not None and "(available 119 of " in old.evidence
    claude = next(p for p in parse_ps(fixture("ps_claude.txt")).processes if p.pid == 4100)
    assert claude.evidence == f"ps: {claude.raw}  (pid 4100, RSS 171 MB, CPU 24 %, up 40 s)"


def test_free_without_mem_line() -> None:
    """No `Mem:` line: no evidence (None)."""
    assert parse_free("free: command not found") is None


@pytest.mark.parametrize("quirk", QUIRKS)
def test_df_posix(quirk: str) -> None:
    """`df -P -k <docker_root> /`: use %, mount point; the same filesystem twice is kept once."""
    rows = parse_df(QUIRKS[quirk](fixture("df.txt")))
    assert [(r.mount, r.use_pct) for r in rows] == [("/", 63), ("/var/lib/docker", 97)]
    assert len(parse_df("Filesystem 1024-blocks Used Available Capacity Mounted on\n"
                        "/dev/vda1 100 50 50 50% /\n/dev/vda1 100 50 50 50% /\n")) == 1


@pytest.mark.parametrize("quirk", QUIRKS)
def test_ps_counts_claude_workers(quirk: str) -> None:
    """`ps -eo pid,ppid,rss,pcpu,etimes,comm,args`: claude/node workers counted with their RSS."""
    table = parse_ps(QUIRKS[quirk](fixture("ps_claude.txt")))
    assert len(table.workers) == 9
    assert table.workers_rss_mb == sum(176000 - i * 1500 for i in range(9)) // 1024
    (proxy,) = table.find("ccproxy")
    assert proxy.cpu_pct == 187.5 and proxy.args == "ccproxy proxy"


def test_ps_node_running_claude_script_is_a_worker() -> None:
    """`node /usr/local/bin/claude -p ...` counts; an unrelated `nginx` does not."""
    table = parse_ps("  10 1 150000 5.0 20 node /usr/local/bin/claude -p hi\n  11 1 9000 0.0 99 nginx nginx: "
                     "worker\n")
    assert [p.pid for p in table.workers] == [10]


@pytest.mark.parametrize("quirk", QUIRKS)
def test_kernel_oom_dmesg(quirk: str) -> None:
    """dmesg -T: `Killed process` events; an `oom-kill:` summary of the same pid is not repeated."""
    events = parse_kernel_oom(QUIRKS[quirk](fixture("dmesg_oom.txt")))
    assert [(e.kind, e.process, e.pid) for e in events] == [
        ("invoked", "node", None), ("killed", "node", 4107), ("oom_kill", "mysqld", 1822)]


def test_kernel_oom_journal_cgroup_and_old_format() -> None:
    """journalctl -k lines, memory-cgroup kills and the old `Kill process ... or sacrifice child`."""
    events = parse_kernel_oom(fixture("journal_oom.txt"))
    assert [(e.process, e.pid, e.cgroup) for e in events] == [("ccproxy", 3990, True),
                                                              ("mysqld", 1822, False)]


@pytest.mark.parametrize(("text", "commit"), [
    (fixture("version.json"), "8c2d41f"),
    ("\x1b[0m" + fixture("version.json").replace("\n", "\r\n"), "8c2d41f"),
    (fixture("version_spa.html"), None),  # an older build answers /version with the admin SPA
    ("", None),  # curl: connection refused (exit 7) prints nothing with -s
    ('{"error":"not found"}', None),
    ("{truncated", None),
])
def test_version_json(text: str, commit: str | None) -> None:
    """`curl -s /version`: JSON with git_commit, else None (empty, HTML, junk)."""
    info = parse_version_json(text)
    assert (info.git_commit if info else None) == commit


@pytest.mark.parametrize("quirk", QUIRKS)
def test_git_log(quirk: str) -> None:
    """`git log -3 --format='%H%x09%ct%x09%s'`: full SHAs, commit times, subjects."""
    commits = parse_git_log(QUIRKS[quirk](fixture("git_log.txt")))
    assert len(commits) == 3 and all(len(c.sha) == 40 for c in commits)
    assert commits[0].subject.startswith("feat(health)") and commits[0].committed_at is not None


@pytest.mark.parametrize("quirk", QUIRKS)
@pytest.mark.parametrize("name", ["deploy_procs_wide.txt", "deploy_procs.txt"])
def test_deploy_procs(quirk: str, name: str) -> None:
    """deploy-server.sh, `docker compose ... build|up --build` and buildx are deploys; the grep and
    `ps` itself are not. Lines come from host_facts' one `ps -eo pid,ppid,rss,pcpu,etimes,comm,args`
    read (wide), or, in older captures, from `ps -eo pid,etimes,args | grep`."""
    procs = parse_deploy_procs(QUIRKS[quirk](fixture(name)))
    assert [(p.pid, p.kind, p.elapsed_s) for p in procs] == [
        (24117, "deploy_script", 95), (24388, "compose", 71), (24391, "build", 70), (24502, "compose", 6)]
    assert procs[0].args == "/bin/bash ./scripts/deploy-server.sh test"


@pytest.mark.parametrize("quirk", DOCUMENT_QUIRKS)
def test_schema_columns_from_sql_rows(quirk: str) -> None:
    """The SQL step stores json.dumps(rows) of information_schema.COLUMNS; junk around it is not JSON."""
    cols = parse_schema_columns(fixture("schema_rows.json"))
    assert "health_check_model" not in [c.name for c in cols] and cols[-3].name == "health_check_method"
    if quirk in ("clean", "ansi", "crlf"):
        assert parse_schema_columns(DOCUMENT_QUIRKS[quirk](fixture("schema_rows.json"))) == cols


def test_schema_columns_other_shapes() -> None:
    """Uppercase information_schema keys, DESCRIBE rows as JSON and `mysql -e 'DESCRIBE nodes'` text."""
    rows = [{"COLUMN_NAME": "id", "COLUMN_TYPE": "bigint", "IS_NULLABLE": "NO", "COLUMN_DEFAULT": None}]
    assert parse_schema_columns(json.dumps(rows))[0].name == "id"
    describe_rows = [{"Field": "name", "Type": "varchar(128)"}]
    assert parse_schema_columns(json.dumps(describe_rows))[0].type == "varchar(128)"
    text = "Field\tType\tNull\tKey\tDefault\tExtra\nid\tbigint\tNO\tPRI\tNULL\tauto_increment\n" \
           "health_check_method\tvarchar(16)\tNO\t\tcli\t\n"
    assert [c.name for c in parse_schema_columns(text)] == ["id", "health_check_method"]
    assert parse_schema_columns("[]") == [] and parse_schema_columns("") == []
