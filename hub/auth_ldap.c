/*
 * auth_ldap.c - log users in against an LDAP directory (libldap).
 *
 * Every login or lookup opens its own connection (protocol 3, network and
 * operation timeouts, no referrals, StartTLS or ldaps:// with a private
 * TLS context) and unbinds it at the end, so a dead directory costs one
 * timeout and calls never share state. Two ways to find the user's DN:
 * bind DN templates ("uid={username},ou=People,...", first that binds
 * wins), or search-then-bind (search as the service account or anonymously,
 * exactly one entry, then bind as it; with username_attribute the hub's
 * name for the user is that attribute of the entry, so "dscully" and
 * "dscully@corp.example.com" are one user). Groups are the union of the
 * entry's memberOf and, with group_base, a search for groupOfNames,
 * groupOfUniqueNames and posixGroup entries naming the user; with
 * nested_depth, then the groups that have one of those as a member, level
 * by level: one search per level whatever the number of groups (a filter
 * OR-ing the level's DNs), a group already known is never searched again
 * (so a loop A in B in A ends), and no more than AUTH_LDAP_GROUPS_MAX
 * groups are kept. This works on any directory (OpenLDAP has no AD
 * LDAP_MATCHING_RULE_IN_CHAIN). The same read
 * of the entry gives its uid and gid numbers (uid_attribute, gid_attribute;
 * a missing, non-numeric or 0 value is 0: none).
 * Ownership: struct auth_ldap owns copies of all its settings; auth_user
 * owns its group strings (auth_user_release). No password is ever logged
 * or put in a message.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <ldap.h>

#include "auth.h"

#define DEFAULT_FILTER "(uid={username})"
#define DEFAULT_TIMEOUT_S 10

/* A group list being built: normalized DN (for matching) and cn. */
struct groups {
	char **dns;
	char **cns;
	size_t n;
	size_t cap;
	size_t dropped;		/* beyond AUTH_LDAP_GROUPS_MAX */
};

struct auth_ldap {
	char *uri;
	char **templates;	/* split on ';' */
	size_t ntemplates;
	int starttls;
	char *ca_file;
	char *search_base;
	char *search_filter;
	char *search_user;
	char *search_password;
	char *group_base;
	char **allowed;		/* cn, or normalized DN */
	size_t nallowed;
	char **admins;
	size_t nadmins;
	long timeout_s;
	char *uid_attr;		/* uidNumber */
	char *gid_attr;		/* gidNumber */
	long nested_depth;	/* 0: no nested groups */
	char *user_attr;	/* username_attribute, NULL: as typed */
};

/* ---- escaping -------------------------------------------------------- */

char *
auth_ldap_escape_filter(const char *s)
{
	struct strbuf sb;

	sb_init(&sb);
	for (; *s; s++) {
		switch (*s) {
		case '*':  sb_adds(&sb, "\\2a"); break;
		case '(':  sb_adds(&sb, "\\28"); break;
		case ')':  sb_adds(&sb, "\\29"); break;
		case '\\': sb_adds(&sb, "\\5c"); break;
		default:   sb_addc(&sb, *s); break;
		}
	}
	if (sb.buf == NULL)
		return xstrdup("");
	return sb_detach(&sb, NULL);
}

char *
auth_ldap_escape_dn(const char *s)
{
	struct strbuf sb;
	size_t n = strlen(s);

	sb_init(&sb);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (strchr(",+\"\\<>;=", c) != NULL ||
		    (i == 0 && (c == ' ' || c == '#')) ||
		    (i == n - 1 && c == ' '))
			sb_addc(&sb, '\\');
		sb_addc(&sb, c);
	}
	if (sb.buf == NULL)
		return xstrdup("");
	return sb_detach(&sb, NULL);
}

/* Replaces every {username} in tmpl by value; heap string. */
static char *
expand(const char *tmpl, const char *value)
{
	static const char key[] = "{username}";
	struct strbuf sb;
	const char *p;

	sb_init(&sb);
	while ((p = strstr(tmpl, key)) != NULL) {
		sb_add(&sb, tmpl, (size_t)(p - tmpl));
		sb_adds(&sb, value);
		tmpl = p + sizeof(key) - 1;
	}
	sb_adds(&sb, tmpl);
	return sb_detach(&sb, NULL);
}

/* ---- DNs --------------------------------------------------------------- */

