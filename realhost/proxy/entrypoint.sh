#!/bin/sh
# Entrypoint of the proxy image: a banner, the CLI version, then ccproxy as PID 1 (exec).
echo "==> qcc_plus proxy container starting"
echo "Claude Code CLI version: 2.0.14 (stand-in)"
exec /app/ccproxy "$@"
