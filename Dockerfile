# The one image of every Airflow process and the SMS receiver (docker-compose.yml).
# Airflow's official image (it ships the FAB auth manager provider used in production) with this
# project's pinned dependencies (hashes checked) and the project itself under /opt/qz.
FROM apache/airflow:3.3.2-python3.11

COPY --chown=airflow:0 requirements.lock /opt/qz/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /opt/qz/requirements.lock

COPY --chown=airflow:0 pyproject.toml /opt/qz/pyproject.toml
COPY --chown=airflow:0 qz_outbound /opt/qz/qz_outbound
COPY --chown=airflow:0 dags /opt/qz/dags
COPY --chown=airflow:0 plugins /opt/qz/plugins
COPY --chown=airflow:0 include /opt/qz/include
COPY --chown=airflow:0 config /opt/qz/config
COPY --chown=airflow:0 deploy /opt/qz/deploy
# the package resolves include/ and config/ next to itself: keep it in /opt/qz (editable, no copy)
RUN pip install --no-cache-dir --no-deps -e /opt/qz

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/qz/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/qz/plugins \
    QZ_OUTPUT_DIR=/opt/qz/var/output \
    GX_ANALYTICS_ENABLED=False
