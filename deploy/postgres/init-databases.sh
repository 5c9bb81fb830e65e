#!/bin/bash
# First start of the PostgreSQL container: Airflow's metadata database and marketing_db, each
# with its own login (passwords from the environment, i.e. .env). The data mart is the
# operator's, reached read-only through the `datamart` connection.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v airflow_pw="$AIRFLOW_DB_PASSWORD" -v mkt_pw="$MARKETING_DB_PASSWORD" <<'SQL'
create role airflow login password :'airflow_pw';
create database airflow owner airflow;
create role mkt login password :'mkt_pw';
create database marketing owner mkt;
SQL