/* Canonical lowercase form of a DN for comparison; NULL if unparsable. */
static char *
dn_normalize(const char *dn)
{
	LDAPDN ldn = NULL;
	char *str = NULL, *out;

	if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAP) != LDAP_SUCCESS)
		return NULL;
	if (ldn == NULL || ldap_dn2str(ldn, &str, LDAP_DN_FORMAT_LDAPV3) !=
	    LDAP_SUCCESS || str == NULL) {
		ldap_dnfree(ldn);
		return NULL;
	}
	out = xstrdup(str);
	ldap_memfree(str);
	ldap_dnfree(ldn);
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

/* The (unescaped) value of a DN's first RDN; heap string or NULL. */
static char *
dn_first_value(const char *dn)
{
	LDAPDN ldn = NULL;
	char *out = NULL;

	if (ldap_str2dn(dn, &ldn, LDAP_DN_FORMAT_LDAP) != LDAP_SUCCESS)
		return NULL;
	if (ldn && ldn[0] && ldn[0][0] && ldn[0][0]->la_value.bv_len > 0)
		out = xstrndup(ldn[0][0]->la_value.bv_val,
		    ldn[0][0]->la_value.bv_len);
	ldap_dnfree(ldn);
	return out;
}

/* 1 if comma piece cur continues the DN whose last piece is prev: both are
 * "type=value" and prev is not the final "dc=" of a DN followed by a new
 * DN. So "cn=a,ou=g,dc=x,dc=com,cn=b,ou=g,dc=x,dc=com" is two DNs. */
static int
continues_dn(const char *prev, const char *cur)
{
	if (!strchr(prev, '=') || !strchr(cur, '='))
		return 0;
	return !(strncasecmp(prev, "dc=", 3) == 0 &&
	    strncasecmp(cur, "dc=", 3) != 0);
}

/* Parses a list of groups, each a cn or a DN (DNs are normalized).
 * Entries are separated by ';' if there is one, else by ','; in a comma
 * list the pieces of a DN are put back together (continues_dn). */
static int
group_list(const char *s, const char *what, char ***out, size_t *n,
	   struct err *e)
{
	char **v;
	size_t w = 0;

	*out = NULL;
	*n = 0;
	if (s == NULL || *s == '\0')
		return 0;
	v = str_split(s, strchr(s, ';') ? ';' : ',', n);
	for (size_t r = 0; r < *n; r++) {
		const char *prev = w > 0 ? strrchr(v[w - 1], ',') : NULL;

		prev = prev ? prev + 1 : w > 0 ? v[w - 1] : NULL;
		if (prev && !strchr(s, ';') && continues_dn(prev, v[r])) {
			char *j = xasprintf("%s,%s", v[w - 1], v[r]);

			free(v[w - 1]);
			v[w - 1] = j;
			free(v[r]);
			v[r] = NULL;
			continue;
		}
		v[w++] = v[r];
	}
	v[w] = NULL;
	*n = w;
	for (size_t i = 0; i < *n; i++) {
		char *norm;

		if (!strchr(v[i], '='))
			continue;
		norm = dn_normalize(v[i]);
		if (norm == NULL) {
			err_set(e, ERR_INVALID, "%s: invalid DN '%s'", what,
			    v[i]);
			strv_free(v);
			*n = 0;
			return -1;
		}
		free(v[i]);
		v[i] = norm;
	}
	*out = v;
	return 0;
}

/* ---- lifecycle --------------------------------------------------------- */

static int
check_cfg(const struct ldap_cfg *cfg, struct err *e)
{
	if (cfg->uri == NULL || (strncmp(cfg->uri, "ldap://", 7) != 0 &&
	    strncmp(cfg->uri, "ldaps://", 8) != 0))
		return err_set(e, ERR_INVALID, "LDAP_URI must start with "
		    "ldap:// or ldaps://");
	if (cfg->starttls && strncmp(cfg->uri, "ldaps://", 8) == 0)
		return err_set(e, ERR_INVALID, "LDAP_STARTTLS needs an "
		    "ldap:// URI, not ldaps://");
	if (cfg->timeout_s < 0 || cfg->timeout_s > 3600)
		return err_set(e, ERR_INVALID, "LDAP timeout must be 0..3600 "
		    "seconds");
	if (cfg->bind_dn_templates && *cfg->bind_dn_templates) {
		if (strstr(cfg->bind_dn_templates, "{username}") == NULL)
			return err_set(e, ERR_INVALID, "LDAP_BIND_DN_TEMPLATE "
			    "must contain {username}");
	} else if (cfg->search_base == NULL || *cfg->search_base == '\0') {
		return err_set(e, ERR_INVALID, "LDAP_SEARCH_BASE is required "
		    "without LDAP_BIND_DN_TEMPLATE");
	}
	if (cfg->search_filter && *cfg->search_filter &&
	    strstr(cfg->search_filter, "{username}") == NULL)
		return err_set(e, ERR_INVALID, "LDAP_SEARCH_FILTER must "
		    "contain {username}");
	if (cfg->nested_depth < 0 || cfg->nested_depth > AUTH_LDAP_NESTED_MAX)
		return err_set(e, ERR_INVALID, "LDAP_NESTED_GROUPS_DEPTH must "
		    "be 0..%d", AUTH_LDAP_NESTED_MAX);
	if (cfg->nested_depth > 0 && !(cfg->group_base && *cfg->group_base) &&
	    !(cfg->search_base && *cfg->search_base))
		return err_set(e, ERR_INVALID, "LDAP_NESTED_GROUPS_DEPTH needs "
		    "LDAP_GROUP_BASE or LDAP_SEARCH_BASE (where groups are "
		    "searched)");
	if (cfg->username_attribute && *cfg->username_attribute &&
	    cfg->bind_dn_templates && *cfg->bind_dn_templates)
		return err_set(e, ERR_INVALID, "LDAP_USERNAME_ATTRIBUTE needs "
		    "search-then-bind (LDAP_SEARCH_BASE), not "
		    "LDAP_BIND_DN_TEMPLATE");
	if (cfg->username_attribute && *cfg->username_attribute &&
	    strspn(cfg->username_attribute, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") !=
	    strlen(cfg->username_attribute))
		return err_set(e, ERR_INVALID, "LDAP_USERNAME_ATTRIBUTE '%s' is "
		    "not an attribute name", cfg->username_attribute);
	return 0;
}

static char *
dup_or_null(const char *s)
{
	return s && *s ? xstrdup(s) : NULL;
}

int
auth_ldap_new(const struct ldap_cfg *cfg, struct auth_ldap **out,
	      struct err *e)
{
	struct auth_ldap *a;

	*out = NULL;
	if (check_cfg(cfg, e) < 0)
		return -1;
	a = xcalloc(1, sizeof(*a));
	a->uri = xstrdup(cfg->uri);
	if (cfg->bind_dn_templates && *cfg->bind_dn_templates)
		a->templates = str_split(cfg->bind_dn_templates, ';',
		    &a->ntemplates);
	a->starttls = cfg->starttls;
	a->ca_file = dup_or_null(cfg->ca_file);
	a->search_base = dup_or_null(cfg->search_base);
	a->search_filter = xstrdup(cfg->search_filter && *cfg->search_filter ?
	    cfg->search_filter : DEFAULT_FILTER);
	a->search_user = dup_or_null(cfg->search_user);
	a->search_password = cfg->search_password ?
	    xstrdup(cfg->search_password) : NULL;
	a->group_base = dup_or_null(cfg->group_base);
	a->timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : DEFAULT_TIMEOUT_S;
	a->uid_attr = xstrdup(cfg->uid_attribute && *cfg->uid_attribute ?
	    cfg->uid_attribute : "uidNumber");
	a->gid_attr = xstrdup(cfg->gid_attribute && *cfg->gid_attribute ?
	    cfg->gid_attribute : "gidNumber");
	a->nested_depth = cfg->nested_depth;
	a->user_attr = dup_or_null(cfg->username_attribute);
	if (group_list(cfg->allowed_groups, "LDAP_ALLOWED_GROUPS",
	    &a->allowed, &a->nallowed, e) < 0 ||
	    group_list(cfg->admin_groups, "LDAP_ADMIN_GROUPS", &a->admins,
	    &a->nadmins, e) < 0) {
		auth_ldap_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

void
auth_ldap_free(struct auth_ldap *a)
{
	if (a == NULL)
		return;
	free(a->uri);
	strv_free(a->templates);
	free(a->ca_file);
	free(a->search_base);
	free(a->search_filter);
	free(a->search_user);
	if (a->search_password) {
		memset(a->search_password, 0, strlen(a->search_password));
		free(a->search_password);
	}
	free(a->group_base);
	strv_free(a->allowed);
	strv_free(a->admins);
	free(a->uid_attr);
	free(a->gid_attr);
	free(a->user_attr);
	free(a);
}

void
auth_user_release(struct auth_user *u)
{
	if (u == NULL)
		return;
	strv_free(u->groups);
	u->groups = NULL;
	u->ngroups = 0;
}

/* ---- connection -------------------------------------------------------- */

static int
is_down(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR ||
	    rc == LDAP_TIMEOUT;
}

static int
uses_tls(const struct auth_ldap *a)
{
	return a->starttls || strncmp(a->uri, "ldaps://", 8) == 0;
}

/* Turns a libldap failure into *e; "what" names the operation. */
static int
ldap_fail(struct auth_ldap *a, LDAP *ld, int rc, const char *what,
	  struct err *e)
{
	char *diag = NULL;
	int code = is_down(rc) ? ERR_UNAVAILABLE : ERR_UPSTREAM;

	if (ld)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	log_event(LOG_WARN, "ldap.error", "uri=%s op=%s code=%d err=%s "
	    "diag=%s", a->uri, what, rc, ldap_err2string(rc),
	    diag ? diag : "");
	if (rc == LDAP_CONNECT_ERROR && uses_tls(a))
		err_set(e, code, "LDAP server %s: TLS handshake failed: %s "
		    "(check the CA file and the server certificate)", a->uri,
		    ldap_err2string(rc));
	else if (is_down(rc))
		err_set(e, code, "LDAP server %s unreachable: %s%s", a->uri,
		    ldap_err2string(rc), uses_tls(a) && diag && *diag ?
		    " (or the TLS handshake failed)" : "");
	else
		err_set(e, code, "LDAP %s on %s failed: %s", what, a->uri,
		    ldap_err2string(rc));
	ldap_memfree(diag);
	return -1;
}

static int
set_tls(struct auth_ldap *a, LDAP *ld)
{
	int demand = LDAP_OPT_X_TLS_DEMAND, zero = 0, rc;

	/* Without a CA file the global context is used: ldap.conf's
	 * TLS_CACERT or LDAPTLS_CACERT, certificates demanded by default. A
	 * handle context (NEWCTX) would not inherit those. */
	if (a->ca_file == NULL)
		return LDAP_OPT_SUCCESS;
	rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, a->ca_file);
	if (rc != LDAP_OPT_SUCCESS)
		return rc;
	rc = ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
	if (rc != LDAP_OPT_SUCCESS)
		return rc;
	return ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
}

/* Opens (lazily: libldap connects on the first operation) a handle. */
static int
conn_open(struct auth_ldap *a, LDAP **out, struct err *e)
{
	LDAP *ld = NULL;
	int v3 = LDAP_VERSION3, rc;
	struct timeval tv = { .tv_sec = a->timeout_s, .tv_usec = 0 };

	*out = NULL;
	rc = ldap_initialize(&ld, a->uri);
	if (rc != LDAP_SUCCESS)
		return err_set(e, ERR_INVALID, "LDAP URI '%s': %s", a->uri,
		    ldap_err2string(rc));
	if (ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3) ||
	    ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) ||
	    ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv) ||
	    ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF)) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		return err_set(e, ERR_INTERNAL, "LDAP: cannot set options "
		    "for '%s'", a->uri);
	}
	if (uses_tls(a) && set_tls(a, ld) != LDAP_OPT_SUCCESS) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		log_event(LOG_ERROR, "ldap.tls_failed", "uri=%s ca_file=%s",
		    a->uri, a->ca_file ? a->ca_file : "");
		return err_set(e, ERR_UNAVAILABLE, "LDAP server %s: cannot set "
		    "up TLS (CA file '%s')", a->uri,
		    a->ca_file ? a->ca_file : "system default");
	}
	if (a->starttls) {
		rc = ldap_start_tls_s(ld, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			ldap_fail(a, ld, rc, "starttls", e);
			ldap_unbind_ext_s(ld, NULL, NULL);
			return -1;
		}
	}
	*out = ld;
	return 0;
}

