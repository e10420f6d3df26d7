"""Part 5, ready to deploy: the generated configuration reference is complete and current,
`.env.example` names every variable the bot reads, and docker-compose.yml runs the bot as
documented (Socket Mode, .env, SSH key and known_hosts read-only, a state volume, /healthz)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot import config, configdoc

REPO = Path(__file__).resolve().parents[2]


def test_reference_is_generated_from_the_models_and_current():
    """docs/configuration.md is exactly `python -m bot.configdoc` (regenerate it after a
    settings change), and names every setting path."""
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == configdoc.render(), "docs/configuration.md is stale: python -m bot.configdoc > it"
    missing = [p for p in configdoc.setting_paths() if f"`{p}`" not in committed]
    assert not missing, missing


def test_reference_covers_nested_and_new_settings():
    """The walk reaches every model: a few deep paths, and the settings of this change."""
    paths = set(configdoc.setting_paths())
    for p in ("environments.<name>.ssh.known_hosts", "environments.<name>.mysql.password_env",
              "environments.<name>.approval.expiry_s", "environments.<name>.slack.incident_channel",
              "environments.<name>.triggers.github.workflow", "environments.<name>.triggers.alertmanager.match",
              "webhooks.github_secret_env", "watch.window_min", "watch.interval_s", "lease_s"):
        assert p in paths
    assert len(paths) == sum(len(rows) for _, _, rows in configdoc.walk(config.Settings))


def test_env_example_names_every_variable():
    """Every SLACK_*/GITHUB_* variable bot/config.py reads, every top-level QCC_<SETTING>, the
    webhook secrets and the MySQL password variables of qcc.example.yaml are in .env.example."""
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    source = (REPO / "bot" / "config.py").read_text(encoding="utf-8")
    names = set(re.findall(r'"((?:SLACK|GITHUB)_[A-Z_]+)"', source)) | {"QCC_CONFIG"}
    names |= {f"QCC_{name.upper()}" for name, field in config.Settings.model_fields.items()
              if not configdoc._models(field.annotation) and name != "environments"}
    example = yaml.safe_load((REPO / "qcc.example.yaml").read_text(encoding="utf-8"))
    names |= {env["mysql"]["password_env"] for env in example["environments"].values() if env.get("mysql")}
    names |= {example["webhooks"]["github_secret_env"], example["webhooks"]["alertmanager_token_env"]}
    missing = sorted(n for n in names if not re.search(rf"^#? ?{n}=", text, re.M))
    assert not missing, missing
    assert "SLACK_BOT_TOKEN" in names and "QCC_LEASE_S" in names
    for line in text.splitlines():  # placeholders only
        if "=" in line and not line.startswith("#"):
            assert line.split("=", 1)[1] in ("replace-me", "xoxb-replace-me", "xapp-replace-me"), line


def test_compose_runs_the_bot_as_documented():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    bot = compose["services"]["bot"]
    assert bot["command"][0] == "serve" and "--http" not in bot["command"]
    assert bot["env_file"] == ".env"
    mounts = {(v.rsplit(":", 2)[1] if v.endswith(":ro") else v.rsplit(":", 1)[1]): v for v in bot["volumes"]}
    for target in ("/home/qcc/.ssh/id_ed25519", "/home/qcc/.ssh/known_hosts", "/app/qcc.yaml"):
        assert mounts[target].endswith(":ro"), mounts[target]
    assert mounts["/data"].startswith("qcc-state:") and "qcc-state" in compose["volumes"]
    assert bot["environment"]["QCC_STATE_URL"].endswith("/data/qcc-state.db")
    assert "/healthz" in " ".join(bot["healthcheck"]["test"])
    assert all(p.startswith("127.0.0.1:") for p in bot["ports"])
