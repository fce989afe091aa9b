#!/bin/bash
# slapd.sh - a private OpenLDAP slapd for the LDAP integration tests.
#
#   tests/services/slapd.sh start DIR   create (first time) or restart DIR's slapd
#   tests/services/slapd.sh stop DIR    stop it (idempotent)
#
# Everything lives under DIR: cn=config in DIR/slapd.d, the mdb database in
# DIR/db, a self-signed certificate (SAN IP:127.0.0.1, DNS:localhost) in
# DIR/certs, the ports in DIR/ports. Ports are chosen at the first start and
# kept; a restart keeps the data. Listens on ldap://127.0.0.1:P/ (StartTLS)
# and ldaps://127.0.0.1:P2/. Runs as root (see docs INFRA.md section 2).
# The people and groups come from images/ldap/seed.ldif (passwords there).
# stdout carries only the SWARMHUB_TEST_LDAP_* lines; progress goes to stderr.
set -eu

SUFFIX="dc=example,dc=com"
ROOTDN="cn=admin,$SUFFIX"
ROOTPW="adminpw"
# the test people and groups, shared with the swarmhub/test-ldap image
SEED=$(cd "$(dirname "$0")/../../images/ldap" && pwd)/seed.ldif
# the AD attributes of the AD-shaped people in it (sAMAccountName, ...)
AD_SCHEMA=$(dirname "$SEED")/ad-schema.ldif

log() { echo "slapd.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { die "usage: $0 start|stop DIR"; }

running() {
	local pid
	[ -f "$D/slapd.pid" ] || return 1
	pid=$(cat "$D/slapd.pid" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

do_stop() {
	local pid
	if running; then
		pid=$(cat "$D/slapd.pid")
		log "stopping slapd pid $pid"
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "slapd pid $pid did not exit; sending KILL"
			kill -9 "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$D/slapd.pid"
}

make_cert() {
	[ -s "$D/certs/cert.pem" ] && [ -s "$D/certs/key.pem" ] && return 0
	log "creating self-signed certificate"
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=localhost" \
	    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	    -keyout "$D/certs/key.pem" -out "$D/certs/cert.pem" >/dev/null 2>&1 ||
	    die "openssl req failed"
	chmod 644 "$D/certs/cert.pem"
	chmod 600 "$D/certs/key.pem"
}

make_config() {
	local hash
	[ -f "$D/slapd.d/cn=config.ldif" ] && return 0
	log "creating cn=config in $D/slapd.d"
	rm -rf "$D/slapd.d" "$D/db"
	mkdir -p "$D/slapd.d" "$D/db"
	hash=$(slappasswd -s "$ROOTPW")
	cat > "$D/config.ldif" <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $D/slapd.pid
olcArgsFile: $D/slapd.args
olcLogLevel: none
olcTLSCertificateFile: $D/certs/cert.pem
olcTLSCertificateKeyFile: $D/certs/key.pem

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: refint

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif
include: file:///etc/ldap/schema/cosine.ldif
include: file:///etc/ldap/schema/nis.ldif
include: file:///etc/ldap/schema/inetorgperson.ldif
include: file://$AD_SCHEMA

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $D/db
olcDbMaxSize: 104857600
olcSuffix: $SUFFIX
olcRootDN: $ROOTDN
olcRootPW: $hash
olcDbIndex: objectClass eq
olcDbIndex: uid,cn,memberUid eq
olcDbIndex: member eq
olcDbIndex: sAMAccountName,userPrincipalName eq
olcAccess: {0}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {1}to * by * read

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {1}refint
olcRefintAttribute: memberof
olcRefintAttribute: member
EOF
	slapadd -n 0 -F "$D/slapd.d" -l "$D/config.ldif" >&2 ||
	    die "slapadd of cn=config failed"
}

free_port() {	# prints a random port nobody listens on
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
			echo "$p"
			return 0
		fi
	done
}

launch() {	# P P2: 0 when slapd is up and listening
	slapd -F "$D/slapd.d" \
	    -h "ldap://127.0.0.1:$1/ ldaps://127.0.0.1:$2/" 2>"$D/slapd.log" ||
	    return 1
	for _ in $(seq 1 200); do
		if ldapsearch -x -H "ldap://127.0.0.1:$1" -s base -b "" \
		    namingContexts >/dev/null 2>&1; then
			return 0
		fi
		running || return 1
		sleep 0.05
	done
	return 1
}

do_start() {
	local P P2 tries
	mkdir -p "$D/certs"
	do_stop
	make_cert
	make_config
	if [ -s "$D/ports" ]; then
		read -r P P2 < "$D/ports"
		log "restarting on ports $P $P2"
		launch "$P" "$P2" || die "slapd failed to start on $P/$P2: $(cat "$D/slapd.log")"
	else
		tries=0
		while :; do
			P=$(free_port)
			P2=$(free_port)
			[ "$P" != "$P2" ] || continue
			log "starting on ports $P $P2"
			if launch "$P" "$P2"; then
				echo "$P $P2" > "$D/ports"
				break
			fi
			do_stop
			tries=$((tries + 1))
			[ "$tries" -lt 10 ] || die "slapd failed to start: $(cat "$D/slapd.log")"
		done
	fi
	if [ ! -f "$D/loaded" ]; then
		log "loading test directory ($SEED)"
		ldapadd -x -H "ldap://127.0.0.1:$P" -D "$ROOTDN" -w "$ROOTPW" \
		    -f "$SEED" >/dev/null || die "ldapadd failed"
		touch "$D/loaded"
	fi
	log "ready"
	echo "SWARMHUB_TEST_LDAP_URI=ldap://127.0.0.1:$P"
	echo "SWARMHUB_TEST_LDAPS_URI=ldaps://127.0.0.1:$P2"
	echo "SWARMHUB_TEST_LDAP_CA=$D/certs/cert.pem"
}

[ $# -eq 2 ] || usage
command -v slapd >/dev/null || die "slapd not found (apt-get install slapd ldap-utils)"
case "$2" in
/*) D=$2 ;;
*) D=$(pwd)/$2 ;;
esac
case "$1" in
start) do_start ;;
stop) [ -d "$D" ] && do_stop; exit 0 ;;
*) usage ;;
esac