static int
simple_bind(LDAP *ld, const char *dn, const char *pw)
{
	struct berval cred;

	cred.bv_val = (char *)(uintptr_t)(pw ? pw : "");
	cred.bv_len = pw ? strlen(pw) : 0;
	return ldap_sasl_bind_s(ld, dn ? dn : "", LDAP_SASL_SIMPLE, &cred,
	    NULL, NULL, NULL);
}

/* Binds as the search user, or anonymously. */
static int
service_bind(struct auth_ldap *a, LDAP *ld, struct err *e)
{
	int rc;

	if (a->search_user == NULL)
		return 0;
	rc = simple_bind(ld, a->search_user, a->search_password);
	if (rc == LDAP_SUCCESS)
		return 0;
	if (is_down(rc))
		return ldap_fail(a, ld, rc, "bind", e);
	log_event(LOG_ERROR, "ldap.search_bind_failed", "uri=%s dn=%s err=%s",
	    a->uri, a->search_user, ldap_err2string(rc));
	return err_set(e, ERR_UPSTREAM, "LDAP bind as search user '%s' "
	    "failed: %s", a->search_user, ldap_err2string(rc));
}

/* ---- search ------------------------------------------------------------ */

/* The entry's user_attr, normalized as a username, into canon (size
 * USER_NAME_MAX + 1); ERR_UPSTREAM naming the attribute when it has none
 * or one that is no username. */
