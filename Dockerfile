# hedged: the keeper as a container. Build: `docker compose build` (or `docker build -t hedged .`).
# Stage 1 builds the project's wheel and every dependency's wheel; stage 2 installs them into a venv
# without compilers, pip caches or sources. Config and state live in /data (a volume); runs as uid 10001.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hedged ./hedged
COPY migrations ./migrations
RUN python -m pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/hedged/bin:$PATH HEDGED_HEALTH_URL=http://127.0.0.1:9464/health
RUN groupadd --system --gid 10001 hedged \
 && useradd --system --uid 10001 --gid hedged --home-dir /data --shell /usr/sbin/nologin hedged \
 && install -d -o hedged -g hedged -m 0750 /data /secrets
# The wheels are bind-mounted from the build stage, so no layer keeps them. Bytecode stays: without it
# importing ccxt takes ~18 s at every start. The alembic migrations ship inside the wheel
# (hedged/migrations); `hedged run` upgrades the store.
RUN --mount=type=bind,from=build,source=/wheels,target=/tmp/wheels \
    python -m venv /opt/hedged \
 && /opt/hedged/bin/pip install --no-index --find-links /tmp/wheels hedged \
 && /opt/hedged/bin/pip uninstall --yes pip \
 && hedged --help >/dev/null \
 && python -c 'from hedged.audit.migrate import migrations_dir; migrations_dir()'
COPY deploy/docker/init-secrets.sh /usr/local/bin/hedged-init-secrets
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9464
# the keeper cancels its orders on SIGTERM and exits 0 (compose: stop_grace_period covers it)
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEDGED_HEALTH_URL'], timeout=4)"]
ENTRYPOINT ["hedged"]
CMD ["run", "--config", "/data/hedged.toml"]
