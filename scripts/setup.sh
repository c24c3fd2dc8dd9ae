#!/usr/bin/env bash
# Prepare a checkout of Eddy for development: Node >= 20, npm dependencies (with the deno and
# esbuild binaries their install scripts fetch), the console pages (scripts/build-pages.ts), nats-server 2.9 (Debian package
# `nats-server`) and chromium (Debian package `chromium`, for the dashboard's browser test). Idempotent: safe to run again; it says what it does and skips what is done.
# Usage: scripts/setup.sh   (from any directory; also `npm run setup`)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*"; }
fail() { printf 'setup: %s\n' "$*" >&2; exit 1; }

# 1. Node
command -v node >/dev/null || fail "Node.js is not installed. Eddy needs Node >= 20 (https://nodejs.org, or your package manager)."
node_major=$(node -p 'process.versions.node.split(".")[0]')
if (( node_major < 20 )); then
  fail "Node $(node --version) is too old: Eddy needs Node >= 20."
fi
say "node $(node --version) ok"

# 2. npm dependencies: install when missing or when package-lock.json changed since.
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing npm dependencies: npm ci"
  npm ci
else
  say "node_modules up to date (skipping npm ci)"
fi

# deno and esbuild fetch their binaries in postinstall scripts (approved in package.json's
# allowScripts); if those were skipped, run them now.
if ! node_modules/.bin/deno --version >/dev/null 2>&1 || ! node_modules/.bin/esbuild --version >/dev/null 2>&1; then
  say "deno or esbuild binary missing: npm rebuild deno esbuild"
  npm rebuild deno esbuild
fi
say "deno $(node_modules/.bin/deno --version | head -n1 | cut -d' ' -f2), esbuild $(node_modules/.bin/esbuild --version) ok"

# The console pages (the coffee-shop dashboard, the overview): browser code bundled by esbuild into
# generated modules (gitignored) that the server imports. npm ci builds them too (the `prepare`
# script); build them again here, so edited browser code is never served stale. Well under a second.
say "console pages: $(node_modules/.bin/tsx scripts/build-pages.ts)"

# 3. nats-server. Debian installs it in /usr/sbin, which is not on every user's PATH.
nats_server=$(command -v nats-server || true)
[[ -z "$nats_server" && -x /usr/sbin/nats-server ]] && nats_server=/usr/sbin/nats-server
if [[ -z "$nats_server" ]]; then
  if (( EUID == 0 )); then
    command -v apt-get >/dev/null || fail "nats-server is missing and apt-get is not available: install nats-server 2.9 with your package manager."
    say "installing nats-server: apt-get update && apt-get install -y nats-server"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server
    nats_server=$(command -v nats-server || echo /usr/sbin/nats-server)
  else
    fail "nats-server is missing. Install it with:
    sudo apt-get install -y nats-server
then run scripts/setup.sh again."
  fi
fi
say "$("$nats_server" --version) ok ($nats_server)"

# 4. chromium, which the dashboard's browser test drives (tests/dashboard.test.ts).
if [[ ! -x /usr/bin/chromium ]]; then
  if (( EUID == 0 )); then
    command -v apt-get >/dev/null || fail "chromium is missing and apt-get is not available: install chromium at /usr/bin/chromium with your package manager."
    say "installing chromium: apt-get update && apt-get install -y chromium"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
  else
    fail "chromium is missing (the dashboard test needs /usr/bin/chromium). Install it with:
    sudo apt-get install -y chromium
then run scripts/setup.sh again."
  fi
fi
say "$(/usr/bin/chromium --version 2>/dev/null | head -n1) ok (/usr/bin/chromium)"
say "done"