static int
entry_name(struct auth_ldap *a, LDAP *ld, LDAPMessage *entry,
	   const char *dn, char *canon, struct err *e)
{
	struct berval **vals = ldap_get_values_len(ld, entry, a->user_attr);
	char *v = NULL;
	int rc;

	if (vals && vals[0] && vals[0]->bv_len > 0 && vals[1] == NULL)
		v = xstrndup(vals[0]->bv_val, vals[0]->bv_len);
	ldap_value_free_len(vals);
	if (v == NULL || strlen(v) > USER_NAME_MAX)
		rc = err_set(e, ERR_UPSTREAM, "LDAP entry '%s' has no single "
		    "'%s' (LDAP_USERNAME_ATTRIBUTE) to name the user", dn,
		    a->user_attr);
	else if ((rc = user_name_normalize(v, canon, e)) < 0)
		err_set(e, ERR_UPSTREAM, "LDAP entry '%s': its '%s' "
		    "(LDAP_USERNAME_ATTRIBUTE) is not a valid username", dn,
		    a->user_attr);
	free(v);
	return rc;
}

/* Finds the one entry for name under search_base: 0 with *dn (heap) and,
 * with user_attr, the name it gives in canon (else a copy of name); -1
 * with ERR_NOTFOUND when there is none (or several), other codes. */
static int
find_user(struct auth_ldap *a, LDAP *ld, const char *name, char **dn,
	  char *canon, struct err *e)
{
	char *esc = auth_ldap_escape_filter(name);
	char *filter = expand(a->search_filter, esc);
	char *attrs[] = { a->user_attr ? a->user_attr :
			  (char *)(uintptr_t)LDAP_NO_ATTRS, NULL };
	struct timeval tv = { .tv_sec = a->timeout_s, .tv_usec = 0 };
	LDAPMessage *res = NULL, *entry;
	int rc, count = 0, ret = -1;

	*dn = NULL;
	rc = ldap_search_ext_s(ld, a->search_base, LDAP_SCOPE_SUBTREE, filter,
	    attrs, 0, NULL, NULL, &tv, 2, &res);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		ldap_fail(a, ld, rc, "search", e);
		goto out;
	}
	count = ldap_count_entries(ld, res);
	if (count != 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
		log_event(count > 1 ? LOG_WARN : LOG_INFO,
		    "ldap.user_not_found", "user=%s entries=%d", name, count);
		err_set(e, ERR_NOTFOUND, "user '%s' not found in the directory",
		    name);
		goto out;
	}
	entry = ldap_first_entry(ld, res);
	{
		char *d = ldap_get_dn(ld, entry);

		if (d == NULL) {
			err_set(e, ERR_UPSTREAM, "LDAP entry without a DN");
			goto out;
		}
		*dn = xstrdup(d);
		ldap_memfree(d);
	}
	snprintf(canon, USER_NAME_MAX + 1, "%s", name);
	if (a->user_attr && entry_name(a, ld, entry, *dn, canon, e) < 0) {
		free(*dn);
		*dn = NULL;
		goto out;
	}
	ret = 0;
out:
	ldap_msgfree(res);
	free(filter);
	free(esc);
	return ret;
}

static void
groups_add(struct groups *g, const char *dn)
{
	char *norm = dn_normalize(dn), *cn;

	if (norm == NULL)
		return;
	for (size_t i = 0; i < g->n; i++) {
		if (strcmp(g->dns[i], norm) == 0) {
			free(norm);
			return;
		}
	}
	cn = dn_first_value(dn);
	if (cn == NULL || g->n >= AUTH_LDAP_GROUPS_MAX) {
		if (cn)
			g->dropped++;
		free(norm);
		free(cn);
		return;
	}
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 8;
		g->dns = xrealloc(g->dns, g->cap * sizeof(*g->dns));
		g->cns = xrealloc(g->cns, g->cap * sizeof(*g->cns));
	}
	g->dns[g->n] = norm;
	g->cns[g->n] = cn;
	g->n++;
}

static void
groups_release(struct groups *g)
{
	for (size_t i = 0; i < g->n; i++) {
		free(g->dns[i]);
		free(g->cns[i]);
	}
	free(g->dns);
	free(g->cns);
	memset(g, 0, sizeof(*g));
}

