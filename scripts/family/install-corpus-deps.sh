#!/usr/bin/env bash
# Installs the Debian packages whose text makes up the famq-tiny training corpus
# (see docs/FAMILY_DATA.md). Idempotent; run as root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" != 0 ]; then
  echo "install-corpus-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi
CORPUS_PKGS=(bible-kjv-text dict-gcide wordnet-base dict-jargon dict-foldoc fortunes fortunes-min)
missing=()
for p in "${CORPUS_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "[install-corpus-deps] all corpus packages already installed" >&2
  exit 0
fi
apt-get update || echo "[install-corpus-deps] apt-get update reported errors; trying the install with the lists it has" >&2
apt-get install -y --no-install-recommends "${missing[@]}"
