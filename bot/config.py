"""Typed configuration: a YAML file for environments plus environment variables for secrets.

Load with :func:`load_settings` (never at import). The YAML file is ``--config PATH``,
else ``$QCC_CONFIG``, else ``./qcc.yaml``. Secrets never live in the YAML: the MySQL
password is read from the variable named by ``mysql.password_env``; Slack tokens come
from ``SLACK_BOT_TOKEN``, ``SLACK_APP_TOKEN``, ``SLACK_SIGNING_SECRET`` (or ``.env``).

Shape (more keys in the models below)::

    environments:
      test:
        ssh: {host: 127.0.0.1, port: 22, user: root, key_file: ~/.ssh/id_ed25519,
              known_hosts: ~/.ssh/known_hosts}
        compose_project: qcc_test
        compose_file: docker-compose.test.yml
        workdir: /opt/qcc_plus
        proxy_service: proxy
        mysql_service: mysql
        proxy_port: 8001
        mysql: {host: 127.0.0.1, port: 3308, user: qcc,
                password_env: QCC_TEST_MYSQL_PASSWORD, database: qcc_proxy}
"""

from __future__ import annotations

import os
import re
import socket
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from bot.errors import ConfigError, UnknownEnvironment

_NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_ENV_VAR_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SSHConfig(_Strict):
    """How to reach the environment's host. Host keys are always verified.

    ``known_hosts`` None means the user's default (``~/.ssh/known_hosts``); there is no
    switch to disable verification. ``max_sessions`` bounds concurrent channels on the
    one shared connection (keep it below sshd's ``MaxSessions``, 10 by default); the
    transport also adapts downwards when the server refuses a channel.
    """

    host: str = Field(pattern=r"^[A-Za-z0-9_.:\[\]-]{1,253}$")  # a host name or IP address
    port: int = Field(22, ge=1, le=65535)
    user: str = Field(pattern=_NAME_RE)
    key_file: Path | None = None
    known_hosts: Path | None = None
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    keepalive_interval_s: float = Field(15.0, gt=0, le=600)
    max_sessions: int = Field(8, ge=1, le=64)

    @field_validator("key_file", "known_hosts", mode="after")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None


class MySQLConfig(_Strict):
    """MySQL as seen *from the environment's host*; reached through an SSH local forward.

    The password is read at connect time from ``$<password_env>``; it never appears on a
    command line, in a log or in output. Diagnosis sessions are read-only.
    """

    host: str = "127.0.0.1"
    port: int = Field(3306, ge=1, le=65535)
    user: str
    password_env: str | None = Field(None, pattern=_ENV_VAR_RE)
    database: str = Field(pattern=r"^[A-Za-z0-9_]{1,64}$")
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    query_timeout_s: float = Field(10.0, gt=0, le=600)

    def password(self) -> SecretStr:
        """The password from ``$password_env`` (empty when unset or not configured)."""
        return SecretStr(os.environ.get(self.password_env, "") if self.password_env else "")


class ApprovalPolicy(_Strict):
    """Who may approve fixes in an environment, and for how long a request stays open."""

    approvers: list[str] = Field(default_factory=list)  # Slack user ids
    approver_usergroup: str | None = None  # Slack user group id (checked with usergroups.users.list)
    allow_self_approval: bool = True
    expiry_s: int = Field(900, ge=30, le=86400)
    # `qcc-bot fix` in a terminal (typed confirmation, no Slack approver): refused in production unless True.
    allow_terminal_fixes: bool = False


class GitHubTrigger(_Strict):
    """The deploy workflow whose ``workflow_run`` webhooks belong to this environment.

    ``workflow`` is the workflow's name (``Deploy test``) or its file path
    (``.github/workflows/deploy-test.yml``); ``branch`` (optional) limits it to runs of one
    branch. The webhook secret is global (``webhooks.github_secret_env``).
    """

    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")  # owner/name
    workflow: str = Field(min_length=1, max_length=200)
    branch: str | None = Field(None, min_length=1, max_length=200)