/* A single positive number below 2^31 (uidNumber), or 0. */
static long
entry_id(LDAP *ld, LDAPMessage *entry, const char *attr)
{
	struct berval **vals = ldap_get_values_len(ld, entry, attr);
	char buf[16];
	long v = 0;

	if (vals && vals[0] && vals[0]->bv_len > 0 &&
	    vals[0]->bv_len < sizeof(buf)) {
		memcpy(buf, vals[0]->bv_val, vals[0]->bv_len);
		buf[vals[0]->bv_len] = '\0';
		if (strspn(buf, "0123456789") == vals[0]->bv_len)
			v = strtol(buf, NULL, 10);
		if (v < 0 || v > 2147483646L)
			v = 0;
	}
	ldap_value_free_len(vals);
	return v;
}

/* Reads the user entry's memberOf, uid and gid numbers. ERR_NOTFOUND if
 * the entry is gone. */
static int
read_member_of(struct auth_ldap *a, LDAP *ld, const char *dn,
	       struct groups *g, long ids[2], struct err *e)
{
	char *attrs[] = { (char *)(uintptr_t)"memberOf", a->uid_attr,
			  a->gid_attr, NULL };
	struct timeval tv = { .tv_sec = a->timeout_s, .tv_usec = 0 };
	LDAPMessage *res = NULL, *entry;
	struct berval **vals;
	int rc;

	rc = ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)",
	    attrs, 0, NULL, NULL, &tv, 1, &res);
	if (rc == LDAP_NO_SUCH_OBJECT || (rc == LDAP_SUCCESS &&
	    ldap_count_entries(ld, res) == 0)) {
		ldap_msgfree(res);
		return err_set(e, ERR_NOTFOUND, "LDAP entry '%s' not found",
		    dn);
	}
	if (rc != LDAP_SUCCESS) {
		ldap_msgfree(res);
		return ldap_fail(a, ld, rc, "search", e);
	}
	entry = ldap_first_entry(ld, res);
	vals = ldap_get_values_len(ld, entry, "memberOf");
	for (size_t i = 0; vals && vals[i]; i++) {
		char *v = xstrndup(vals[i]->bv_val, vals[i]->bv_len);

		groups_add(g, v);
		free(v);
	}
	ldap_value_free_len(vals);
	ids[0] = entry_id(ld, entry, a->uid_attr);
	ids[1] = entry_id(ld, entry, a->gid_attr);
	ldap_msgfree(res);
	return 0;
}

/* Adds the groups under group_base that name the user. */
static int
search_groups(struct auth_ldap *a, LDAP *ld, const char *dn,
	      const char *name, struct groups *g, struct err *e)
{
	char *edn = auth_ldap_escape_filter(dn);
	char *ename = auth_ldap_escape_filter(name);
	char *filter = xasprintf("(|(&(objectClass=groupOfNames)(member=%s))"
	    "(&(objectClass=groupOfUniqueNames)(uniqueMember=%s))"
	    "(&(objectClass=posixGroup)(memberUid=%s)))", edn, edn, ename);
	char *attrs[] = { (char *)(uintptr_t)LDAP_NO_ATTRS, NULL };
	struct timeval tv = { .tv_sec = a->timeout_s, .tv_usec = 0 };
	LDAPMessage *res = NULL, *entry;
	int rc, ret = 0;

	rc = ldap_search_ext_s(ld, a->group_base, LDAP_SCOPE_SUBTREE, filter,
	    attrs, 0, NULL, NULL, &tv, 0, &res);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED) {
		ret = ldap_fail(a, ld, rc, "group search", e);
		goto out;
	}
	for (entry = ldap_first_entry(ld, res); entry;
	    entry = ldap_next_entry(ld, entry)) {
		char *gdn = ldap_get_dn(ld, entry);

		if (gdn)
			groups_add(g, gdn);
		ldap_memfree(gdn);
	}
out:
	ldap_msgfree(res);
	free(filter);
	free(ename);
	free(edn);
	return ret;
}

/* The filter for groups having one of g's groups from..to as a member. */
static char *
parents_filter(const struct groups *g, size_t from, size_t to)
{
	struct strbuf sb;

	sb_init(&sb);
	sb_adds(&sb, "(|");
	for (size_t i = from; i < to; i++) {
		char *v = auth_ldap_escape_filter(g->dns[i]);

		sb_addf(&sb, "(member=%s)(uniqueMember=%s)", v, v);
		free(v);
	}
	sb_adds(&sb, ")");
	return sb_detach(&sb, NULL);
}

/* One level of nesting: adds the groups that have a group of from..to as
 * a member (one search). */
