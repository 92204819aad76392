# Tocsin: one image for both processes.
#   docker build -t tocsin .
#   docker run --rm -e TEMPORAL_ADDRESS=temporal:7233 tocsin                       # worker (default CMD)
#   docker run --rm -p 8080:8080 tocsin tocsin gateway --host 0.0.0.0 --port 8080  # HTTP gateway
# docker-compose.temporal.yml runs both against a Postgres-backed Temporal.
# No HEALTHCHECK here: only the gateway serves /healthz, so compose sets it on that service.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: install the package and its dependencies into a virtualenv -------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/tocsin
WORKDIR /src
COPY . .
RUN /opt/tocsin/bin/pip install .

# ---- runtime: the virtualenv only (no source tree, no pip cache), non-root ---
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/tocsin/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TOCSIN_HOME=/var/lib/tocsin

RUN groupadd --system --gid 10001 tocsin \
 && useradd --system --uid 10001 --gid tocsin --home-dir /var/lib/tocsin --shell /usr/sbin/nologin tocsin \
 && install -d -o tocsin -g tocsin -m 0750 /var/lib/tocsin \
 && install -d -m 0755 /etc/tocsin

COPY --from=build /opt/tocsin /opt/tocsin

USER tocsin
WORKDIR /var/lib/tocsin
EXPOSE 8080
CMD ["tocsin", "worker"]
