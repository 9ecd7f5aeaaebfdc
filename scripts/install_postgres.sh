#!/usr/bin/env bash
# The PostgreSQL stack test (tests/test_postgres_stack.py) starts its own throwaway server with Debian's
# initdb/pg_ctl. Installs the package when they are missing: with apt-get as root, through sudo where it
# works without a password, otherwise it prints the one command to run. Nothing is started or enabled:
# the package's own cluster is not used. `make test` and `.ci/run` both call it.
set -euo pipefail
if command -v initdb >/dev/null || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    exit 0
fi
# shellcheck source=apt_privilege.sh
source "$(dirname "$0")/apt_privilege.sh"
apt_privilege install_postgres.sh "the stack test needs PostgreSQL" \
    "install PostgreSQL's server binaries (initdb, pg_ctl) and psql" postgresql
echo "installing postgresql (the stack test's database server)"
$sudo apt-get update -qq
# policy-rc.d 101: the package must not start its own cluster service (no init system in containers)
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql
