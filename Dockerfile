# gepetto: `docker build -t gepetto:0.1.0 .`
#
# Two stages: `build` installs the hash-pinned runtime dependencies (requirements.lock) and
# gepetto's own wheel into a virtualenv; `runtime` is a clean slim image with that virtualenv
# only (no compilers, no pip cache, no sources), running as an unprivileged user.
# The Python patch version matches the interpreter the tests and the lock were made with.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --only-binary=:all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY gepetto_core ./gepetto_core
COPY bot ./bot
# gepetto itself is pure Python; the build backend it is built with is pinned as well
# (PIP_CONSTRAINT also applies inside pip's isolated build environment).
RUN printf 'setuptools==80.9.0\nwheel==0.45.1\n' > /tmp/build-constraints.txt \
    && PIP_CONSTRAINT=/tmp/build-constraints.txt pip wheel --no-deps --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-deps --no-index /wheels/gepetto-*.whl \
    && /opt/venv/bin/pip check

FROM python:3.11.7-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 gepetto \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gepetto
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GEPETTO_DATA_DIR=/tmp/gepetto \
    MPLCONFIGDIR=/tmp/matplotlib
# The root filesystem is read-only in the pod; /tmp is a writable emptyDir there.
WORKDIR /tmp
USER 10001:10001
EXPOSE 8080
# For plain `docker run`; Kubernetes ignores this and uses the probes in k8s/deployment.yaml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["gepetto"]
CMD ["serve"]
