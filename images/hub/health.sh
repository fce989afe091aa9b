#!/bin/bash
# swarmhub-health - exit 0 when GET /hub/health answers 200 (HEALTHCHECK).
# Port from SWARMHUB_LISTEN (default 0.0.0.0:8000); bash /dev/tcp, no curl.
listen=${SWARMHUB_LISTEN:-0.0.0.0:8000}
port=${listen##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /hub/health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
read -r -t 4 status <&3 || exit 1
case $status in
"HTTP/1."[01]" 200 "*) exit 0 ;;
esac
echo "unhealthy: $status" >&2
exit 1
