# qcc-chatops: the Slack bot (Socket Mode by default) and the qcc-bot CLI.
# Build:  docker build -t qcc-chatops .
# Run:    docker run --env-file .env -v $PWD/qcc.yaml:/app/qcc.yaml:ro \
#                    -v $HOME/.ssh:/home/qcc/.ssh:ro -v qcc-state:/data qcc-chatops
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 qcc \
    && mkdir -p /data /app && chown qcc:qcc /data /app
COPY --from=build /install /usr/local
WORKDIR /app
USER qcc
ENV QCC_CONFIG=/app/qcc.yaml \
    QCC_STATE_URL=sqlite+aiosqlite:////data/qcc-state.db \
    PYTHONUNBUFFERED=1
# /healthz and /metrics are served on this port (and /slack/events in HTTP mode).
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=4).status == 200 else 1)"
ENTRYPOINT ["qcc-bot"]
CMD ["serve"]
