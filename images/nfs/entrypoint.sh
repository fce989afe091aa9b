#!/bin/sh
# nfs-entrypoint (TEST ONLY): a private rpcbind (ganesha insists on
# registering NFSv3), then ganesha in the foreground, logging to stderr.
set -eu
mkdir -p /run/rpcbind /var/lib/nfs/ganesha
rpcbind -w
exec ganesha.nfsd -F -L /dev/stderr -f /etc/ganesha/ganesha.conf -N NIV_EVENT
