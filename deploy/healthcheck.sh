#!/bin/bash
# Container health check of the cache bridge: GET /healthz on its own HTTP server.
# The slim image has no curl, so this speaks HTTP/1.0 over bash's /dev/tcp.
# The port comes from SOKETI_WEBHOOK_URL as the bridge reads it (default 3001);
# BRIDGE_HTTP_BIND picks the address, with a wildcard bind checked on the loopback.
# Exit 0: healthy; 1: no answer or not 200.
set -uo pipefail

url=${SOKETI_WEBHOOK_URL:-http://127.0.0.1:3001/soketi/webhook}
scheme=${url%%://*}
authority=${url#*://}
authority=${authority%%/*}
authority=${authority##*@}
if [[ $authority =~ :([0-9]+)$ ]]; then
  port=${BASH_REMATCH[1]}
elif [[ $scheme == https ]]; then
  port=443
else
  port=80
fi

host=${BRIDGE_HTTP_BIND:-127.0.0.1}
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
