/*
 * auth.h - authenticators: local accounts (crypt(3) yescrypt) and LDAP.
 *
 * libldap lives only in auth_ldap.c, libcrypt only in auth_local.c.
 * Each LDAP call opens its own connection, so the functions are
 * thread-safe and a dead directory costs one timeout, not a wedged hub.
 */
#ifndef SWARMHUB_AUTH_H
#define SWARMHUB_AUTH_H

#include <stddef.h>
#include "../common/common.h"

/* ---- local ----------------------------------------------------------- */
/* Returns a heap "$y$..." yescrypt hash of password, or NULL with *e. */
char *auth_local_hash(const char *password, struct err *e);
/* 1 if password matches hash, 0 otherwise (also for a NULL/bad hash). */
int auth_local_verify(const char *password, const char *hash);

/* ---- LDAP ------------------------------------------------------------ */
struct ldap_cfg {
	const char *uri;		/* ldap://host:389 or ldaps://host:636 */
	/* One or more templates separated by ';' with {username}; the first
	 * that binds wins. NULL/"": search-then-bind with search_user. */
	const char *bind_dn_templates;
	int starttls;			/* StartTLS on ldap:// */
	const char *ca_file;		/* CA for ldaps/StartTLS, NULL: system */
	const char *search_base;	/* where users are searched */
	const char *search_filter;	/* default "(uid={username})" */
	const char *search_user;	/* service account DN, NULL: anonymous */
	const char *search_password;
	const char *group_base;		/* group search base; NULL: memberOf only */
	const char *allowed_groups;	/* comma list of cn or DN; NULL: all */
	const char *admin_groups;	/* comma list of cn or DN; NULL: none */
	long timeout_s;			/* network and operation timeout */
	const char *uid_attribute;	/* default uidNumber */
	const char *gid_attribute;	/* default gidNumber */
	/* Levels of nested groups resolved (0: none, at most
	 * AUTH_LDAP_NESTED_MAX): one search each under group_base (else
	 * search_base) for groups whose member is a group found so far. */
	long nested_depth;
	/* Search mode only: the hub's name for the user is this attribute of
	 * the entry found (sAMAccountName), not what was typed (a UPN). */
	const char *username_attribute;
};
#define AUTH_LDAP_NESTED_MAX 10
#define AUTH_LDAP_GROUPS_MAX 1000	/* groups kept per user, at most */

struct auth_user {
	char name[USER_NAME_MAX + 1];	/* normalized username */
	char **groups;			/* group cn's, NULL-terminated */
	size_t ngroups;
	int admin;	/* 1/0 per admin_groups; -1 when none are configured */
	long uid, gid;	/* uid_attribute / gid_attribute; 0: none (or not a
			 * number, or 0: never root) */
};

struct auth_ldap;

/* Validates the settings (no connection yet); ERR_INVALID naming one. */
int auth_ldap_new(const struct ldap_cfg *cfg, struct auth_ldap **out,
		  struct err *e);
void auth_ldap_free(struct auth_ldap *a);

/*
 * Checks username and password against the directory and fills *out.
 * out->name is the normalized username, or with username_attribute the
 * entry's value of it (normalized too). A login costs at most: the service
 * bind, the user search, the user's bind, the read of its memberOf, the
 * group search (group_base) and nested_depth searches for nested groups.
 * The username is normalized (trimmed, lowercased, validated) first; every
 * value placed in a DN (RFC 4514) or a filter (RFC 4515) is escaped; an
 * empty password is refused before any bind. Errors:
 *   ERR_AUTH         invalid username or password
 *   ERR_FORBIDDEN    not a member of LDAP_ALLOWED_GROUPS (message says so)
 *   ERR_UNAVAILABLE  the directory cannot be reached or TLS failed
 *   ERR_INVALID      the username is malformed
 */
int auth_ldap_login(struct auth_ldap *a, const char *username,
		    const char *password, struct auth_user *out,
		    struct err *e);
/*
 * Re-reads an existing user's groups without their password (search user,
 * or anonymous): same result shape and errors as auth_ldap_login, plus
 * ERR_NOTFOUND when the user no longer exists in the directory.
 */
int auth_ldap_lookup(struct auth_ldap *a, const char *username,
		     struct auth_user *out, struct err *e);
void auth_user_release(struct auth_user *u);

/* RFC 4515 filter-value and RFC 4514 DN-value escaping (heap strings). */
char *auth_ldap_escape_filter(const char *s);
char *auth_ldap_escape_dn(const char *s);

#endif
