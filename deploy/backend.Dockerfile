# voxlive back end: the WebSocket/HTTP server on port 8000.
# CPU torch by default; for CUDA: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
# The base image is a build argument so that a compatible stand-in can replace it (the image test
# builds one from Debian packages where no registry is reachable); the default is the official one.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0
# Optional extras, e.g. "[ray]" for --engine ray.
ARG EXTRAS=""

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/data/hf \
    VOXLIVE_HOST=0.0.0.0 \
    VOXLIVE_PORT=8000 \
    VOXLIVE_WEB_DIR=/nonexistent

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin voxlive \
    && mkdir -p /data/hf && chown voxlive:voxlive /data/hf

WORKDIR /app
# torch first, from the chosen index, so the layer is cached across code changes.
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
COPY pyproject.toml README.md ./
COPY src ./src
# The project itself (a local path, plus optional extras): versions come from pyproject.toml.
# hadolint ignore=DL3013
RUN pip install ".${EXTRAS}"

USER 10001
VOLUME ["/data/hf"]
EXPOSE 8000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('VOXLIVE_PORT', '8000'), timeout=4)"]
CMD ["voxlive", "serve"]
