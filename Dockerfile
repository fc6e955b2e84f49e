# One image for both services; docker-compose.yml picks the command.
#   docker build -t chat-backend .
#   docker run -e DATABASE_URL=... -e REDIS_URL=... -p 8000:8000 chat-backend
# The chat page's socket.io-client build, installed from the npm registry.
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY web/ ./

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_ROOT=/app/web

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code edits do not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# Then the code, installed without test extras.
COPY services ./services
COPY --from=web /web ./web
RUN pip install --no-deps . && rm -rf build ./*.egg-info \
    && useradd --system --uid 10001 --no-create-home app

USER app
EXPOSE 8000

# The api by default; the realtime service runs the same image with
# `python -m services.realtime_service`.
CMD ["python", "-m", "services.api_service"]
