"""Configuration: the YAML shape of the issue loads; every problem is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import run
from bot.config import check_environment_files, known_secrets, load_settings
from bot.errors import ConfigError, UnknownEnvironment

GOOD = """
environments:
  test:
    ssh: {host: 127.0.0.1, port: 22, user: root, key_file: KEY, known_hosts: KH}
    compose_project: qcc_test
    compose_file: docker-compose.test.yml
    workdir: /opt/qcc_plus
    proxy_service: proxy
    mysql_service: mysql
    proxy_port: 8001
    mysql: {host: 127.0.0.1, port: 3308, user: qcc, password_env: QCC_TEST_MYSQL_PASSWORD,
            database: qcc_proxy}
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    key = tmp_path / "id_ed25519"
    key.write_text("not really a key")
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    cfg = tmp_path / "qcc.yaml"
    cfg.write_text(GOOD.replace("KEY", str(key)).replace("KH", str(kh)))
    return cfg, key, kh


def test_issue_shape_loads(files: tuple[Path, Path, Path]) -> None:
    """The exact YAML shape from the issue validates and keeps its values."""
    cfg, key, _ = files
    s = load_settings(cfg, env={})
    env = s.environment("test")
    assert env.ssh.key_file == key
    assert env.mysql is not None and env.mysql.port == 3308 and env.mysql.database == "qcc_proxy"
    assert env.proxy_port == 8001 and env.approval.allow_self_approval is True


def test_every_problem_reported_with_its_path(tmp_path: Path) -> None:
    """Three independent mistakes give three problems, each with its dotted path."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "environments:\n  test:\n    ssh: {host: h, port: 70000, user: root}\n"
        "    compose_project: 'bad name!'\n    proxy_port: nope\n"
    )
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, env={})
    joined = "\n".join(ei.value.problems)
    assert "environments.test.ssh.port" in joined
    assert "environments.test.compose_project" in joined
    assert "environments.test.proxy_port" in joined
    assert len(ei.value.problems) == 3


def test_unknown_key_rejected(tmp_path: Path) -> None:
    """A typo'd key is an error, not silently ignored."""
    cfg = tmp_path / "typo.yaml"
    cfg.write_text("environments:\n  t:\n    ssh: {host: h, user: u}\n    compose_project: p\n"
                   "    proxy_prot: 1\n")
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, env={})
    assert any("environments.t.proxy_prot" in p for p in ei.value.problems)


def test_production_refuses_self_approval_by_default(tmp_path: Path) -> None:
    """`production: true` flips the self-approval default; an explicit setting wins."""
    s = load_settings(data={"environments": {
        "prod": {"ssh": {"host": "h", "user": "u"}, "compose_project": "qcc_prod", "production": True},
        "prod2": {"ssh": {"host": "h", "user": "u"}, "compose_project": "qcc_prod", "production": True,
                  "approval": {"allow_self_approval": True}},
    }}, env={})
    assert s.environment("prod").approval.allow_self_approval is False
    assert s.environment("prod2").approval.allow_self_approval is True


def test_unknown_environment_lists_known(files: tuple[Path, Path, Path]) -> None:
    """Asking for an unconfigured environment names the configured ones."""
    s = load_settings(files[0], env={})
    with pytest.raises(UnknownEnvironment, match="configured: test"):
        s.environment("prod")


def test_file_checks_find_missing_key_and_known_hosts(files: tuple[Path, Path, Path]) -> None:
    """check_environment_files reports a missing key file and unreadable known_hosts."""
    cfg, key, kh = files
    key.unlink()
    kh.unlink()
    problems = check_environment_files(load_settings(cfg, env={}))
    assert any(p.startswith("environments.test.ssh.key_file: no such key file") for p in problems)
    assert any(p.startswith("environments.test.ssh.known_hosts:") for p in problems)


