#!/usr/bin/env bash
# The team's MLflow tracking server: runs, params and the model registry in PostgreSQL,
# artifacts in one folder (or bucket) that the server proxies, so clients need no store
# credentials. Credentials come only from the environment: the database password from
# PGPASSWORD (libpq), never from a file or the URI.
#
#   FORGEML_SERVER_DB         postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow
#   FORGEML_SERVER_ARTIFACTS  ./mlartifacts (or s3://bucket/prefix with AWS_* set)
#   FORGEML_SERVER_HOST/PORT  127.0.0.1 / 5000
#
# Clients: `forgeml compose logger=server` (or MLFLOW_TRACKING_URI=http://host:port).
set -euo pipefail
cd "$(dirname "$0")/.."
DB="${FORGEML_SERVER_DB:-postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow}"
ARTIFACTS="${FORGEML_SERVER_ARTIFACTS:-$PWD/mlartifacts}"
HOST="${FORGEML_SERVER_HOST:-127.0.0.1}"
PORT="${FORGEML_SERVER_PORT:-5000}"
case "$DB" in
  *://*:*@*) echo "error: FORGEML_SERVER_DB holds a password; put it in PGPASSWORD instead" >&2
             exit 2 ;;
esac
# No background job consumers: they would outlive a stopped server.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
exec .venv/bin/mlflow server --backend-store-uri "$DB" --artifacts-destination "$ARTIFACTS" \
  --serve-artifacts --host "$HOST" --port "$PORT" --workers "${FORGEML_SERVER_WORKERS:-2}"
