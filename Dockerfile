# Driftwarden worker image: `docker build -t driftwarden .`, then `docker run driftwarden up` (the default).
# Production configuration comes from DRIFTWARDEN_* variables: set DRIFTWARDEN_KAFKA_BOOTSTRAP_SERVERS and
# DRIFTWARDEN_CLICKHOUSE_DSN, or the worker starts an embedded broker and ClickHouse inside the container.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/driftwarden
ENV PATH=/opt/driftwarden/bin:$PATH
WORKDIR /src
# Dependencies first, with a placeholder package, so that a source change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir stream && touch stream/__init__.py \
    && pip install . \
    && pip uninstall -y driftwarden \
    && rm -rf build stream ./*.egg-info
COPY stream ./stream
RUN pip install --no-deps . && driftwarden --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="driftwarden" \
      org.opencontainers.image.description="Real-time ML model monitoring on Kafka and ClickHouse" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 driftwarden \
    && useradd --system --uid 10001 --gid driftwarden --home-dir /var/lib/driftwarden --shell /usr/sbin/nologin \
       driftwarden \
    && install -d -o driftwarden -g driftwarden -m 0750 /var/lib/driftwarden
COPY --from=build /opt/driftwarden /opt/driftwarden
ENV PATH=/opt/driftwarden/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DRIFTWARDEN_WEB_HOST=0.0.0.0 \
    DRIFTWARDEN_WEB_PORT=6066 \
    DRIFTWARDEN_DATA_DIR=/var/lib/driftwarden
WORKDIR /var/lib/driftwarden
USER 10001:10001
EXPOSE 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('DRIFTWARDEN_WEB_PORT', '6066'), timeout=4)"]
ENTRYPOINT ["driftwarden"]
CMD ["up"]
