#!/usr/bin/env bash
# Prints the path of a Docker Compose v2 binary that can check docker-compose.yml (`config`
# needs no Docker daemon). Order: the `docker-compose` plugin already installed; one this script
# unpacked before; else Debian's package `docker-compose` (2.x, from the trixie suite: bookworm only
# has the Python 1.29, which rejects today's compose spec) downloaded with apt-get through a private
# sources list, and unpacked under QZ_SERVICES_HOME (the system's apt sources are not touched).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

for p in /usr/libexec/docker/cli-plugins/docker-compose /usr/local/lib/docker/cli-plugins/docker-compose \
         "$HOME/.docker/cli-plugins/docker-compose"; do
  if [ -x "$p" ] && "$p" version 2>/dev/null | grep -q "version v\?2"; then echo "$p"; exit 0; fi
done
dest="$QZ_SERVICES_HOME/compose"
bin="$dest/usr/libexec/docker/cli-plugins/docker-compose"
if [ -x "$bin" ] && "$bin" version >/dev/null 2>&1; then echo "$bin"; exit 0; fi

echo "[compose] fetching Debian's docker-compose 2.x package (trixie)" >&2
apt_dir=$(mktemp -d)
trap 'rm -rf "$apt_dir"' EXIT
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
# the mirror of the system's apt sources, with the trixie suite (no registry host written here)
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $("$here/debian-mirror.sh") trixie main" \
  > "$apt_dir/sources.list"
opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o "Dir::Etc::sourceparts=-"
      -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root")
apt-get "${opts[@]}" -q update >&2
(cd "$apt_dir" && apt-get "${opts[@]}" -q download docker-compose >&2)
mkdir -p "$dest"
dpkg-deb -x "$apt_dir"/docker-compose_*.deb "$dest"
"$bin" version >&2
echo "$bin"
