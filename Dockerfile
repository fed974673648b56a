# coursebot: one image for `coursebot serve` (the default command) and `coursebot worker`.
#   docker build -t coursebot .
#   docker run --env-file .env -p 3000:3000 coursebot            # serve
#   docker run --env-file .env coursebot coursebot worker        # worker
# compose.yml runs both with Redis. Settings come from the environment (README › Configuration).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=3000

WORKDIR /app

# The pinned dependencies first: this layer is rebuilt only when requirements.txt changes.
# (Its last line, `.`, installs the bot itself; that is done below, once the code is here.)
COPY requirements.txt ./
RUN grep -vx '\.' requirements.txt > /tmp/dependencies.txt \
    && pip install -r /tmp/dependencies.txt \
    && rm /tmp/dependencies.txt

COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY devtools ./devtools
RUN pip install --no-deps . && rm -rf build ./*.egg-info

# Run as an unprivileged user (its home holds matplotlib's font cache).
RUN useradd --create-home --uid 10001 coursebot
USER coursebot

EXPOSE 3000
# `serve` answers GET /healthz with 200 while Redis answers (503 otherwise). For a worker
# container, turn the check off (compose.yml does): it has no web port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '3000') + '/healthz', timeout=4)"]

CMD ["coursebot", "serve"]
