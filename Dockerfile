# One image for both services; docker-compose.yml picks the command.
#   docker build -t chat-backend .
#   docker run -e DATABASE_URL=... -e REDIS_URL=... -p 8000:8000 chat-backend
#
# Base images are build arguments (defaults: the official images). Without a registry,
# scripts/standin_images.sh makes Debian-based stand-ins, and everything the build would
# download can come from deploy/offline/ instead (see deploy/offline/README.md):
#   wheels/             Python wheels: installed with `pip --no-index --find-links`
#   web/node_modules/   the pages' npm packages, installed on the host by `npm ci`
# Both are used when present, and the build then needs no network at all.
ARG PYTHON_IMAGE=python:3.11-slim
ARG NODE_IMAGE=node:20-slim

# The pages' npm packages (socket.io-client for the chat page, swagger-ui-dist for /docs):
# from deploy/offline/web, else the npm registry. No install scripts: both ship prebuilt
# files, and swagger-ui-dist's dependency would otherwise report the install to its vendor.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
COPY deploy/offline/ /offline/
RUN if [ -f /offline/web/node_modules/swagger-ui-dist/package.json ]; then \
        cp -a /offline/web/node_modules ./node_modules; \
    else \
        npm ci --omit=dev --ignore-scripts --no-audit --no-fund; \
    fi \
    && test -f node_modules/socket.io-client/dist/socket.io.min.js \
    && test -f node_modules/swagger-ui-dist/swagger-ui-bundle.js \
    && test -f node_modules/swagger-ui-dist/swagger-ui.css
COPY web/ ./

# The dependencies in their own virtual environment, from pyproject.toml alone, so code
# edits do not reinstall them; the wheelhouse never reaches the final image.
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml /src/
COPY deploy/offline/ /offline/
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("/src/pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /src/requirements.txt \
    && python -m venv /opt/chat \
    && if ls /offline/wheels/*.whl >/dev/null 2>&1; then \
        echo "installing from the wheelhouse (no index)"; \
        /opt/chat/bin/pip install --no-index --find-links /offline/wheels -r /src/requirements.txt; \
    else \
        /opt/chat/bin/pip install -r /src/requirements.txt; \
    fi

FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/chat/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_ROOT=/app/web

# The non-root user, and /var/lib/chat for what the services keep (the generated JWT
# secret when JWT_SECRET_FILE points there): a named volume mounted on it inherits this
# owner, so the user can write it.
RUN useradd --system --uid 10001 --no-create-home app \
    && mkdir -p /var/lib/chat && chown app /var/lib/chat && chmod 700 /var/lib/chat

COPY --from=deps /opt/chat /opt/chat
WORKDIR /app
# The code runs from /app (`python -m services...` finds it in the working directory).
COPY services ./services
COPY --from=web /web ./web

USER app
EXPOSE 8000

# The api by default; the realtime service runs the same image with
# `python -m services.realtime_service`.
CMD ["python", "-m", "services.api_service"]
