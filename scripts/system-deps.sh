#!/usr/bin/env bash
# Debian packages the test suite uses: Chromium (the HTML report test) and a one-node
# SLURM with MariaDB accounting (the cluster test). Idempotent; does nothing without
# root and apt-get, and the tests that need these packages then skip, saying why (and
# fail under CI=true: there a missing test dependency is a broken set-up).
set -euo pipefail
packages=(chromium munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "system-deps: not root or no apt-get; browser and SLURM tests will skip (fail under CI=true)" >&2
  exit 0
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "system-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
