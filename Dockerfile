# The one image of every Airflow process and the SMS receiver (docker-compose.yml).
# Airflow's official image with this project's pinned dependencies (requirements.lock, hashes
# checked; it carries the FAB auth manager provider used in production) and the project itself
# under /opt/qz.
#
# AIRFLOW_IMAGE: the base. The public image by default (an operator with a registry); without one,
# scripts/deploy/images.sh builds qz-local/airflow from Debian with the lock already installed from
# a wheelhouse (then the pip install below finds everything satisfied and needs no network).
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

COPY --chown=airflow:0 requirements.lock /opt/qz/requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /opt/qz/requirements.lock

COPY --chown=airflow:0 pyproject.toml /opt/qz/pyproject.toml
COPY --chown=airflow:0 qz_outbound /opt/qz/qz_outbound
COPY --chown=airflow:0 dags /opt/qz/dags
COPY --chown=airflow:0 plugins /opt/qz/plugins
COPY --chown=airflow:0 include /opt/qz/include
COPY --chown=airflow:0 config /opt/qz/config
COPY --chown=airflow:0 deploy /opt/qz/deploy
# the package resolves include/ and config/ next to itself: keep it in /opt/qz (editable, no copy);
# built with the lock's setuptools (no build isolation: no network). The volumes' mount points
# are made here so that they belong to airflow.
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/qz \
 && mkdir -p /opt/qz/var/output /opt/qz/var/sms-state

ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/qz/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/qz/plugins \
    QZ_OUTPUT_DIR=/opt/qz/var/output \
    GX_ANALYTICS_ENABLED=False