class AlertmanagerTrigger(_Strict):
    """Alertmanager alerts for this environment: every label in ``match`` must be equal
    (e.g. ``{job: qcc_plus, env: test}``); an empty mapping matches nothing."""

    match: dict[str, str] = Field(default_factory=dict)


class EnvironmentTriggers(_Strict):
    """What starts a diagnosis without anyone typing (see :mod:`handlers.webhooks`)."""

    github: GitHubTrigger | None = None
    alertmanager: AlertmanagerTrigger | None = None


class EnvironmentSlack(_Strict):
    """Where the environment's automatic incidents are posted (a Slack channel id)."""

    incident_channel: str | None = Field(None, pattern=r"^[A-Z0-9]{2,32}$")


class EnvironmentConfig(_Strict):
    """One deployment of qcc_plus (a compose project on a host)."""

    ssh: SSHConfig
    compose_project: str = Field(pattern=_NAME_RE)
    compose_file: str = Field("docker-compose.yml", pattern=r"^[A-Za-z0-9_./-]{1,200}$")
    workdir: str = Field("/opt/qcc_plus", pattern=r"^/[A-Za-z0-9_./-]{0,200}$")
    proxy_service: str = Field("proxy", pattern=_NAME_RE)
    mysql_service: str = Field("mysql", pattern=_NAME_RE)
    # Optional explicit names; by default containers are resolved from compose labels,
    # falling back to `<project>_<service>` and `<project>-<service>-1`.
    proxy_container: str | None = Field(None, pattern=_NAME_RE)
    mysql_container: str | None = Field(None, pattern=_NAME_RE)
    proxy_port: int = Field(8001, ge=1, le=65535)
    mysql: MySQLConfig | None = None
    docker: str = Field("docker", pattern=r"^[A-Za-z0-9_./-]{1,200}$")  # docker CLI on the host
    docker_root: str = Field("/var/lib/docker", pattern=r"^/[A-Za-z0-9_./-]{0,200}$")
    # Where the host mounts its cgroup hierarchy: the resource-usage step reads the containers'
    # memory and CPU counters there (no `docker stats`, whose daemon waits for two samples).
    cgroup_root: str = Field("/sys/fs/cgroup", pattern=r"^/[A-Za-z0-9_./-]{0,200}$")
    log_tail: int = Field(300, ge=10, le=100000)
    production: bool = False
    # Rollback: argv run in `workdir`, `${commit}` replaced by the pinned good commit SHA.
    rollback_command: list[str] = Field(
        default_factory=lambda: [
            "sh",
            "-c",
            'git checkout --detach "$1" && docker compose -p "$2" -f "$3" up -d --build',
            "rollback",
            "${commit}",
            "${compose_project}",
            "${compose_file}",
        ]
    )
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    channels: list[str] = Field(default_factory=list)  # Slack channel ids where /qcc may target it
    ci_repo: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    ci_workflow: str | None = None
    slack: EnvironmentSlack = Field(default_factory=EnvironmentSlack)
    triggers: EnvironmentTriggers = Field(default_factory=EnvironmentTriggers)

    def model_post_init(self, __context: Any) -> None:  # noqa: D401 - pydantic hook
        """Production defaults: no self-approval unless explicitly allowed."""
        if self.production and "allow_self_approval" not in self.approval.model_fields_set:
            object.__setattr__(
                self, "approval", self.approval.model_copy(update={"allow_self_approval": False})
            )


class SlackSettings(_Strict):
    """Slack credentials (from the environment) and channel routing (from YAML).

    A field with a ``validation_alias`` is read from that environment variable (see
    :func:`_env_secrets`); the YAML may use the field name instead, but not both at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")
    # Socket Mode: ping the socket this often; a dead socket is replaced within a few intervals.
    socket_ping_interval_s: float = Field(10.0, gt=0, le=300)
    # HTTP mode: how long one auth.test probe answers /healthz's "can we reach Slack?".
    health_probe_s: float = Field(30.0, ge=0, le=3600)
    allowed_channels: list[str] = Field(default_factory=list)  # empty = every channel
    default_environment: str | None = None
    channel_environments: dict[str, str] = Field(default_factory=dict)  # channel id -> env


class GitHubSettings(_Strict):
    """GitHub Actions access for the escalation bundle's CI run log (``token`` from ``$GITHUB_TOKEN``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    token: SecretStr | None = Field(None, validation_alias="GITHUB_TOKEN")
    api_url: str = "https://api.github.com"


