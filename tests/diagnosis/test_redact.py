"""Redaction: every kind of secret the proxy, its DSNs and command lines can leak becomes ***."""

from __future__ import annotations

import json

import pytest

from bot.diagnosis.parsers import parse_docker_inspect
from bot.diagnosis.redact import REDACTED, redact_text

from .quirks import fixture

CASES = [
    # the proxy's start-up credential lines
    ("2025/12/10 06:14:03 default admin account: username=admin password=Adm1n-9f3kQz7w", "Adm1n-9f3kQz7w"),
    ("2025/12/10 06:14:03 default API key: sk-ant-api03-q8Zk2mP4xR7vT1nB6yW3cE9h-AbCdEf", "sk-ant-api03"),
    ("2025/12/10 06:14:03 proxy api key: qcc_live_7d1e6a9b2c4f8e0d3a5b7c9e1f2a4b6c", "qcc_live_7d1e"),
    ("2025/12/10 06:14:03 admin token: 3b1f0c9e8d7a6b5c4d3e2f1a", "3b1f0c9e8d7a"),
    ("默认管理员账号: admin 密码: Adm1n-9f3kQz7w", "Adm1n-9f3kQz7w"),
    # DSNs and URLs
    ("PROXY_MYSQL_DSN=qcc:S3cr3t-Qcc-Pass!@tcp(mysql:3306)/qcc_proxy?parseTime=true", "S3cr3t"),
    ("using MySQL storage: qcc:p@ss:w0rd@tcp(mysql:3306)/qcc_proxy", "w0rd"),
    ("DATABASE_URL=mysql://root:hunter2@db:3306/qcc", "hunter2"),
    ("https://bot:ghs_abc@github.com/x.git", "ghs_abc"),
    # command lines
    ("docker exec qcc_test-mysql-1 mysql -uroot -pS3cretRoot qcc_plus -e 'DESCRIBE nodes'", "S3cretRoot"),
    ("mysqldump --password=S3cretRoot qcc_proxy", "S3cretRoot"),
    ("mysqladmin --password 'S3cret Root' ping", "S3cret Root"),
    # vendor tokens
    ("SLACK_BOT_TOKEN xoxb-FAKE00-0987654321-AbCdEfGhIjKlMnOp", "xoxb-FAKE00"),
    ("app token xapp-1-A0123456789-1234567890123-abcdef0123456789", "xapp-1-A0123"),
    ("git clone https://x@github.com ghp_0123456789abcdefghijABCDEFGHIJ012345", "ghp_0123456789"),
    ("token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11ABC"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJhbGci"),
    ("aws key AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    # generic key=value / JSON
    ('{"password": "hunter22", "api_key": "k-123456"}', "hunter22"),
    ('{"password": "hunter22", "api_key": "k-123456"}', "k-123456"),
    ("MYSQL_ROOT_PASSWORD=S3cretRoot", "S3cretRoot"),
    ("SLACK_SIGNING_SECRET=8f14e45fceea167a5a36dedd4bea2543", "8f14e45f"),
    ("x-api-key: sk-live-abcdefgh", "sk-live-abcdefgh"),
]


@pytest.mark.parametrize(("line", "secret"), CASES, ids=[c[0][:40] for c in CASES])
def test_secret_is_redacted(line: str, secret: str) -> None:
    """The secret is gone, a *** marks the spot and the line is counted."""
    out, n = redact_text(line)
    assert secret not in out and REDACTED in out and n == 1


@pytest.mark.parametrize("line", [
    "Error 1045 (28000): Access denied for user 'qcc'@'172.18.0.3' (using password: YES)",
    "cd /opt/qcc_plus && docker compose -p qcc_test -f docker-compose.test.yml up -d --no-build",
    "[proxy] POST /v1/messages -> 200 node=n1 input_tokens=532 output_tokens=20",
    "using MySQL storage: ***@tcp(mysql:3306)/qcc_proxy",
    "ALTER TABLE nodes ADD COLUMN health_check_model VARCHAR(128) DEFAULT 'claude-haiku-4-5-20251001' AFTER "
    "x",
    "health check failed for node n1: claude cli failed: signal: killed: stdout= stderr=",
])
def test_harmless_lines_are_untouched(line: str) -> None:
    """Diagnostic lines, commands and already-redacted DSNs stay exactly as they were."""
    assert redact_text(line) == (line, 0)


def test_counts_lines_extra_secrets_and_pem() -> None:
    """Counts changed lines; literal extra secrets; a PEM private key block is blanked line by line."""
    text = "\n".join(["a", "password=x1", "pw is Zq9-literal here", "-----BEGIN OPENSSH PRIVATE KEY-----",
                      "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "-----END OPENSSH PRIVATE KEY-----", "z"])
    out, n = redact_text(text, extra_secrets=["Zq9-literal", ""])
    assert "Zq9-literal" not in out and "b3BlbnNzaC1rZXkt" not in out and "x1" not in out
    assert n == 5 and out.split("\n")[0] == "a" and out.split("\n")[-1] == "z"
    assert redact_text("") == ("", 0)


def test_configured_literal_wins_over_a_pattern_that_stops_early() -> None:
    """A configured secret with a quote in it is removed whole: the key=value pattern would stop
    at the quote and leave the rest of the password behind."""
    password = "Rel-MySQL'pw$4242-tail"
    out, n = redact_text(f"MYSQL_PWD={password} and DB_PASS={password}", extra_secrets=[password])
    assert out == f"MYSQL_PWD={REDACTED} and DB_PASS={REDACTED}" and n == 1


def test_idempotent() -> None:
    """Redacting twice changes nothing more."""
    once, _ = redact_text("\n".join(c[0] for c in CASES))
    assert redact_text(once) == (once, 0)


def test_redaction_keeps_json_documents_valid() -> None:
    """Secrets inside `docker inspect` JSON strings are replaced without breaking the JSON."""
    text = fixture("docker_inspect_exited.json")
    out, n = redact_text(text)
    assert n == 3 and "S3cr3t" not in out
    doc = json.loads(out)
    assert "PROXY_MYSQL_DSN=***@tcp(mysql:3306)/qcc_proxy?parseTime=true&loc=Local" in doc[0]["Config"]["Env"]
    assert "MYSQL_ROOT_PASSWORD=***" in doc[1]["Config"]["Env"]
    assert parse_docker_inspect(out)[0].dsn_configured is True
