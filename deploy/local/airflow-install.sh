#!/bin/bash
# Runs once inside qz-local/debian-python (scripts/deploy/images.sh, --network none): the user and
# layout of the public apache/airflow image (uid 50000, gid 0, AIRFLOW_HOME=/opt/airflow, its
# entrypoint's `airflow <command>` / `bash` / `python` dispatch) and a venv with requirements.lock,
# installed from the wheelhouse mounted at /wheels with its hashes checked.
set -euo pipefail
useradd --uid 50000 --gid 0 --home-dir /home/airflow --create-home --shell /bin/bash airflow
mkdir -p /opt/airflow/logs /opt/airflow/dags /opt/qz
chown -R airflow:0 /opt/airflow /opt/qz
chmod -R g+rwX /opt/airflow /opt/qz
install -m 0755 /setup/entrypoint.sh /entrypoint
su airflow -c 'python3 -m venv /home/airflow/.venv'
su airflow -c '/home/airflow/.venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
  --find-links /wheels --require-hashes -r /setup/requirements.lock'
/home/airflow/.venv/bin/airflow version
rm -rf /qz-setup