def test_secrets_collected_from_env(files: tuple[Path, Path, Path]) -> None:
    """known_secrets gathers the MySQL password and Slack tokens for redaction."""
    env = {"QCC_TEST_MYSQL_PASSWORD": "hunter2-db", "SLACK_BOT_TOKEN": "xoxb-test-token-1"}
    s = load_settings(files[0], env=env)
    assert set(known_secrets(s, env)) == {"hunter2-db", "xoxb-test-token-1"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "config file not found"),
        ("environments: [1, 2", "not valid YAML at line"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_check_config_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      content: str | None, expected: str) -> None:
    """check-config: missing, malformed or wrong-shaped files give one clear line and exit 2."""
    cfg = tmp_path / "q.yaml"
    if content is not None:
        cfg.write_text(content)
    assert run(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_check_config_reports_missing_key_file(files: tuple[Path, Path, Path],
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """check-config exits 2 and lists the missing key file with its path in the file."""
    cfg, key, _ = files
    key.unlink()
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", "x")
    assert run(["check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "environments.test.ssh.key_file: no such key file" in err


def test_check_config_ok(files: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid config with its files present passes."""
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", "x")
    assert run(["check-config", "--config", str(files[0])]) == 0
    assert "OK (1 environment(s): test)" in capsys.readouterr().out


def test_diagnose_unknown_env_is_one_line(files: tuple[Path, Path, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """diagnose --env with an unconfigured name: exit 2, one line, no traceback, no connection."""
    assert run(["diagnose", "--env", "nope", "--config", str(files[0])]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "unknown environment 'nope'" in err


def test_instance_id_names_this_replica_in_the_state_store(monkeypatch):
    """``owner`` is ``instance_id`` (from YAML or ``$QCC_INSTANCE_ID``), else the host name, so it
    is stable across restarts; a malformed id is a configuration error."""
    import socket

    assert load_settings(data={}, env={}).owner == socket.gethostname()
    monkeypatch.setenv("QCC_INSTANCE_ID", "qcc-bot-2")
    assert load_settings(data={}, env={}).owner == "qcc-bot-2"
    assert load_settings(data={"instance_id": "pod-a"}, env={}).owner == "pod-a"
    with pytest.raises(ConfigError):
        load_settings(data={"instance_id": "bad id; rm"}, env={})


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"slack": {"default_environment": "tset"}}, "slack.default_environment names 'tset'"),
        ({"slack": {"channel_environments": {"C123": "nope"}}}, "slack.channel_environments.C123 names 'nope'"),
        ({"state_url": "notaurl"}, "state_url: Value error, not a database URL"),
        ({"environments": {"t": {"ssh": {"host": "h; rm -rf /", "user": "u"}, "compose_project": "p"}}},
         "environments.t.ssh.host"),
        ({"environments": {"t": {"ssh": {"host": "", "user": "u"}, "compose_project": "p"}}},
         "environments.t.ssh.host"),
        ({"environments": {"t": {"ssh": {"host": "h", "user": "u"}, "compose_project": "p",
                                 "mysql": {"user": "q", "database": "d", "password": "x"}}}},
         "environments.t.mysql.password: secrets do not go in the YAML"),
    ],
)
def test_semantic_mistakes_are_problems(data: dict, fragment: str) -> None:
    """References to unconfigured environments, bad URLs, odd hosts and inline passwords are refused."""
    base = {"environments": {"test": {"ssh": {"host": "127.0.0.1", "user": "root"}, "compose_project": "qcc_test"}}}
    merged = {**base, **data}
    with pytest.raises(ConfigError) as ei:
        load_settings(data=merged, env={})
    assert any(fragment in p for p in ei.value.problems), ei.value.problems


def test_yaml_tab_error_says_tab(tmp_path: Path) -> None:
    """A tab in the indentation is named, with its position."""
    cfg = tmp_path / "tab.yaml"
    cfg.write_text("environments:\n\ttest: {}\n")
    with pytest.raises(ConfigError, match=r"line 2, column 1: .*a tab"):
        load_settings(cfg, env={})


def test_check_config_empty_file_and_approver_warning(tmp_path: Path, files: tuple[Path, Path, Path],
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty file has no environment (exit 2); an environment without approvers is warned about."""
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert run(["check-config", "--config", str(empty)]) == 2
    assert "no environment is configured" in capsys.readouterr().err
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", "x")
    assert run(["check-config", "--config", str(files[0])]) == 0
    assert "warning: environments.test.approval: no approvers" in capsys.readouterr().out


def test_diagnose_refuses_unusable_environment_before_connecting(files: tuple[Path, Path, Path],
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """diagnose runs the check-config file checks first: missing key file → exit 2, nothing run."""
    cfg, key, _ = files
    key.unlink()
    assert run(["diagnose", "--env", "test", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "cannot be used (run check-config)" in err and "no such key file" in err


def test_save_bundle_target_checked_before_connecting(files: tuple[Path, Path, Path], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-empty --save-bundle directory is refused up front (exit 2), not after the run."""
    monkeypatch.setenv("QCC_TEST_MYSQL_PASSWORD", "x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep").write_text("x")
    assert run(["diagnose", "--env", "test", "--config", str(files[0]), "--save-bundle", str(full)]) == 2
    assert "needs a new or empty directory" in capsys.readouterr().err
    assert (full / "keep").read_text() == "x"


def test_dotenv_supplies_secrets_to_the_console_script(files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    """`qcc-bot` loads ./.env: the password variable and Slack token there count as set."""
    import os
    import subprocess
    import sys

    (tmp_path / ".env").write_text("QCC_TEST_MYSQL_PASSWORD=from-dotenv\nSLACK_BOT_TOKEN=xoxb-from-dotenv\n"
                                   "QCC_CONFIG=qcc.yaml\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QCC_", "SLACK_"))}
    out = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "check-config"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "OK (1 environment(s): test)" in out.stdout


def test_diagnose_without_env_needs_a_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With several environments and no default, diagnose asks which one (exit 2, lists them)."""
    cfg = tmp_path / "two.yaml"
    cfg.write_text("environments:\n"
                   "  a: {ssh: {host: 127.0.0.1, user: u}, compose_project: qa}\n"
                   "  b: {ssh: {host: 127.0.0.1, user: u}, compose_project: qb}\n")
    assert run(["diagnose", "--config", str(cfg)]) == 2
    assert "which environment? pass --env NAME (configured: a, b)" in capsys.readouterr().err


def test_secrets_come_from_their_variables_and_merge_with_the_yaml(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """SLACK_*/GITHUB_TOKEN fill slack.*/github.token next to the YAML's slack keys; empty variables
    count as unset; the YAML beats QCC_* variables; one secret given twice is refused, naming both."""
    cfg = tmp_path / "q.yaml"
    cfg.write_text("slack: {allowed_channels: [C1]}\nstate_url: sqlite+aiosqlite:///from-yaml.db\n")
    monkeypatch.setenv("QCC_STATE_URL", "sqlite+aiosqlite:///from-env.db")
    s = load_settings(cfg, env={"SLACK_BOT_TOKEN": "xoxb-from-env", "SLACK_APP_TOKEN": "",
                                "GITHUB_TOKEN": "gh-from-env", "SLACK_API_URL": "http://127.0.0.1:9/api/"})
    assert s.slack.bot_token is not None and s.slack.bot_token.get_secret_value() == "xoxb-from-env"
    assert s.slack.app_token is None and s.slack.allowed_channels == ["C1"]
    assert s.github.token is not None and s.github.token.get_secret_value() == "gh-from-env"
    assert s.slack.api_url == "http://127.0.0.1:9/api/"
    assert s.state_url.endswith("from-yaml.db")
    cfg.write_text("slack: {bot_token: xoxb-in-yaml}\n")
    in_yaml = load_settings(cfg, env={}).slack.bot_token
    assert in_yaml is not None and in_yaml.get_secret_value() == "xoxb-in-yaml"
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg, env={"SLACK_BOT_TOKEN": "xoxb-from-env"})
    assert ei.value.problems == ["slack.bot_token: given both in the YAML and as $SLACK_BOT_TOKEN: keep one "
                                 "(secrets belong in the environment)"]


def test_config_path_that_is_a_directory(tmp_path: Path) -> None:
    """A directory given as the config file is one clear error, not a silent empty configuration."""
    with pytest.raises(ConfigError, match="config path is a directory, not a file"):
        load_settings(tmp_path, env={})


def test_demo_refuses_config(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo` runs on the built-in sandbox and reads no configuration: `--config` is refused
    with exit 2 and the command that does read it, instead of being accepted and ignored."""
    assert run(["demo", "--config", "qcc.yaml"]) == 2
    assert "qcc-bot diagnose --config qcc.yaml" in capsys.readouterr().err


def test_analyze_with_a_missing_config_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`analyze` accepts `--config` (scripts pass one option set), but a file that is not there
    is an error, as for every other command."""
    assert run(["analyze", str(tmp_path), "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "says"), [(["--format", "json"], "--format json is for one report"),
                                             (["--save-bundle", "b"], "--save-bundle saves one")])
def test_demo_fix_refuses_one_report_options(extra: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`demo --fix` is a text loop of several diagnoses: a one-report option is refused (exit 2),
    not silently ignored."""
    assert run(["demo", "--fix", *extra]) == 2
    assert says in capsys.readouterr().err
