#!/usr/bin/env bash
# Builds every image docker-compose.yml needs without an image registry, and caches them:
#
#   qz-local/debian-python:<h>   Debian bookworm (debootstrap, the system's apt sources) + python3
#   qz-local/airflow:<h>         + a venv with requirements.lock, installed from a wheelhouse
#                                downloaded on the host (hashes checked; no network in the image)
#   qz-local/postgres:<h>        Debian's postgresql-15 with an entrypoint like the public image's
#   qz-local/redis:<h>           Debian's redis-server
#   qz-outbound:<tag>            the project image (Dockerfile) on qz-local/airflow
#
# <h> is a content hash of what goes into the image (package lists, mirror, lock, setup files), so
# a second run finds them and only rebuilds the project image (Docker's layer cache makes that
# fast); a change to an input builds that image afresh. Needs root on Debian: installs docker.io
# and debootstrap when missing and starts dockerd when none answers (log and pid under
# $QZ_DEPLOY_CACHE).
#
#   scripts/deploy/images.sh            # build; prints the environment for `docker compose` on stdout
#
# The printed lines (QZ_IMAGE_TAG=..., QZ_POSTGRES_IMAGE=..., ...) go into the compose environment:
# an operator with a registry sets none of them and gets the public images.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache=${QZ_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qz_outbound/deploy}
mkdir -p "$cache"
log() { echo "[images] $*" >&2; }

ensure_docker() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  if ((${#need[@]})); then
    log "installing ${need[*]} from Debian"
    export DEBIAN_FRONTEND=noninteractive
    if [ ! -e /usr/sbin/policy-rc.d ]; then   # the packages' postinst must not start services
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
  fi
  if ! docker info >/dev/null 2>&1; then
    log "starting dockerd (log $cache/dockerd.log)"
    setsid dockerd >"$cache/dockerd.log" 2>&1 &
    echo $! > "$cache/dockerd.pid"
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { tail -20 "$cache/dockerd.log" >&2; exit 1; }
  fi
}

# The Debian mirror of this machine's apt sources (one place: scripts/services/debian-mirror.sh).
mirror() { "$root/scripts/services/debian-mirror.sh" || exit 1; }

hash_of() { cat "$@" | sha256sum | cut -c1-12; }

# rootfs_image NAME PACKAGES [FILE...]: debootstrap bookworm with PACKAGES, the FILEs (setup
# scripts) under /qz-setup, imported as qz-local/NAME:<hash>; prints the image name
rootfs_image() {
  local name=$1 pkgs=$2; shift 2
  local h img dir
  h=$( (echo "$pkgs $(mirror) bookworm v1"; cat "$@" /dev/null) | sha256sum | cut -c1-12)
  img="qz-local/$name:$h"
  if docker image inspect "$img" >/dev/null 2>&1; then echo "$img"; return; fi
  dir=$(mktemp -d "$cache/rootfs-$name.XXXX")
  log "debootstrap bookworm for $name ($pkgs)"
  debootstrap --variant=minbase --include="$pkgs" bookworm "$dir" "$(mirror)" >"$cache/debootstrap-$name.log" 2>&1 \
    || { tail -20 "$cache/debootstrap-$name.log" >&2; rm -rf "$dir"; exit 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  mkdir -p "$dir/qz-setup"
  for f in "$@"; do cp "$f" "$dir/qz-setup/"; done
  tar -C "$dir" -c . | docker import - "$img" >/dev/null
  rm -rf "$dir"
  log "built $img"
  echo "$img"
}

# The wheelhouse: every artifact of requirements.lock, downloaded with hashes checked.
wheelhouse() {
  local h dir
  h=$(hash_of "$root/requirements.lock")
  dir="$cache/wheelhouse-$h"
  if [ ! -f "$dir/.complete" ]; then
    log "downloading the wheelhouse of requirements.lock ($dir)"
    mkdir -p "$dir"
    # what an earlier lock already fetched is reused (hard links; pip skips files already there)
    local prev
    prev=$(ls -dt "$cache"/wheelhouse-*/ 2>/dev/null | grep -v "$dir" | head -1 || true)
    [ -n "$prev" ] && cp -l "$prev"/*.whl "$dir"/ 2>/dev/null || true
    "${PYTHON:-python3}" -m pip download -q --disable-pip-version-check --require-hashes --no-deps \
      --only-binary :all: \
      -r "$root/requirements.lock" -d "$dir" >&2
    touch "$dir/.complete"
  fi
  echo "$dir"
}

build_all() {
  ensure_docker
  local here="$root/deploy/local"
  local py pg rd af h wh
  py=$(rootfs_image debian-python "python3,python3-venv,curl,ca-certificates,tini,procps")
  pg=$(rootfs_image postgres "postgresql-15,tini" "$here/postgres-entrypoint.sh")
  # the entrypoint's changes (docker import keeps none): set here, on a tiny layer
  if ! docker image inspect "$pg-run" >/dev/null 2>&1; then
    cid=$(docker create "$pg" true)
    docker commit -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'ENV PGDATA=/var/lib/postgresql/data' -c 'EXPOSE 5432' \
      -c 'ENTRYPOINT ["/usr/bin/tini", "--", "/bin/bash", "/qz-setup/postgres-entrypoint.sh"]' -c 'CMD ["postgres"]' \
      "$cid" "$pg-run" >/dev/null || { docker rm "$cid" >/dev/null; exit 1; }
    docker rm "$cid" >/dev/null
  fi
  rd=$(rootfs_image redis "redis-server,redis-tools")
  wh=$(wheelhouse)
  h=$( (echo "$py"; cat "$root/requirements.lock" "$here/airflow-install.sh" "$here/airflow-entrypoint.sh") | sha256sum | cut -c1-12)
  af="qz-local/airflow:$h"
  if ! docker image inspect "$af" >/dev/null 2>&1; then
    log "installing requirements.lock into $af from the wheelhouse (no network)"
    docker rm -f qz-local-airflow-build >/dev/null 2>&1 || true
    docker run --name qz-local-airflow-build --network none -v "$wh:/wheels:ro" \
      -v "$root/requirements.lock:/setup/requirements.lock:ro" \
      -v "$here/airflow-install.sh:/setup/install.sh:ro" -v "$here/airflow-entrypoint.sh:/setup/entrypoint.sh:ro" \
      "$py" /bin/bash /setup/install.sh >"$cache/airflow-install.log" 2>&1 \
      || { tail -30 "$cache/airflow-install.log" >&2; exit 1; }
    docker commit -c 'ENV PATH=/home/airflow/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'ENV AIRFLOW_HOME=/opt/airflow' -c 'ENV PIP_NO_INDEX=1' -c 'ENV PYTHONUNBUFFERED=1' \
      -c 'USER 50000' -c 'WORKDIR /opt/airflow' \
      -c 'ENTRYPOINT ["/usr/bin/tini", "--", "/entrypoint"]' -c 'CMD ["--help"]' \
      qz-local-airflow-build "$af" >/dev/null
    docker rm qz-local-airflow-build >/dev/null
    log "built $af"
  fi
  local tag
  tag=${QZ_IMAGE_TAG:-local}
  log "building qz-outbound:$tag on $af"
  docker build -q --force-rm --build-arg "AIRFLOW_IMAGE=$af" -t "qz-outbound:$tag" "$root" >&2
  echo "QZ_IMAGE_TAG=$tag"
  echo "QZ_AIRFLOW_IMAGE=$af"
  echo "QZ_POSTGRES_IMAGE=$pg-run"
  echo "QZ_REDIS_IMAGE=$rd"
}

build_all
