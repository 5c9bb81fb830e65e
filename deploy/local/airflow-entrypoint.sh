#!/bin/bash
# The entrypoint of qz-local/airflow, as the public apache/airflow image's behaves for what
# docker-compose.yml runs: `bash ...` and `python ...` run as given, anything else is
# `airflow <command>` (api-server, scheduler, celery worker, ...).
set -e
case "${1:-}" in
  bash|python|python3|/bin/bash|/bin/sh) exec "$@" ;;
  *) exec airflow "$@" ;;
esac
