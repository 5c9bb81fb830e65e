#!/usr/bin/env bash
# Install what the Jasmin interoperability tests need, idempotently:
#   - redis-server and rabbitmq-server from Debian (services are not auto-started here),
#   - Jasmin 0.11.0 in its own venv (it pins old Twisted/cryptography/celery that
#     clash with Airflow, so it never goes into the project venv),
#   - Jasmin's AMQP spec files, which only the sdist carries.
# Not 0.11.1: its receipts break ('SubmitSM' object has no attribute 'response', jookies/jasmin#1236).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
if ((${#need_apt[@]})); then
  echo "installing ${need_apt[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps the packages' postinst from starting the services on 0.0.0.0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  if ! apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null
  fi
fi

if [ ! -x "$JASMIN_VENV/bin/jasmind.py" ]; then
  echo "installing jasmin==$JASMIN_VERSION into $JASMIN_VENV"
  py=$(command -v python3.11 || command -v python3)
  rm -rf "$JASMIN_VENV"
  "$py" -m venv "$JASMIN_VENV"
  "$JASMIN_VENV/bin/pip" install -q --disable-pip-version-check "jasmin==$JASMIN_VERSION" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$JASMIN_VENV/bin/python" -c "import jasmin" || { echo "jasmin install failed" >&2; exit 1; }
fi

if [ ! -f "$JASMIN_RESOURCE_SRC/amqp0-9-1.xml" ]; then
  echo "fetching jasmin $JASMIN_VERSION sdist for its AMQP spec files"
  tmp=$(mktemp -d)
  "$JASMIN_VENV/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    "jasmin==$JASMIN_VERSION" -d "$tmp"
  tar -xzf "$tmp/jasmin-$JASMIN_VERSION.tar.gz" -C "$tmp"
  mkdir -p "$JASMIN_RESOURCE_SRC"
  cp "$tmp/jasmin-$JASMIN_VERSION/misc/config/resource/"* "$JASMIN_RESOURCE_SRC/"
  rm -rf "$tmp"
fi
echo "services installed: redis-server, rabbitmq-server, jasmin $JASMIN_VERSION ($JASMIN_VENV)"
