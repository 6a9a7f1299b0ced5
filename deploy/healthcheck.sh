#!/bin/bash
# Container health check of the cache bridge: GET /healthz on its operators' HTTP server.
# The slim image has no curl, so this speaks HTTP/1.0 over bash's /dev/tcp.
# The address comes from BRIDGE_OPS_LISTEN as the bridge reads it (default 127.0.0.1:3002),
# with a wildcard address checked on the loopback.
# Exit 0: healthy; 1: no answer or not 200.
set -uo pipefail

listen=${BRIDGE_OPS_LISTEN:-127.0.0.1:3002}
port=${listen##*:}
host=${listen%:*}
case $host in
  0.0.0.0 | '') host=127.0.0.1 ;;
  :: | '[::]') host=::1 ;;
esac
host=${host#[}
host=${host%]}

exec 3<>"/dev/tcp/$host/$port" || exit 1
printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host" >&3
IFS= read -r -t 4 status_line <&3 || exit 1
[[ $status_line =~ ^HTTP/1\.[01]\ 200 ]] || { echo "healthz: ${status_line%$'\r'}" >&2; exit 1; }
