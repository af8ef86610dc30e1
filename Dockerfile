# Kezhan API image: build wheels in one stage, run as a non-root user in a slim one.
# DATABASE_URL is required (the embedded PostgreSQL is for development machines only).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    KEZHAN_ENVIRONMENT=production KEZHAN_DATA_DIR=/var/lib/kezhan
RUN useradd --system --create-home --home-dir /var/lib/kezhan kezhan
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
USER kezhan
WORKDIR /var/lib/kezhan
EXPOSE 8000
# Fail fast without a database: the image never starts an embedded one.
CMD ["sh", "-c", ": \"${DATABASE_URL:?set DATABASE_URL to the PostgreSQL server}\" && kezhan migrate && exec uvicorn app.main:create_app --factory --host 0.0.0.0 --port 8000 --no-access-log"]
