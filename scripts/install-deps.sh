#!/usr/bin/env bash
# Installs what building and testing pg_connbudget needs on Debian 12 (run as root).
# postgresql-15 and postgresql-server-dev-15 are installed together so that the server
# and the headers the module is built against are the same minor version.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  build-essential ca-certificates libgtest-dev libipc-run-perl libkrb5-dev \
  postgresql-15 postgresql-server-dev-15 postgresql-client-15 zstd \
  python3-asyncpg python3-matplotlib pgbouncer clang libclang-rt-14-dev >/dev/null
