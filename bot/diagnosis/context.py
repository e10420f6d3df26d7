"""What the pure analysis needs to know about the environment besides step outputs.

:class:`AnalysisContext` is saved in a bundle's manifest so that ``qcc-bot analyze``
reproduces a live diagnosis with no configuration and no network.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from bot.config import EnvironmentConfig


class AnalysisContext(BaseModel):
    """Environment facts for rules and fix builders (names, port, commands)."""

    model_config = ConfigDict(frozen=True)

    environment: str
    compose_project: str
    compose_file: str = "docker-compose.yml"
    workdir: str = "/opt/qcc_plus"
    proxy_service: str = "proxy"
    mysql_service: str = "mysql"
    proxy_container: str | None = None
    mysql_container: str | None = None
    proxy_port: int = 8001
    docker: str = "docker"
    database: str | None = None
    has_mysql: bool = True
    production: bool = False
    rollback_command: list[str] = Field(default_factory=list)
    captured_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def from_config(cls, name: str, env: EnvironmentConfig, *, captured_at: datetime | None = None,
                    resolved: dict[str, str] | None = None) -> AnalysisContext:
        """Build from an environment's configuration plus resolved container names."""
        resolved = resolved or {}
        return cls(
            environment=name,
            compose_project=env.compose_project,
            compose_file=env.compose_file,
            workdir=env.workdir,
            proxy_service=env.proxy_service,
            mysql_service=env.mysql_service,
            proxy_container=env.proxy_container or resolved.get("proxy_container"),
            mysql_container=env.mysql_container or resolved.get("mysql_container"),
            proxy_port=env.proxy_port,
            docker=env.docker,
            database=env.mysql.database if env.mysql else None,
            has_mysql=env.mysql is not None,
            production=env.production,
            rollback_command=list(env.rollback_command),
            captured_at=captured_at or datetime.now(UTC),
        )
