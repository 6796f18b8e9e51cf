# ScaiVault image: one image for the API, the Temporal worker and the migrate job.
#
#   docker build -t scaivault:0.1.0 .
#   docker run ... scaivault:0.1.0                               # API, 2 uvicorn workers on :8443
#   docker run ... scaivault:0.1.0 scaivault worker              # Temporal worker (all task queues)
#   docker run ... scaivault:0.1.0 scaivault migrate             # schema to head (one-shot)
#
# See docs/deployment.md for the environment variables and the compose topology.

ARG PYTHON_IMAGE=python:3.11-slim

# ----------------------------------------------------------------------------------------- build
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/scaivault
ENV PATH=/opt/scaivault/bin:$PATH

WORKDIR /src

# Runtime dependencies first (no dev extras), so this layer is reused until pyproject.toml changes.
# Every dependency ships manylinux wheels for CPython 3.11, so no compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; open('/tmp/requirements.txt', 'w').write(chr(10).join(deps) + chr(10))" \
 && pip install -r /tmp/requirements.txt

# The package itself (a regular, non-editable install into the venv).
COPY . .
RUN pip install --no-deps .
# Import every installed module from outside the source tree: a package missing from
# [tool.setuptools.packages.find] fails the build here rather than the first request.
WORKDIR /
RUN python /src/deploy/check_install.py

# --------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="scaivault" \
      org.opencontainers.image.description="Self-hostable multi-tenant secrets and certificate platform" \
      org.opencontainers.image.licenses="Apache-2.0"

# tini is PID 1: it forwards SIGTERM to the process and reaps zombies (uvicorn's worker processes).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 scaivault \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/scaivault \
      --shell /usr/sbin/nologin scaivault

COPY --from=build /opt/scaivault /opt/scaivault
COPY deploy/docker-entrypoint.sh /usr/local/bin/scaivault-entrypoint
RUN chmod 0755 /usr/local/bin/scaivault-entrypoint

# ENV=prod: missing or placeholder secrets refuse to start (core/settings.py). Override only for tests.
# PROMETHEUS_MULTIPROC_DIR: uvicorn runs several processes; /metrics aggregates them from this directory,
# which the entrypoint empties at every container start.
ENV PATH=/opt/scaivault/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ENV=prod \
    PROMETHEUS_MULTIPROC_DIR=/tmp/scaivault-prometheus

WORKDIR /home/scaivault
USER 10001:10001

EXPOSE 8443

# Liveness only: the process answers HTTP. Readiness (/v1/health/ready) is for load balancers and
# orchestrators, which must not restart the API because a dependency is down.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8443/v1/health', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/scaivault-entrypoint"]
CMD ["scaivault", "serve", "--host", "0.0.0.0", "--port", "8443", "--workers", "2"]