static int
parents_search(struct auth_ldap *a, LDAP *ld, struct groups *g, size_t from,
	       size_t to, struct err *e)
{
	char *filter = parents_filter(g, from, to);
	char *attrs[] = { (char *)(uintptr_t)LDAP_NO_ATTRS, NULL };
	struct timeval tv = { .tv_sec = a->timeout_s, .tv_usec = 0 };
	LDAPMessage *res = NULL, *entry;
	int rc, ret = 0;

	rc = ldap_search_ext_s(ld, a->group_base ? a->group_base :
	    a->search_base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL,
	    &tv, 0, &res);
	if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED)
		ret = ldap_fail(a, ld, rc, "nested group search", e);
	for (entry = ret ? NULL : ldap_first_entry(ld, res); entry;
	    entry = ldap_next_entry(ld, entry)) {
		char *gdn = ldap_get_dn(ld, entry);

		if (gdn)
			groups_add(g, gdn);
		ldap_memfree(gdn);
	}
	ldap_msgfree(res);
	free(filter);
	return ret;
}

/*
 * Nested groups, breadth first: level 1 asks which groups contain one of
 * the user's own groups, level 2 which contain one found at level 1, and
 * so on for nested_depth levels. Only groups new at a level are asked
 * about at the next (groups_add skips known ones), so loops end; the
 * search stops early when a level finds nothing new.
 */
static int
nested_groups(struct auth_ldap *a, LDAP *ld, const char *name,
	      struct groups *g, struct err *e)
{
	size_t from = 0;
	long level;

	for (level = 0; level < a->nested_depth && from < g->n; level++) {
		size_t to = g->n;

		if (parents_search(a, ld, g, from, to, e) < 0)
			return -1;
		from = to;
	}
	/* cut: the last level found groups whose own groups were not asked */
	log_event(LOG_DEBUG, "ldap.nested_groups", "user=%s searches=%ld "
	    "groups=%zu cut=%d", name, level, g->n, from < g->n);
	return 0;
}

/* ---- result ------------------------------------------------------------ */

/* 1 if one of the listed groups (cn or normalized DN) is in g. */
static int
in_any(struct groups *g, char **list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int is_dn = strchr(list[i], '=') != NULL;

		for (size_t j = 0; j < g->n; j++) {
			if (is_dn ? strcmp(list[i], g->dns[j]) == 0 :
			    strcasecmp(list[i], g->cns[j]) == 0)
				return 1;
		}
	}
	return 0;
}

/* Collects the groups of dn/name, applies allowed/admin, fills *out. */
static int
finish_user(struct auth_ldap *a, LDAP *ld, const char *dn, const char *name,
	    struct auth_user *out, struct err *e)
{
	struct groups g = { 0 };
	long ids[2] = { 0, 0 };
	size_t k = 0;
	int ret = -1;

