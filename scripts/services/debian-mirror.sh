#!/usr/bin/env bash
# Prints the Debian mirror of this machine's apt sources (deb822 `URIs:` or the one-line form), so
# no script of the project names a package registry's host itself.
set -euo pipefail
m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$m" ] || m=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
                   /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
[ -n "$m" ] || { echo "no Debian mirror in /etc/apt/sources*" >&2; exit 1; }
echo "$m"
