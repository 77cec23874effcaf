#!/usr/bin/env bash
# Installs acpx (pinned) into PREFIX, idempotently:
#   PREFIX/node_modules/.bin/acpx        acpx@$ACPX_VERSION
# Skipped when the right version is already there. acpx 0.19.1 declares node >=22.13 but
# runs on Node 20 (facts/claude-code.md §3); npm only warns (EBADENGINE).
# Usage: scripts/install-acpx.sh PREFIX        e.g. scripts/install-acpx.sh .tools/acpx
# Tests find it at .tools/acpx/node_modules/.bin/acpx (override with KIMI_ACP_ACPX).
set -euo pipefail

ACPX_VERSION=${ACPX_VERSION:-0.19.1}

log() { printf '[install-acpx] %s\n' "$*"; }
die() { printf '[install-acpx] error: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 PREFIX"
command -v npm >/dev/null || die "npm not found (install Node.js >= 20 and npm first)"
command -v node >/dev/null || die "node not found (install Node.js >= 20 first)"

mkdir -p "$1"
PREFIX=$(cd "$1" && pwd)
BIN=$PREFIX/node_modules/.bin/acpx
PKG=$PREFIX/node_modules/acpx/package.json

have=""
[[ -f $PKG ]] && have=$(node -p "require('$PKG').version" 2>/dev/null) || true
if [[ $have == "$ACPX_VERSION" && -x $BIN ]]; then
  log "acpx $have already in $PREFIX"
else
  got=$(npm view "acpx@$ACPX_VERSION" version 2>/dev/null) || die "npm cannot resolve acpx@$ACPX_VERSION (registry unreachable?)"
  [[ $got == "$ACPX_VERSION" ]] || die "npm resolved acpx@$ACPX_VERSION to '$got'"
  log "installing acpx@$ACPX_VERSION into $PREFIX"
  start=$SECONDS
  npm install --prefix "$PREFIX" --no-fund --no-audit --loglevel=error "acpx@$ACPX_VERSION"
  [[ -x $BIN ]] || die "npm finished but $BIN is missing"
  log "acpx installed in $((SECONDS - start)) s"
fi

log "acpx: $BIN ($("$BIN" --version 2>/dev/null || echo '?'))"
