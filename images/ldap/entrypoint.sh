#!/bin/bash
# ldap-entrypoint (TEST ONLY) - cn=config + test people/groups, slapd in the
# foreground on ldap:///. Data as tests/services/slapd.sh.
set -euo pipefail
SUFFIX="dc=example,dc=com"; ROOTDN="cn=admin,$SUFFIX"; ROOTPW=adminpw
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
person() {
cat <<EOP
dn: uid=$1,ou=People,$SUFFIX
objectClass: inetOrgPerson
objectClass: posixAccount
uid: $1
cn: $1
sn: $1
mail: $1@example.com
uidNumber: $2
gidNumber: 100
homeDirectory: /home/$1
loginShell: /bin/bash
userPassword: $(slappasswd -s "$3")

EOP
}
slapd -F $D/slapd.d -h "ldap:/// ldapi:///" -d 0 &
pid=$!
trap 'kill -TERM $pid' TERM INT
for _ in $(seq 1 100); do
	ldapsearch -x -H ldap://127.0.0.1 -s base -b "" namingContexts >/dev/null 2>&1 && break
	sleep 0.1
done
if [ "${fresh:-0}" = 1 ]; then
	P="ou=People,$SUFFIX"
	{
	printf 'dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n' "$SUFFIX"
	printf 'dn: ou=People,%s\nobjectClass: organizationalUnit\nou: People\n\n' "$SUFFIX"
	printf 'dn: ou=Groups,%s\nobjectClass: organizationalUnit\nou: Groups\n\n' "$SUFFIX"
	printf 'dn: cn=reader,%s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: %s\n\n' "$SUFFIX" "$(slappasswd -s readerpw)"
	person alice 1001 alicepw; person bob 1002 bobpw; person carol 1003 carolpw
	# grace: no uidNumber/gidNumber (HOME_UID=ldap gives her a local uid)
	printf 'dn: uid=grace,%s\nobjectClass: inetOrgPerson\nuid: grace\ncn: grace\nsn: grace\nmail: grace@example.com\nuserPassword: %s\n\n' "$P" "$(slappasswd -s gracepw)"
	printf 'dn: cn=datascience,ou=Groups,%s\nobjectClass: groupOfNames\ncn: datascience\nmember: uid=alice,%s\nmember: uid=bob,%s\n\n' "$SUFFIX" "$P" "$P"
	printf 'dn: cn=hub-admins,ou=Groups,%s\nobjectClass: groupOfNames\ncn: hub-admins\nmember: uid=carol,%s\n\n' "$SUFFIX" "$P"
	} >$D/data.ldif
	ldapadd -x -H ldap://127.0.0.1 -D "$ROOTDN" -w "$ROOTPW" -f $D/data.ldif >/dev/null
	echo "ldap-entrypoint: test directory loaded (alice, bob, carol, grace)" >&2
fi
echo "ldap-entrypoint: ready" >&2
wait $pid
