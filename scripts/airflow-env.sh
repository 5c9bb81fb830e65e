# Sourced by bin/demo and the test setup: Airflow in-process on the embedded default.
# Everything lives under var/ in the project; nothing outside it is touched.
_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$_root/.venv/bin:$PATH"
export AIRFLOW_HOME=${AIRFLOW_HOME:-$_root/var/airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$_root/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$_root/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
export AIRFLOW__CORE__DEFAULT_TIMEZONE=Asia/Shanghai
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__LOGGING__LOGGING_LEVEL=${AIRFLOW__LOGGING__LOGGING_LEVEL:-WARNING}
export GX_ANALYTICS_ENABLED=False
export QZ_OUTPUT_DIR=${QZ_OUTPUT_DIR:-$_root/var/output}
export QZ_DEMO_DIR=${QZ_DEMO_DIR:-$_root/var/demo}
export AIRFLOW_CONN_DATAMART=${AIRFLOW_CONN_DATAMART:-"{\"conn_type\": \"sqlite\", \"host\": \"$QZ_DEMO_DIR/datamart.db\"}"}
export AIRFLOW_CONN_MARKETING_DB=${AIRFLOW_CONN_MARKETING_DB:-"{\"conn_type\": \"sqlite\", \"host\": \"$QZ_DEMO_DIR/marketing.db\"}"}
mkdir -p "$AIRFLOW_HOME" "$QZ_OUTPUT_DIR" "$QZ_DEMO_DIR"
unset _root
# The county portal's users on the embedded default (SimpleAuthManager): HQ and one user per county;
# a county user's name is its county role (qz_outbound/portal/access.py). Airflow writes their generated passwords to
# $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated (production: FAB, see docs/portal.md).
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-"hq:admin,county_350502:viewer,county_350503:viewer,county_350504:viewer,county_350505:viewer,county_350581:viewer,county_350582:viewer,county_350583:viewer,county_350521:viewer,county_350524:viewer,county_350525:viewer,county_350526:viewer"}
