/*
 * test_ldap_escape.c - RFC 4515 filter and RFC 4514 DN escaping, and the
 * settings auth_ldap_new refuses. No network.
 */
#include "../../hub/auth.h"
#include "../lib/t.h"

struct row {
	const char *in;
	const char *want;
};

static const struct row filter_rows[] = {
	{ "alice", "alice" },
	{ "", "" },
	{ "*", "\\2a" },
	{ "alice*", "alice\\2a" },
	{ "alice)(uid=*", "alice\\29\\28uid=\\2a" },
	{ "*)(|(objectClass=*", "\\2a\\29\\28|\\28objectClass=\\2a" },
	{ "a\\b", "a\\5cb" },
	{ "\\2a", "\\5c2a" },
	{ "p@ss w0rd'\"", "p@ss w0rd'\"" },
	{ "uid=a,ou=People", "uid=a,ou=People" },
	{ "caf\xc3\xa9", "caf\xc3\xa9" },
};

static const struct row dn_rows[] = {
	{ "alice", "alice" },
	{ "", "" },
	{ "a,b", "a\\,b" },
	{ "a+b", "a\\+b" },
	{ "a=b", "a\\=b" },
	{ "\"q\"", "\\\"q\\\"" },
	{ "back\\slash", "back\\\\slash" },
	{ "<x>;", "\\<x\\>\\;" },
	{ " lead", "\\ lead" },
	{ "#hash", "\\#hash" },
	{ "a#b", "a#b" },
	{ "trail ", "trail\\ " },
	{ " ", "\\ " },
	{ "mid dle", "mid dle" },
	{ "x,ou=evil,dc=example", "x\\,ou\\=evil\\,dc\\=example" },
	{ "*()", "*()" },
};

static void
test_escape(void)
{
	for (size_t i = 0; i < sizeof(filter_rows) / sizeof(*filter_rows);
	    i++) {
		char *got = auth_ldap_escape_filter(filter_rows[i].in);

		T_STREQ(got, filter_rows[i].want, "filter escape of '%s'",
		    filter_rows[i].in);
		free(got);
	}
	for (size_t i = 0; i < sizeof(dn_rows) / sizeof(*dn_rows); i++) {
		char *got = auth_ldap_escape_dn(dn_rows[i].in);

		T_STREQ(got, dn_rows[i].want, "DN escape of '%s'",
		    dn_rows[i].in);
		free(got);
	}
}

static int
new_code(const struct ldap_cfg *cfg)
{
	struct auth_ldap *a = NULL;
	struct err e = { 0 };
	int rc = auth_ldap_new(cfg, &a, &e);

	auth_ldap_free(a);
	return rc == 0 ? ERR_OK : (int)e.code;
}

static void
test_new(void)
{
	struct ldap_cfg c = {
		.uri = "ldap://127.0.0.1:389",
		.bind_dn_templates = "uid={username},ou=People,dc=x",
	};
	struct ldap_cfg bad;

	T_OK(new_code(&c) == ERR_OK, "a template config is valid");
	bad = c;
	bad.uri = NULL;
	T_OK(new_code(&bad) == ERR_INVALID, "the URI is required");
	bad.uri = "http://x";
	T_OK(new_code(&bad) == ERR_INVALID, "an http URI is refused");
	bad = c;
	bad.uri = "ldaps://127.0.0.1:636";
	bad.starttls = 1;
	T_OK(new_code(&bad) == ERR_INVALID, "StartTLS on ldaps:// is refused");
	bad = c;
	bad.bind_dn_templates = "uid=alice,dc=x";
	T_OK(new_code(&bad) == ERR_INVALID,
	    "a template without {username} is refused");
	bad = c;
	bad.bind_dn_templates = NULL;
	T_OK(new_code(&bad) == ERR_INVALID,
	    "search-then-bind needs a search base");
	bad.search_base = "dc=x";
	T_OK(new_code(&bad) == ERR_OK, "search-then-bind with a base is valid");
	bad.search_filter = "(uid=alice)";
	T_OK(new_code(&bad) == ERR_INVALID,
	    "a filter without {username} is refused");
	bad = c;
	bad.allowed_groups = "datascience, cn=a,ou=Groups,dc=x";
	T_OK(new_code(&bad) == ERR_OK, "cn and DN entries are accepted");
	bad.allowed_groups = "cn=a,==,dc=x";
	T_OK(new_code(&bad) == ERR_INVALID, "a malformed DN is refused");
	bad = c;
	bad.timeout_s = -1;
	T_OK(new_code(&bad) == ERR_INVALID, "a negative timeout is refused");
}

int
main(void)
{
	log_set_level(LOG_ERROR);
	test_escape();
	test_new();
	return t_done();
}
