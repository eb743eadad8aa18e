# One image for the web nodes and the CPU worker; the `gpu` target adds CUDA JAX for the GPU worker.
FROM node:20-slim AS browser-deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts

FROM python:3.11-slim AS cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 SKINDOC_DATA_DIR=/var/lib/skindoc \
    SKINDOC_NODE_MODULES_DIR=/app/node_modules SKINDOC_CLIENT_JS_DIR=/app/clients/js
# The worker's compiled-executable cache (JAX_COMPILATION_CACHE_DIR in docker-compose.yml), owned by its user.
RUN useradd --system --home /var/lib/skindoc --create-home skindoc \
    && mkdir -p /var/cache/skindoc/jax && chown skindoc /var/cache/skindoc/jax
WORKDIR /app
COPY . .
COPY --from=browser-deps /src/node_modules ./node_modules
RUN pip install .
USER skindoc
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=5 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["skindoc", "serve", "--host", "0.0.0.0"]

FROM cpu AS gpu
USER root
RUN pip install "jax[cuda12]>=0.4.35"
USER skindoc
# The worker's own health endpoint (SKINDOC_WORKER_HEALTH_PORT), not the web node's.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 --start-period=180s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8081/readyz', timeout=2).status != 200)"
CMD ["skindoc", "worker"]