	if (read_member_of(a, ld, dn, &g, ids, e) < 0 ||
	    (a->group_base && search_groups(a, ld, dn, name, &g, e) < 0) ||
	    (a->nested_depth > 0 && nested_groups(a, ld, name, &g, e) < 0))
		goto out;
	if (g.dropped)
		log_event(LOG_WARN, "ldap.too_many_groups", "user=%s kept=%zu "
		    "dropped=%zu", name, g.n, g.dropped);
	if (a->nallowed && !in_any(&g, a->allowed, a->nallowed)) {
		log_event(LOG_INFO, "ldap.forbidden", "user=%s dn=%s", name,
		    dn);
		err_set(e, ERR_FORBIDDEN, "user '%s' is not a member of an "
		    "allowed group", name);
		goto out;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->admin = a->nadmins ? in_any(&g, a->admins, a->nadmins) : -1;
	out->uid = ids[0];
	out->gid = ids[1];
	out->groups = xcalloc(g.n + 1, sizeof(*out->groups));
	for (size_t i = 0; i < g.n; i++) {
		size_t j;

		for (j = 0; j < k; j++)
			if (strcasecmp(out->groups[j], g.cns[i]) == 0)
				break;
		if (j == k)
			out->groups[k++] = xstrdup(g.cns[i]);
	}
	out->ngroups = k;
	ret = 0;
out:
	groups_release(&g);
	return ret;
}

/* ---- login ------------------------------------------------------------- */

/* Template binds: 0 with *dn (heap) for the first that succeeds. */
static int
bind_templates(struct auth_ldap *a, LDAP *ld, const char *name,
	       const char *password, char **dn, struct err *e)
{
	char *esc = auth_ldap_escape_dn(name);

	*dn = NULL;
	for (size_t i = 0; i < a->ntemplates; i++) {
		char *d = expand(a->templates[i], esc);
		int rc = simple_bind(ld, d, password);

		if (rc == LDAP_SUCCESS) {
			*dn = d;
			free(esc);
			return 0;
		}
		if (is_down(rc)) {
			free(d);
			free(esc);
			return ldap_fail(a, ld, rc, "bind", e);
		}
		log_event(LOG_INFO, "ldap.bind_failed", "user=%s dn=%s err=%s",
		    name, d, ldap_err2string(rc));
		free(d);
	}
	free(esc);
	return err_set(e, ERR_AUTH, "invalid username or password");
}

/* Search-then-bind: 0 with *dn (heap) and the user's name in canon (see
 * find_user) when the password binds. */
static int
search_bind(struct auth_ldap *a, LDAP *ld, const char *name,
	    const char *password, char **dn, char *canon, struct err *e)
{
	int rc;

	*dn = NULL;
	if (service_bind(a, ld, e) < 0)
		return -1;
	if (find_user(a, ld, name, dn, canon, e) < 0) {
		if (e->code == ERR_NOTFOUND)
			err_set(e, ERR_AUTH, "invalid username or password");
		return -1;
	}
	rc = simple_bind(ld, *dn, password);
	if (rc == LDAP_SUCCESS)
		return 0;
	if (is_down(rc))
		ldap_fail(a, ld, rc, "bind", e);
	else {
		log_event(LOG_INFO, "ldap.bind_failed", "user=%s dn=%s err=%s",
		    name, *dn, ldap_err2string(rc));
		err_set(e, ERR_AUTH, "invalid username or password");
	}
	free(*dn);
	*dn = NULL;
	return -1;
}

int
auth_ldap_login(struct auth_ldap *a, const char *username,
		const char *password, struct auth_user *out, struct err *e)
{
	char name[USER_NAME_MAX + 1], canon[USER_NAME_MAX + 1], *dn = NULL;
	LDAP *ld = NULL;
	struct err tmp;
	int ret = -1;

	if (e == NULL)		/* the flow reads e->code */
		e = &tmp;
	memset(out, 0, sizeof(*out));
	if (user_name_normalize(username, name, e) < 0)
		return -1;
	snprintf(canon, sizeof(canon), "%s", name);
	if (password == NULL || *password == '\0') {
		log_event(LOG_INFO, "ldap.bind_failed", "user=%s err=%s", name,
		    "empty password");
		return err_set(e, ERR_AUTH, "invalid username or password");
	}
	if (conn_open(a, &ld, e) < 0)
		return -1;
	if ((a->ntemplates ? bind_templates(a, ld, name, password, &dn, e) :
	    search_bind(a, ld, name, password, &dn, canon, e)) < 0)
		goto out;
	if (finish_user(a, ld, dn, canon, out, e) < 0)
		goto out;
	log_event(LOG_INFO, "ldap.login", "user=%s typed=%s dn=%s groups=%zu",
	    canon, name, dn, out->ngroups);
	ret = 0;
out:
	free(dn);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return ret;
}

/* Template mode lookup: the first template DN that exists. */
static int
lookup_templates(struct auth_ldap *a, LDAP *ld, const char *name,
		 struct auth_user *out, struct err *e)
{
	char *esc = auth_ldap_escape_dn(name);

	for (size_t i = 0; i < a->ntemplates; i++) {
		char *d = expand(a->templates[i], esc);
		int rc = finish_user(a, ld, d, name, out, e);

		free(d);
		if (rc == 0 || e->code != ERR_NOTFOUND) {
			free(esc);
			return rc;
		}
	}
	free(esc);
	return err_set(e, ERR_NOTFOUND, "user '%s' not found in the "
	    "directory", name);
}

int
auth_ldap_lookup(struct auth_ldap *a, const char *username,
		 struct auth_user *out, struct err *e)
{
	char name[USER_NAME_MAX + 1], canon[USER_NAME_MAX + 1], *dn = NULL;
	LDAP *ld = NULL;
	struct err tmp;
	int ret = -1;

	if (e == NULL)		/* the flow reads e->code */
		e = &tmp;
	memset(out, 0, sizeof(*out));
	if (user_name_normalize(username, name, e) < 0)
		return -1;
	if (conn_open(a, &ld, e) < 0)
		return -1;
	if (service_bind(a, ld, e) < 0)
		goto out;
	if (a->ntemplates && a->search_base == NULL) {
		ret = lookup_templates(a, ld, name, out, e);
		goto out;
	}
	if (find_user(a, ld, name, &dn, canon, e) < 0 ||
	    finish_user(a, ld, dn, canon, out, e) < 0)
		goto out;
	ret = 0;
out:
	free(dn);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return ret;
}