class WebhookSettings(_Strict):
    """The trigger endpoints (``POST /hooks/github``, ``POST /hooks/alertmanager``).

    Secrets are read from the variables named here (never from the YAML): the GitHub webhook
    secret (HMAC-SHA256 of the body, ``X-Hub-Signature-256``) and an optional bearer token
    Alertmanager sends (``http_config.authorization``). Without ``github_secret_env`` the
    GitHub endpoint refuses every request.
    """

    github_secret_env: str | None = Field(None, pattern=_ENV_VAR_RE)
    alertmanager_token_env: str | None = Field(None, pattern=_ENV_VAR_RE)
    max_body_bytes: int = Field(1024 * 1024, ge=1024, le=25 * 1024 * 1024)
    # How long a webhook delivery id is remembered for replay protection.
    delivery_retention_days: int = Field(14, ge=1, le=365)

    def github_secret(self, env: dict[str, str] | None = None) -> SecretStr | None:
        """The GitHub webhook secret from ``$github_secret_env`` (None when unset or empty)."""
        return _secret_from(self.github_secret_env, env)

    def alertmanager_token(self, env: dict[str, str] | None = None) -> SecretStr | None:
        """The Alertmanager bearer token from ``$alertmanager_token_env`` (None: no token required)."""
        return _secret_from(self.alertmanager_token_env, env)


def _secret_from(name: str | None, env: dict[str, str] | None) -> SecretStr | None:
    value = (os.environ if env is None else env).get(name, "") if name else ""
    return SecretStr(value) if value else None


class WatchSettings(_Strict):
    """The post-deploy watch: poll an environment for ``window_min`` minutes every
    ``interval_s`` seconds; it is *degraded* when a threshold is crossed."""

    window_min: float = Field(10.0, gt=0, le=24 * 60)
    interval_s: float = Field(20.0, gt=0, le=3600)
    after_green_deploy: bool = True  # a successful deploy workflow_run starts a watch
    min_available_mb: int = Field(200, ge=0)  # host memory "available" below this: degraded
    max_workers: int = Field(6, ge=0)  # claude/node health-check processes above this: degraded
    max_new_restarts: int = Field(0, ge=0)  # proxy restarts during the window above this: degraded
    failed_polls: int = Field(2, ge=1, le=100)  # consecutive degraded polls before acting


