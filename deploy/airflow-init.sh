#!/usr/bin/env bash
# The init job of docker-compose.yml: runs once before the Airflow services start, idempotently.
#   1. Airflow's metadata database and the FAB auth manager's tables, migrated
#   2. pools (config/pools.json)
#   3. roles and users of the FAB auth manager (docs/security.md): role `hq` for HQ marketing
#      (Airflow's User permissions: trigger, clear, pause), one role `county_<code>` per county
#      office (sign in and the county portal only); user `hq`, and a user per county when its
#      password is given (file QZ_COUNTY_PASSWORDS_FILE: lines `county_<code>=<password>`). The
#      county role is the one place a county is granted: the portal reads it (portal/access.py)
#   4. the connections the cycle needs resolve (they come from the environment: AIRFLOW_CONN_*)
#   5. marketing_db migrated to the head revision (qz-outbound db upgrade; docs/migrations.md)
set -euo pipefail
: "${HQ_PASSWORD:?HQ_PASSWORD must be set (.env)}"
: "${ADMIN_PASSWORD:?ADMIN_PASSWORD must be set (.env)}"

airflow db migrate
airflow fab-db migrate
airflow pools import "${QZ_HOME:-/opt/qz}/config/pools.json"   # QZ_HOME: a checkout (tests/portal/test_portal_fab.py)

counties=$(python -c 'from qz_outbound import counties; print(" ".join(counties.county_names()))')

ensure_user() {  # ensure_user NAME ROLE PASSWORD
  if airflow users list -o plain | awk '{print $2}' | grep -qx "$1"; then
    airflow users reset-password --username "$1" --password="$3" >/dev/null   # rotation: .env is the truth
  else
    airflow users create --username "$1" --role "$2" --password="$3" \
      --firstname "$1" --lastname qz --email "$1@qz-outbound.invalid" >/dev/null
  fi
}

county_roles=$(for code in $counties; do printf 'county_%s ' "$code"; done)
# one call each (every airflow command is seconds of start-up): creating a role that exists is a no-op
airflow roles create hq $county_roles
# HQ: what Airflow's built-in User role may do on DAGs (see, trigger, clear, pause)
airflow roles add-perms hq -r DAGs "DAG Runs" "Task Instances" -a can_read can_edit can_create
airflow roles add-perms hq -r Website "My Profile" "My Password" Pools -a can_read
# a county office signs in and uses the portal; it does not read DAGs, task logs or XComs
airflow roles add-perms $county_roles -r Website "My Profile" "My Password" -a can_read

ensure_user admin Admin "$ADMIN_PASSWORD"
ensure_user hq hq "$HQ_PASSWORD"
if [ -n "${QZ_COUNTY_PASSWORDS_FILE:-}" ] && [ -f "$QZ_COUNTY_PASSWORDS_FILE" ]; then
  while IFS='=' read -r user password; do
    [[ "$user" =~ ^county_[0-9]{6}$ ]] || continue
    ensure_user "$user" "$user" "$password"
  done < "$QZ_COUNTY_PASSWORDS_FILE"
fi

python - <<'PY'
from airflow.models.connection import Connection
missing = []
for conn_id in ("datamart", "marketing_db", "smsc"):
    try:
        Connection.get_connection_from_secrets(conn_id)
    except Exception:
        missing.append(conn_id)
if missing:
    raise SystemExit(f"connections missing (set AIRFLOW_CONN_<ID> in .env): {', '.join(missing)}")
print("connections datamart, marketing_db, smsc resolve")
PY

# tasks, the receiver and the portal never create tables: the schema is migrated here, once
qz-outbound db upgrade --conn marketing_db
