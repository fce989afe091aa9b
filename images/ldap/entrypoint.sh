#!/bin/bash
# ldap-entrypoint (TEST ONLY) - cn=config + test people/groups, slapd in the
# foreground on ldap:///. The people and groups are seed.ldif (the image's copy
# of images/ldap/seed.ldif, which tests/services/slapd.sh loads too).
set -euo pipefail
SUFFIX="dc=example,dc=com"; ROOTDN="cn=admin,$SUFFIX"; ROOTPW=adminpw
SEED=/usr/local/share/swarmhub-ldap/seed.ldif
D=/var/lib/swarmhub-ldap
mkdir -p $D/slapd.d $D/db
if [ ! -f $D/slapd.d/cn=config.ldif ]; then
cat >$D/config.ldif <<EOC
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $D/slapd.pid
olcLogLevel: none

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
include: file:///usr/local/share/swarmhub-ldap/ad-schema.ldif

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
olcRootPW: $(slappasswd -s $ROOTPW)
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
EOC
slapadd -n 0 -F $D/slapd.d -l $D/config.ldif
fresh=1
fi
slapd -F $D/slapd.d -h "ldap:/// ldapi:///" -d 0 &
pid=$!
trap 'kill -TERM $pid' TERM INT
for _ in $(seq 1 100); do
	ldapsearch -x -H ldap://127.0.0.1 -s base -b "" namingContexts >/dev/null 2>&1 && break
	sleep 0.1
done
if [ "${fresh:-0}" = 1 ]; then
	ldapadd -x -H ldap://127.0.0.1 -D "$ROOTDN" -w "$ROOTPW" -f "$SEED" >/dev/null
	echo "ldap-entrypoint: test directory loaded ($SEED)" >&2
fi
echo "ldap-entrypoint: ready" >&2
wait $pid