class Settings(BaseSettings):
    """Everything the bot needs, validated once at start-up.

    Raises :class:`bot.errors.ConfigError` (through :func:`load_settings`) listing every
    problem with its dotted path.
    """

    model_config = SettingsConfigDict(
        env_prefix="QCC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    environments: dict[str, EnvironmentConfig] = Field(default_factory=dict)
    runbook: Path | None = None  # default: the packaged qcc_deploy_crash.yaml
    state_url: str = "sqlite+aiosqlite:///qcc-state.db"
    slack: SlackSettings = Field(default_factory=SlackSettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    webhooks: WebhookSettings = Field(default_factory=WebhookSettings)
    watch: WatchSettings = Field(default_factory=WatchSettings)
    step_concurrency: int = Field(8, ge=1, le=64)
    # This instance's name in the state store ($QCC_INSTANCE_ID; default the host name): keep it stable
    # across restarts and distinct between replicas on one host.
    instance_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    lease_s: float = Field(90.0, ge=1, le=3600)
    shutdown_grace_s: float = Field(25.0, ge=0, le=600)

    @property
    def owner(self) -> str:
        """This bot instance's name in the state store: ``instance_id`` (``$QCC_INSTANCE_ID``),
        else the host name.

        It must be stable across restarts of one replica (a restarted instance marks its own
        leftover runs ``interrupted`` at once) and distinct between replicas: two replicas on
        one host need distinct ``QCC_INSTANCE_ID`` values, or each would take the other's
        running work for its own leftovers. Runs of an owner that has not heartbeated for
        ``lease_s`` are marked ``interrupted`` by any replica (never re-run).
        ``shutdown_grace_s`` is how long SIGTERM waits for running work before cancelling
        it (cancelled runs are marked ``interrupted`` and announced in their threads).
        """
        return self.instance_id or socket.gethostname()

    @field_validator("environments", mode="after")
    @classmethod
    def _env_names(cls, v: dict[str, EnvironmentConfig]) -> dict[str, EnvironmentConfig]:
        for name in v:
            if not re.match(_NAME_RE, name):
                raise ValueError(f"environment name {name!r} must match {_NAME_RE}")
        return v

    @field_validator("state_url", mode="after")
    @classmethod
    def _state_url(cls, v: str) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(v)
        except ArgumentError:
            raise ValueError("not a database URL (e.g. sqlite+aiosqlite:///qcc-state.db or "
                             "mysql+aiomysql://user@host/db)") from None
        return v

    @model_validator(mode="after")
    def _references(self) -> Settings:
        """Environment names used by the Slack routing must be configured."""
        known = set(self.environments)
        bad = []
        if self.slack.default_environment and self.slack.default_environment not in known:
            bad.append(f"slack.default_environment names {self.slack.default_environment!r}")
        bad += [f"slack.channel_environments.{ch} names {env!r}"
                for ch, env in self.slack.channel_environments.items() if env not in known]
        if bad:
            raise ValueError("; ".join(bad) + f", which is not configured (configured: "
                             f"{', '.join(sorted(known)) or 'none'})")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Highest first (pydantic-settings deep-merges them): the Slack/GitHub secrets from the
        environment (passed as init values by :func:`load_settings`), then the YAML file (or
        ``data``), then ``QCC_*`` variables."""
        path, data = _SOURCE.get()
        file_source: PydanticBaseSettingsSource = (
            InitSettingsSource(settings_cls, data) if data is not None else _YamlFile(settings_cls, path)
        )
        return (init_settings, file_source, env_settings)

    def environment(self, name: str) -> EnvironmentConfig:
        """The named environment. Raises :class:`UnknownEnvironment`."""
        try:
            return self.environments[name]
        except KeyError:
            raise UnknownEnvironment(name, list(self.environments)) from None


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _env_secrets(env: dict[str, str]) -> dict[str, Any]:
    """``{"slack": {"SLACK_BOT_TOKEN": ...}, "github": {...}}``: the non-empty variables named by
    the ``validation_alias`` of :class:`SlackSettings` and :class:`GitHubSettings` fields."""
    out: dict[str, Any] = {}
    for section, model in (("slack", SlackSettings), ("github", GitHubSettings)):
        names = [f.validation_alias for f in model.model_fields.values() if isinstance(f.validation_alias, str)]
        found = {n: env[n] for n in names if env.get(n)}
        if found:
            out[section] = found
    return out


# What Settings.settings_customise_sources reads: (YAML path, or the ``data`` mapping).
_SOURCE: ContextVar[tuple[Path, dict[str, Any] | None]] = ContextVar("qcc_settings_source")


class _YamlFile(YamlConfigSettingsSource):
    """pydantic-settings' YAML source with our one-line errors (:class:`ConfigError`).

    The library skips a missing file and lets PyYAML's exception through; a configuration
    that names a file must find it, and a YAML mistake is reported with its line and column.
    """

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        if not path.exists():
            hint = " (start from qcc.example.yaml)" if path.name == "qcc.yaml" else ""
            raise ConfigError(f"config file not found: {path}{hint}")
        if path.is_dir():
            raise ConfigError(f"config path is a directory, not a file: {path}")
        super().__init__(settings_cls, yaml_file=path, yaml_file_encoding="utf-8")

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            loaded = super()._read_file(file_path)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            reason = getattr(exc, "problem", None) or ""
            if "'\\t'" in reason or "\t" in reason:
                reason += " (a tab: YAML indents with spaces)"
            detail = f": {reason}" if reason else ""
            raise ConfigError(f"{file_path}: not valid YAML{where}{detail}") from None
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file_path}: {exc.strerror}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path}: the top level must be a mapping")
        return loaded


def default_config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``$QCC_CONFIG``, else ``./qcc.yaml``."""
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("QCC_CONFIG") or "qcc.yaml")


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    data: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Settings:
    """Build :class:`Settings` from a YAML file (or ``data``) plus Slack/GitHub secrets from ``env``.

    ``env`` defaults to ``os.environ``; ``QCC_*`` variables are read from the process
    environment. Raises :class:`ConfigError` with ``problems``
    (``"environments.test.ssh.port: Input should be ..."``) for every problem at once, or
    for an unreadable/ill-formed file.
    """
    cfg_path = default_config_path(path)
    source = "configuration" if data is not None else str(cfg_path)
    token = _SOURCE.set((cfg_path, None if data is None else dict(data)))
    try:
        return Settings(**_env_secrets(dict(os.environ if env is None else env)))
    except ValidationError as exc:
        problems = [_problem(e) for e in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration ({len(problems)} problem(s))", problems) from None
    finally:
        _SOURCE.reset(token)


# Field name -> its environment variable (the validation_alias), for the "both given" hint.
_ALIASES = {name: f.validation_alias for m in (SlackSettings, GitHubSettings) for name, f in m.model_fields.items()
            if isinstance(f.validation_alias, str)}


def _problem(error: Any) -> str:
    """One ``dotted.path: message`` line, with a hint where the mistake is a common one."""
    loc = _format_loc(error["loc"])
    msg = error["msg"]
    last = str(error["loc"][-1]) if error["loc"] else ""
    variable = _ALIASES.get(last)
    if error.get("type") == "extra_forbidden" and variable:
        msg = f"given both in the YAML and as ${variable}: keep one (secrets belong in the environment)"
    elif error.get("type") == "extra_forbidden" and last in ("password", "token", "secret", "bot_token"):
        msg = "secrets do not go in the YAML: name an environment variable instead (e.g. password_env)"
    return f"{loc}: {msg}"


def check_environment_files(settings: Settings, name: str | None = None) -> list[str]:
    """File-level checks that validation cannot do: key file present, known_hosts readable.

    Returns ``"environments.<env>.ssh.key_file: ..."`` problems (empty list when fine).
    ``name`` limits the check to one environment (raises :class:`UnknownEnvironment`).
    """
    names = [name] if name else list(settings.environments)
    problems: list[str] = []
    for env_name in names:
        env_cfg = settings.environment(env_name)
        base = f"environments.{env_name}.ssh"
        kf = env_cfg.ssh.key_file
        if kf is not None and not kf.is_file():
            problems.append(f"{base}.key_file: no such key file: {kf}")
        elif kf is not None and not os.access(kf, os.R_OK):
            problems.append(f"{base}.key_file: key file is not readable: {kf}")
        kh = env_cfg.ssh.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        if not kh.is_file() or not os.access(kh, os.R_OK):
            problems.append(f"{base}.known_hosts: known_hosts is missing or unreadable: {kh}")
        if env_cfg.mysql and env_cfg.mysql.password_env and env_cfg.mysql.password_env not in os.environ:
            problems.append(f"environments.{env_name}.mysql.password_env: "
                            f"variable {env_cfg.mysql.password_env} is not set")
    return problems


def known_secrets(settings: Settings, env: dict[str, str] | None = None) -> list[str]:
    """Every configured secret value (MySQL passwords, Slack and GitHub tokens, webhook secrets).

    Used to scrub anything shown, posted or saved, in addition to pattern-based redaction.
    Values shorter than 4 characters are left out (they would redact ordinary words).
    """
    env = dict(os.environ if env is None else env)
    values: list[str] = []
    for env_cfg in settings.environments.values():
        if env_cfg.mysql and env_cfg.mysql.password_env:
            values.append(env.get(env_cfg.mysql.password_env, ""))
    for name in (settings.webhooks.github_secret_env, settings.webhooks.alertmanager_token_env):
        if name:
            values.append(env.get(name, ""))
    for secret in (settings.slack.bot_token, settings.slack.app_token, settings.slack.signing_secret,
                   settings.github.token):
        if secret is not None:
            values.append(secret.get_secret_value())
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)
