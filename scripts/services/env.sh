# Shared settings for the SMS test services (sourced by the other scripts).
# Every server binds 127.0.0.1. Override any of these from the environment.

# Installs that may be kept between runs (venv, sdist resources).
: "${QZ_SERVICES_HOME:=${XDG_CACHE_HOME:-$HOME/.cache}/qz_outbound/services}"
# Runtime state: data dirs, logs, pid files, generated configs.
: "${QZ_SERVICES_RUN:=/tmp/qz_outbound_services}"

: "${QZ_REDIS_PORT:=6389}"
: "${QZ_RABBITMQ_PORT:=5682}"
: "${QZ_RABBITMQ_DIST_PORT:=25682}"
: "${QZ_JASMIN_SMPP_PORT:=2785}"
: "${QZ_JASMIN_HTTP_PORT:=1411}"
: "${QZ_JASMIN_JCLI_PORT:=8995}"
: "${QZ_JASMIN_ROUTER_PORT:=8998}"
: "${QZ_JASMIN_SMPPCM_PORT:=8999}"
: "${QZ_JASMIN_SMPPSPB_PORT:=14010}"
: "${QZ_JASMIN_ADMIN_USER:=jcliadmin}"
: "${QZ_JASMIN_ADMIN_PASSWORD:=jclipwd}"

JASMIN_VERSION=0.11.0
JASMIN_VENV="$QZ_SERVICES_HOME/jasmin-$JASMIN_VERSION/venv"
JASMIN_RESOURCE_SRC="$QZ_SERVICES_HOME/jasmin-$JASMIN_VERSION/resource"
JASMIN_ROOT="$QZ_SERVICES_RUN/jasmin"

export QZ_SERVICES_HOME QZ_SERVICES_RUN QZ_REDIS_PORT QZ_RABBITMQ_PORT QZ_RABBITMQ_DIST_PORT \
  QZ_JASMIN_SMPP_PORT QZ_JASMIN_HTTP_PORT QZ_JASMIN_JCLI_PORT QZ_JASMIN_ROUTER_PORT \
  QZ_JASMIN_SMPPCM_PORT QZ_JASMIN_SMPPSPB_PORT QZ_JASMIN_ADMIN_USER QZ_JASMIN_ADMIN_PASSWORD

# wait_port PORT SECONDS: true once something accepts TCP on 127.0.0.1:PORT
wait_port() {
  local port=$1 deadline=$((SECONDS + $2))
  while (( SECONDS < deadline )); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
