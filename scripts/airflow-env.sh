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
