# hedged: the keeper as a container. Build: `docker compose build` (or `docker build -t hedged .`).
# Stage 1 builds the project's wheel and every dependency's wheel; stage 2 installs them into a venv
# without compilers, pip caches or sources. Config and state live in /data (a volume); runs as uid 10001.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# dependencies first, from pyproject.toml alone (an empty package stands in), so a code change rebuilds
# only the project's own wheel below
COPY pyproject.toml README.md ./
RUN mkdir hedged && touch hedged/__init__.py \
 && python -m pip wheel --wheel-dir /deps . \
 && rm -rf /deps/hedged-* hedged build
COPY hedged ./hedged
COPY migrations ./migrations
RUN python -m pip wheel --no-deps --wheel-dir /app .

FROM python:3.11-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HEDGED_HEALTH_URL=http://127.0.0.1:9464/health
RUN groupadd --system --gid 10001 hedged \
 && useradd --system --uid 10001 --gid hedged --home-dir /data --shell /usr/sbin/nologin hedged \
 && install -d -o hedged -g hedged -m 0750 /data /secrets
# Wheels are bind-mounted from the build stage, so no layer keeps them; dependencies and the project are
# two layers (a code change reinstalls only the second). Bytecode stays: without it importing ccxt takes
# ~18 s at every start. The alembic migrations ship inside the wheel (hedged/migrations); `hedged run`
# upgrades the store.
# The venv has no pip of its own: the base image's pip installs into it (`--python`).
RUN --mount=type=bind,from=build,source=/deps,target=/tmp/deps \
    python -m venv --without-pip /opt/hedged \
 && python -m pip --python /opt/hedged/bin/python install --no-index /tmp/deps/*.whl
RUN --mount=type=bind,from=build,source=/app,target=/tmp/app \
    python -m pip --python /opt/hedged/bin/python install --no-index --no-deps /tmp/app/*.whl \
 && /opt/hedged/bin/hedged --help >/dev/null \
 && /opt/hedged/bin/python -c 'from hedged.audit.migrate import migrations_dir; migrations_dir()'
ENV PATH=/opt/hedged/bin:$PATH
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
