#!/usr/bin/env bash
# Checks packaging/rev23-webhooks.service with `systemd-analyze verify`. verify insists that
# ExecStart's binary exists, so it checks a copy whose ExecStart names BIN (a built
# rev23-webhooks) instead of /usr/bin/rev23-webhooks. Any complaint about the unit fails, not
# only errors: verify reports unknown keys as warnings and still exits 0.
# Usage: packaging/verify-unit.sh target/debug/rev23-webhooks
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 1 ] || { echo "usage: $0 PATH-TO-rev23-webhooks" >&2; exit 2; }
bin=$(realpath "$1")
[ -x "$bin" ] || { echo "$bin is not an executable" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
unit="$dir/rev23-webhooks.service"
sed "s#^ExecStart=/usr/bin/rev23-webhooks #ExecStart=$bin #" packaging/rev23-webhooks.service >"$unit"
grep -q "^ExecStart=$bin serve " "$unit" || { echo "ExecStart=/usr/bin/rev23-webhooks serve ... not found in the unit" >&2; exit 1; }
if ! out=$(systemd-analyze verify "$unit" 2>&1); then
    echo "$out" >&2
    exit 1
fi
if grep -F "rev23-webhooks" <<<"$out" >&2; then
    echo "systemd-analyze verify complained about the unit (above)" >&2
    exit 1
fi
echo "systemd-analyze verify: packaging/rev23-webhooks.service is clean"
