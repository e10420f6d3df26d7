"""Host-command stand-ins (ss, free, df, ps, dmesg, journalctl, curl, git) answer from the scenario."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from qcc_sandbox import SandboxDir


def out(box: SandboxDir, argv: list[str] | str) -> str:
    res = box.run(argv)
    assert res.returncode == 0, res.stderr.decode()
    return res.stdout.decode("utf-8", "replace")


def test_ss_shows_docker_proxy_on_the_published_port(loaded: Callable[[str], SandboxDir]) -> None:
    """ss -ltnp lists docker-proxy holding 8001 (v4 and v6) with iproute2's header quirk."""
    lines = out(loaded("port_conflict"), ["ss", "-ltnp"]).splitlines()
    assert lines[0] == "State  Recv-Q Send-Q Local Address:Port  Peer Address:PortProcess"
    holders = [line for line in lines if ":8001 " in line]
    assert len(holders) == 2 and all('users:(("docker-proxy",pid=' in line for line in holders)
    filtered = out(loaded("port_conflict"), ["ss", "-ltnp", "sport = :8001"]).splitlines()
    assert len(filtered) == 3


def test_ss_without_n_names_ports(loaded: Callable[[str], SandboxDir]) -> None:
    """Without -n, ports are shown by service name as /etc/services says (22 is ssh)."""
    text = out(loaded("healthy"), ["ss", "-ltp"])
    assert "0.0.0.0:ssh" in text and ":vcom-tunnel" in text


def test_free_reports_exhausted_memory(loaded: Callable[[str], SandboxDir]) -> None:
    """free -m: the overload scenario has ~0 MiB available; the table has procps' layout."""
    lines = out(loaded("startup_health_check_overload"), ["free", "-m"]).splitlines()
    assert lines[0].split() == ["total", "used", "free", "shared", "buff/cache", "available"]
    mem = lines[1].split()
    assert mem[0] == "Mem:" and int(mem[1]) == 1967 and int(mem[6]) < 50


def test_df_one_line_per_path(loaded: Callable[[str], SandboxDir]) -> None:
    """df -P -k with two paths prints a POSIX header and one line per path."""
    lines = out(loaded("healthy"), ["df", "-P", "-k", "/var/lib/docker", "/"]).splitlines()
    assert lines[0].split()[:2] == ["Filesystem", "1024-blocks"] and len(lines) == 3
    assert lines[1].split()[-1] == "/" and lines[1].split()[4].endswith("%")


def test_ps_sorted_by_rss_shows_claude_workers(loaded: Callable[[str], SandboxDir]) -> None:
    """The runbook's ps line: many claude/node processes, sorted by RSS, largest first."""
    box = loaded("startup_health_check_overload")
    lines = out(box, "ps -eo pid,ppid,rss,pcpu,etimes,comm,args --sort=-rss | head -n 400").splitlines()
    assert lines[0].split() == ["PID", "PPID", "RSS", "%CPU", "ELAPSED", "COMMAND", "COMMAND"]
    rss = [int(line.split()[2]) for line in lines[1:]]
    assert rss == sorted(rss, reverse=True)
    comms = [line.split()[5] for line in lines[1:]]
    assert comms.count("claude") == 7 and comms.count("node") == 3 and "ccproxy" in comms


def test_deploy_grep_pipeline(loaded: Callable[[str], SandboxDir]) -> None:
    """The runbook's deploy_running pipeline finds deploy-server.sh only while a deploy runs."""
    pipeline = (
        "ps -eo pid,etimes,args | grep -E 'deploy-server\\.sh|docker[- ]compose .*(up|build)"
        "|docker(-buildx)? build' | grep -v grep"
    )
    box = loaded("deploy_in_progress")
    found = out(box, pipeline)
    assert "deploy-server.sh test" in found and "up -d --build" in found
    box.load("healthy")
    assert box.run(pipeline).returncode == 1


def test_dmesg_and_journalctl_kernel_oom_lines(loaded: Callable[[str], SandboxDir]) -> None:
    """dmesg -T and journalctl -k both show the scenario's OOM-killer lines."""
    box = loaded("startup_health_check_overload")
    dmesg = out(box, ["dmesg", "-T"])
    assert "Out of memory: Killed process 48213 (node)" in dmesg
    assert dmesg.splitlines()[0].startswith("[") and "] Linux version" in dmesg.splitlines()[0]
    journal = out(box, ["journalctl", "-k", "--no-pager", "-n", "2"]).splitlines()
    assert len(journal) == 2 and " kernel: " in journal[0]


def test_curl_version_refused_and_timeout(box: SandboxDir) -> None:
    """curl: /version JSON when up, exit 7 when nothing listens, exit 28 past -m when overloaded."""
    box.load("healthy")
    info = json.loads(out(box, ["curl", "-s", "-m", "5", "http://127.0.0.1:8001/version"]))
    assert set(info) == {"version", "git_commit", "build_date"}
    box.load("migration_failed")
    assert box.run(["curl", "-s", "-m", "5", "http://127.0.0.1:8001/version"]).returncode == 7
    box.load("startup_health_check_overload")
    t0 = time.monotonic()
    res = box.run(["curl", "-sS", "-m", "1", "http://127.0.0.1:8001/version"])
    assert res.returncode == 28 and b"Operation timed out" in res.stderr
    assert 0.9 < time.monotonic() - t0 < 5


def test_curl_never_leaves_loopback(loaded: Callable[[str], SandboxDir]) -> None:
    """A non-loopback URL fails with exit 7 without any network traffic."""
    res = loaded("healthy").run(["curl", "-sS", "http://192.0.2.10:8001/version"])
    assert res.returncode == 7 and b"no network traffic" in res.stderr


def test_git_log_and_checkout(box: SandboxDir) -> None:
    """git -C <checkout> log prints the runbook's format; checkout moves HEAD; HEAD~1 resolves."""
    box.load("panic")
    fmt = "--format=%H%x09%ct%x09%s"
    lines = out(box, ["git", "-C", str(box.checkout), "log", "-3", fmt]).splitlines()
    assert len(lines) == 3
    sha, ct, subject = lines[0].split("\t")
    assert len(sha) == 40 and ct.isdigit() and "health_check_model" in subject
    prev = out(box, ["git", "-C", str(box.checkout), "rev-parse", "HEAD~1"]).strip()
    assert prev == lines[1].split("\t")[0]
    res = box.run(["git", "-C", str(box.checkout), "checkout", "--detach", prev])
    assert res.returncode == 0 and b"HEAD is now at" in res.stderr
    assert out(box, ["git", "-C", str(box.checkout), "rev-parse", "HEAD"]).strip() == prev


def test_git_outside_the_checkout_fails(loaded: Callable[[str], SandboxDir]) -> None:
    """git -C on a missing dir or a non-checkout fails with exit 128 like the real tool."""
    box = loaded("healthy")
    assert box.run(["git", "-C", "/nonexistent/qcc_plus", "log", "-1"]).returncode == 128
    res = box.run(["git", "-C", "/", "log", "-1"])
    assert res.returncode == 128 and b"not a git repository" in res.stderr
