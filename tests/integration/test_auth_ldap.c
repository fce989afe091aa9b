/*
 * test_auth_ldap.c - auth_ldap against the private slapd of
 * tests/services/slapd.sh (template bind, search-then-bind, groups from
 * memberOf and group_base, allowed/admin groups, StartTLS, ldaps,
 * unreachable servers, lookup; the AD-shaped branch: sAMAccountName and
 * UPN logins, nested groups with a loop and a chain deeper than the bound).
 * stderr (the hub's log) is captured and checked for passwords, then
 * replayed.
 */
#include <netinet/in.h>
#include <sys/stat.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../hub/auth.h"
#include "../lib/t.h"

#define SCRIPT "tests/services/slapd.sh start DIR"
#define PEOPLE "ou=People,dc=example,dc=com"
#define GROUPS "ou=Groups,dc=example,dc=com"
#define TMPL "uid={username}," PEOPLE
#define ERIN_PW "p@ss w0rd'\"\\*()"

#define CORP "ou=Corp,dc=example,dc=com"
#define CORP_GROUPS "ou=Groups," CORP

static const char *uri, *ldaps_uri, *ca;
static FILE *log_file;		/* where stderr goes while the tests run */

/* A struct ldap_cfg for template binds on the plain URI. */
static struct ldap_cfg
tmpl_cfg(void)
{
	struct ldap_cfg c = {
		.uri = uri,
		.bind_dn_templates = TMPL,
		.timeout_s = 5,
	};
	return c;
}

/* A search-then-bind config: as reader when reader is set. */
static struct ldap_cfg
search_cfg(int reader)
{
	struct ldap_cfg c = {
		.uri = uri,
		.search_base = PEOPLE,
		.search_user = reader ? "cn=reader,dc=example,dc=com" : NULL,
		.search_password = reader ? "readerpw" : NULL,
		.group_base = GROUPS,
		.timeout_s = 5,
	};
	return c;
}

/* Logs in with cfg; returns the err code (ERR_OK on success). */
static int
login(const struct ldap_cfg *cfg, const char *user, const char *pw,
      struct auth_user *u, struct err *e)
{
	struct auth_ldap *a = NULL;
	struct err tmp = { 0 };
	int rc;

	if (e == NULL)
		e = &tmp;
	memset(u, 0, sizeof(*u));
	if (auth_ldap_new(cfg, &a, e) < 0)
		return (int)e->code;
	rc = auth_ldap_login(a, user, pw, u, e);
	auth_ldap_free(a);
	return rc == 0 ? ERR_OK : (int)e->code;
}

static int
lookup(const struct ldap_cfg *cfg, const char *user, struct auth_user *u,
       struct err *e)
{
	struct auth_ldap *a = NULL;
	int rc;

	memset(u, 0, sizeof(*u));
	if (auth_ldap_new(cfg, &a, e) < 0)
		return (int)e->code;
	rc = auth_ldap_lookup(a, user, u, e);
	auth_ldap_free(a);
	return rc == 0 ? ERR_OK : (int)e->code;
}

static int
has_group(const struct auth_user *u, const char *cn)
{
	for (size_t i = 0; i < u->ngroups; i++)
		if (strcmp(u->groups[i], cn) == 0)
			return 1;
	return 0;
}

/* A TCP port on 127.0.0.1 nobody listens on. */
static int
closed_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		port = 1;
	else
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* 1 if the log written since *mark holds needle; moves *mark to its end. */
static int
logged_since(off_t *mark, const char *needle)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int found;

	fflush(stderr);
	if (fstat(fileno(log_file), &st) < 0 || st.st_size < *mark)
		return 0;
	buf = xmalloc((size_t)(st.st_size - *mark) + 1);
	n = pread(fileno(log_file), buf, (size_t)(st.st_size - *mark), *mark);
	buf[n > 0 ? n : 0] = '\0';
	found = strstr(buf, needle) != NULL;
	free(buf);
	*mark = st.st_size;
	return found;
}

static off_t
log_mark(void)
{
	struct stat st;

	fflush(stderr);
	return fstat(fileno(log_file), &st) == 0 ? st.st_size : 0;
}

static void
test_template(void)
{
	struct ldap_cfg c = tmpl_cfg();
	struct auth_user u;
	struct err e = { 0 };

	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK,
	    "alice logs in with a bind DN template (%s)", e.msg);
	T_STREQ(u.name, "alice", "the name is alice");
	T_OK(has_group(&u, "datascience"), "alice is in datascience");
	T_OK(has_group(&u, "x<script>alert(1)</script>"),
	    "alice's evil group comes back unescaped");
	T_OK(u.admin == -1, "admin is -1 without admin_groups");
	auth_user_release(&u);

	c.bind_dn_templates = "uid={username},ou=Nobody,dc=example,dc=com; "
	    TMPL;
	T_OK(login(&c, "bob", "bobpw", &u, &e) == ERR_OK,
	    "the second template binds when the first does not (%s)", e.msg);
	T_OK(has_group(&u, "datascience"), "bob is in datascience");
	auth_user_release(&u);

	c = tmpl_cfg();
	T_OK(login(&c, "alice", "wrong", &u, &e) == ERR_AUTH,
	    "a wrong password is ERR_AUTH");
	T_STREQ(e.msg, "invalid username or password", "the message is vague");
	T_OK(login(&c, "nosuchuser", "x", &u, NULL) == ERR_AUTH,
	    "an unknown user is ERR_AUTH");
	T_OK(login(&c, "erin", ERIN_PW, &u, &e) == ERR_OK,
	    "erin logs in with her special-character password (%s)", e.msg);
	auth_user_release(&u);
	T_OK(login(&c, "  FRANK ", "frankpw", &u, &e) == ERR_OK,
	    "'  FRANK ' logs in (%s)", e.msg);
	T_STREQ(u.name, "frank", "the name is normalized to frank");
	T_OK(has_group(&u, "frank-team"), "frank is in frank-team");
	auth_user_release(&u);
}

static void
test_search(void)
{
	struct ldap_cfg c;
	struct auth_user u;
	struct err e = { 0 };

	for (int reader = 1; reader >= 0; reader--) {
		c = search_cfg(reader);
		T_OK(login(&c, "carol", "carolpw", &u, &e) == ERR_OK,
		    "search-then-bind (reader=%d) logs carol in (%s)", reader,
		    e.msg);
		T_OK(has_group(&u, "hub-admins"), "carol is in hub-admins");
		T_OK(has_group(&u, "analysts"),
		    "carol is in the posixGroup analysts");
		T_OK(u.ngroups == 2, "carol has 2 groups, got %zu", u.ngroups);
		auth_user_release(&u);
		T_OK(login(&c, "carol", "bobpw", &u, NULL) == ERR_AUTH,
		    "search-then-bind: wrong password is ERR_AUTH");
		T_OK(login(&c, "nosuchuser", "x", &u, &e) == ERR_AUTH,
		    "search-then-bind: unknown user is ERR_AUTH");
		T_OK(login(&c, "erin", ERIN_PW, &u, &e) == ERR_OK,
		    "search-then-bind: erin's password works (%s)", e.msg);
		auth_user_release(&u);
	}
	c = search_cfg(1);
	T_OK(login(&c, "bob", "bobpw", &u, &e) == ERR_OK, "bob logs in");
	T_OK(has_group(&u, "datascience") && has_group(&u, "analysts") &&
	    u.ngroups == 2, "bob: datascience (memberOf + search, once) "
	    "and analysts");
	auth_user_release(&u);
	c.search_password = "wrong";
	T_OK(login(&c, "bob", "bobpw", &u, &e) == ERR_UPSTREAM,
	    "a bad search password is ERR_UPSTREAM");
	T_OK(strstr(e.msg, "wrong") == NULL, "the message has no password");
}

static void
test_refused(void)
{
	static const char *const evil[] = {
		"*", "alice)(uid=*", "alice*", "*)(|(uid=*", "alice\\2a",
		"", "   ", "uid=alice," PEOPLE,
	};
	struct ldap_cfg c = tmpl_cfg(), s = search_cfg(0);
	struct auth_user u;
	struct err e = { 0 };
	char closed[64];

	for (size_t i = 0; i < sizeof(evil) / sizeof(*evil); i++) {
		T_OK(login(&c, evil[i], "alicepw", &u, NULL) != ERR_OK,
		    "template: '%s' does not log in", evil[i]);
		T_OK(login(&s, evil[i], "alicepw", &u, NULL) != ERR_OK,
		    "search: '%s' does not log in", evil[i]);
	}
	T_OK(login(&c, "alice", "", &u, &e) == ERR_AUTH,
	    "an empty password is ERR_AUTH");
	T_OK(login(&s, "alice", NULL, &u, &e) == ERR_AUTH,
	    "a NULL password is ERR_AUTH");
	snprintf(closed, sizeof(closed), "ldap://127.0.0.1:%d", closed_port());
	c.uri = closed;
	T_OK(login(&c, "alice", "", &u, &e) == ERR_AUTH,
	    "an empty password is refused before any connection (%s)", e.msg);
	s.uri = closed;
	T_OK(login(&s, "alice", "", &u, &e) == ERR_AUTH,
	    "search mode: an empty password never reaches the server");
}

static void
test_groups(void)
{
	struct ldap_cfg c = search_cfg(1);
	struct auth_user u;
	struct err e = { 0 };

	c.allowed_groups = "datascience";
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK,
	    "alice is allowed by cn (%s)", e.msg);
	auth_user_release(&u);
	T_OK(login(&c, "dave", "davepw", &u, &e) == ERR_FORBIDDEN,
	    "dave (no group) is ERR_FORBIDDEN");
	T_STREQ(e.msg, "user 'dave' is not a member of an allowed group",
	    "the message names dave");
	T_OK(login(&c, "dave", "wrong", &u, &e) == ERR_AUTH,
	    "dave with a wrong password is ERR_AUTH, not ERR_FORBIDDEN");
	T_OK(login(&c, "carol", "carolpw", &u, &e) == ERR_FORBIDDEN,
	    "carol is not in datascience");

	c.allowed_groups = "datascience,CN=Hub-Admins, ou=Groups,dc=example,"
	    "dc=com";
	T_OK(login(&c, "carol", "carolpw", &u, &e) == ERR_OK,
	    "carol is allowed by a full DN, case and spaces aside (%s)",
	    e.msg);
	auth_user_release(&u);
	c.allowed_groups = "cn=analysts," GROUPS;
	T_OK(login(&c, "bob", "bobpw", &u, &e) == ERR_OK,
	    "bob is allowed by the DN of a posixGroup (%s)", e.msg);
	auth_user_release(&u);
	c.allowed_groups = "cn=datascience,ou=Other,dc=example,dc=com";
	T_OK(login(&c, "bob", "bobpw", &u, &e) == ERR_FORBIDDEN,
	    "a DN in another branch does not allow bob");

	c.allowed_groups = NULL;
	c.admin_groups = "hub-admins";
	T_OK(login(&c, "carol", "carolpw", &u, &e) == ERR_OK &&
	    u.admin == 1, "carol is admin via admin_groups");
	auth_user_release(&u);
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK &&
	    u.admin == 0, "alice is not admin");
	auth_user_release(&u);
	c.admin_groups = "cn=hub-admins," GROUPS;
	T_OK(login(&c, "carol", "carolpw", &u, &e) == ERR_OK &&
	    u.admin == 1, "carol is admin via an admin group DN");
	auth_user_release(&u);

	c = tmpl_cfg();
	c.allowed_groups = "x<script>alert(1)</script>";
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK,
	    "the evil group cn can be allowed (%s)", e.msg);
	auth_user_release(&u);
}

static void
test_tls(void)
{
	struct ldap_cfg c = tmpl_cfg();
	struct auth_user u;
	struct err e = { 0 };
	const char *sys = "/etc/ssl/certs/ca-certificates.crt";

	if (access(sys, R_OK) != 0)
		sys = "/nonexistent/ca.pem";
	c.starttls = 1;
	c.ca_file = ca;
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK,
	    "StartTLS with the test CA works (%s)", e.msg);
	auth_user_release(&u);
	c.ca_file = NULL;
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK,
	    "StartTLS without ca_file uses LDAPTLS_CACERT (%s)", e.msg);
	auth_user_release(&u);
	c.ca_file = sys;
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_UNAVAILABLE,
	    "StartTLS with the wrong CA is ERR_UNAVAILABLE (%s)", e.msg);
	c.ca_file = "/nonexistent/ca.pem";
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_UNAVAILABLE,
	    "StartTLS with a missing CA file is ERR_UNAVAILABLE (%s)", e.msg);

	c = tmpl_cfg();
	c.uri = ldaps_uri;
	c.ca_file = ca;
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK,
	    "ldaps:// with the test CA works (%s)", e.msg);
	T_OK(has_group(&u, "datascience"), "ldaps: groups are read");
	auth_user_release(&u);
	c.ca_file = sys;
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_UNAVAILABLE,
	    "ldaps:// with the wrong CA is ERR_UNAVAILABLE (%s)", e.msg);
	c = search_cfg(1);
	c.uri = ldaps_uri;
	c.ca_file = ca;
	T_OK(login(&c, "carol", "carolpw", &u, &e) == ERR_OK,
	    "ldaps:// search-then-bind works (%s)", e.msg);
	auth_user_release(&u);
}

static void
test_unreachable(void)
{
	struct ldap_cfg c = tmpl_cfg(), s = search_cfg(1);
	struct auth_user u;
	struct err e = { 0 };
	char closed[64];
	struct timespec t0, t1;
	double secs;

	snprintf(closed, sizeof(closed), "ldap://127.0.0.1:%d", closed_port());
	c.uri = closed;
	c.timeout_s = 2;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_UNAVAILABLE,
	    "a closed port is ERR_UNAVAILABLE (%s)", e.msg);
	T_OK(strstr(e.msg, closed) && strstr(e.msg, "unreachable"),
	    "the message names the server: %s", e.msg);
	T_OK(strstr(e.msg, "alicepw") == NULL, "no password in the message");
	s.uri = closed;
	T_OK(lookup(&s, "bob", &u, &e) == ERR_UNAVAILABLE,
	    "lookup on a closed port is ERR_UNAVAILABLE");

	/* A black-holed address: the network timeout bounds the wait. */
	c.uri = "ldap://192.0.2.1:389";
	c.timeout_s = 1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_UNAVAILABLE,
	    "an unroutable server is ERR_UNAVAILABLE (%s)", e.msg);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	T_OK(secs < 3.0, "it fails within the timeout (%.2f s)", secs);
}

static void
test_lookup(void)
{
	struct ldap_cfg c;
	struct auth_user u;
	struct err e = { 0 };

	for (int reader = 1; reader >= 0; reader--) {
		c = search_cfg(reader);
		T_OK(lookup(&c, "bob", &u, &e) == ERR_OK,
		    "lookup bob (reader=%d) (%s)", reader, e.msg);
		T_STREQ(u.name, "bob", "lookup name");
		T_OK(has_group(&u, "datascience") && has_group(&u, "analysts"),
		    "lookup returns bob's groups");
		auth_user_release(&u);
		T_OK(lookup(&c, "nosuchuser", &u, &e) == ERR_NOTFOUND,
		    "lookup of a missing user is ERR_NOTFOUND");
	}
	c = search_cfg(1);
	c.allowed_groups = "datascience";
	T_OK(lookup(&c, "dave", &u, &e) == ERR_FORBIDDEN,
	    "lookup applies allowed_groups");
	T_OK(lookup(&c, "*", &u, &e) == ERR_INVALID,
	    "lookup of '*' is ERR_INVALID");

	c = tmpl_cfg();
	c.admin_groups = "hub-admins";
	T_OK(lookup(&c, "Carol", &u, &e) == ERR_OK && u.admin == 1,
	    "template-mode lookup reads carol's groups (%s)", e.msg);
	T_STREQ(u.name, "carol", "template lookup name");
	auth_user_release(&u);
	T_OK(lookup(&c, "nosuchuser", &u, &e) == ERR_NOTFOUND,
	    "template-mode lookup of a missing user is ERR_NOTFOUND");
}

/* Active Directory as banks run it, on slapd: people under ou=Corp named
 * "cn=Full Name", found by sAMAccountName or UPN as the reader account,
 * the hub's name from sAMAccountName, groups nested in groups. */
static struct ldap_cfg
ad_cfg(long depth)
{
	struct ldap_cfg c = {
		.uri = uri,
		.search_base = CORP,
		.search_filter = "(|(sAMAccountName={username})"
				 "(userPrincipalName={username}))",
		.search_user = "cn=reader,dc=example,dc=com",
		.search_password = "readerpw",
		.username_attribute = "sAMAccountName",
		.nested_depth = depth,
		.timeout_s = 5,
	};
	return c;
}

static void
test_ad_logins(void)
{
	struct ldap_cfg c = ad_cfg(0);
	struct auth_user u;
	struct err e = { 0 };

	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_OK,
	    "dscully logs in by sAMAccountName (%s)", e.msg);
	T_STREQ(u.name, "dscully", "the hub's name: sAMAccountName, lowercase");
	T_OK(u.ngroups == 2 && has_group(&u, "GG-Quant-Desk") &&
	    has_group(&u, "Loop-A"), "depth 0: only her own groups (memberOf), "
	    "got %zu", u.ngroups);
	auth_user_release(&u);
	T_OK(login(&c, "DScully@Corp.Example.COM", "dscullypw", &u, &e) ==
	    ERR_OK, "she logs in by her UPN, in any case (%s)", e.msg);
	T_STREQ(u.name, "dscully", "the UPN login is the same hub user");
	auth_user_release(&u);
	T_OK(login(&c, "dscully@corp.example.com", "fmulderpw", &u, &e) ==
	    ERR_AUTH, "another's password: ERR_AUTH");
	T_OK(login(&c, "dscully@other.example.com", "dscullypw", &u, &e) ==
	    ERR_AUTH, "a UPN of another domain: ERR_AUTH");
	T_OK(login(&c, "dscully*", "dscullypw", &u, &e) == ERR_INVALID,
	    "a wildcard is no username");
	c.search_filter = "(userPrincipalName={username}@corp.example.com)";
	T_OK(login(&c, "FMulder", "fmulderpw", &u, &e) == ERR_OK &&
	    strcmp(u.name, "fmulder") == 0, "a filter adding the UPN suffix "
	    "(%s)", e.msg);
	auth_user_release(&u);

	c = ad_cfg(0);
	c.username_attribute = "employeeNumber";
	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_UPSTREAM,
	    "an entry without the username attribute is refused");
	T_STREQ(e.msg, "LDAP entry 'cn=Dana Scully,ou=Staff,ou=Corp,"
	    "dc=example,dc=com' has no single 'employeeNumber' "
	    "(LDAP_USERNAME_ATTRIBUTE) to name the user", "and says why");
	c.username_attribute = "cn";
	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_UPSTREAM &&
	    strstr(e.msg, "is not a valid username") != NULL,
	    "'Dana Scully' is no username: refused (%s)", e.msg);
	c = ad_cfg(0);
	c.username_attribute = NULL;
	T_OK(login(&c, "dscully@corp.example.com", "dscullypw", &u, &e) ==
	    ERR_OK && strcmp(u.name, "dscully@corp.example.com") == 0,
	    "without the setting the name is what was typed");
	auth_user_release(&u);
}

static void
test_ad_nested(void)
{
	struct ldap_cfg c = ad_cfg(AUTH_LDAP_NESTED_MAX);
	struct auth_user u;
	struct err e = { 0 };
	off_t mark;

	c.allowed_groups = "APP-Jupyter-Users";
	c.admin_groups = "cn=APP-Jupyter-Admins," CORP_GROUPS;
	mark = log_mark();
	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_OK,
	    "allowed through GG-Quant-Desk in GG-Risk in APP-Jupyter-Users "
	    "(%s)", e.msg);
	T_OK(u.admin == 1, "admin through Loop-A in Loop-B in "
	    "APP-Jupyter-Admins");
	T_OK(u.ngroups == 6 && has_group(&u, "GG-Risk") &&
	    has_group(&u, "Loop-B") && has_group(&u, "APP-Jupyter-Users"),
	    "six groups, each once (the loop Loop-A in Loop-B in Loop-A ends), "
	    "got %zu", u.ngroups);
	auth_user_release(&u);
	T_OK(logged_since(&mark, "event=ldap.nested_groups user=dscully "
	    "searches=3 groups=6 cut=0"), "three searches: two levels find "
	    "groups, the third nothing new, then it stops");

	c.nested_depth = 1;
	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_FORBIDDEN,
	    "depth 1 does not reach APP-Jupyter-Users (two levels up)");
	c.allowed_groups = "GG-Risk";
	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_OK &&
	    u.admin == 0, "depth 1: GG-Risk counts, APP-Jupyter-Admins not");
	auth_user_release(&u);
	T_OK(logged_since(&mark, "searches=1 groups=4 cut=1"),
	    "depth 1: one search");
	c.nested_depth = 0;
	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_FORBIDDEN,
	    "depth 0 (the default): nested groups do not count");
	T_OK(!logged_since(&mark, "ldap.nested_groups"),
	    "depth 0: no nested search at all");

	c = ad_cfg(AUTH_LDAP_NESTED_MAX);
	c.allowed_groups = "Chain-11";
	T_OK(login(&c, "fmulder", "fmulderpw", &u, &e) == ERR_OK,
	    "Chain-11 is 10 levels above Chain-01: allowed (%s)", e.msg);
	T_OK(u.ngroups == 11 && !has_group(&u, "Chain-12"),
	    "Chain-01..Chain-11, not Chain-12 beyond the bound (got %zu)",
	    u.ngroups);
	auth_user_release(&u);
	T_OK(logged_since(&mark, "event=ldap.nested_groups user=fmulder "
	    "searches=10 groups=11 cut=1"), "the bound holds: 10 searches");
	c.allowed_groups = "Chain-12";
	T_OK(login(&c, "fmulder", "fmulderpw", &u, &e) == ERR_FORBIDDEN,
	    "Chain-12, 11 levels up, is beyond the bound");
	c.allowed_groups = "Chain-11";
	c.nested_depth = 9;
	T_OK(login(&c, "fmulder", "fmulderpw", &u, &e) == ERR_FORBIDDEN,
	    "depth 9 does not reach Chain-11");

	c = ad_cfg(2);
	c.admin_groups = "APP-Jupyter-Admins";
	T_OK(lookup(&c, "dscully", &u, &e) == ERR_OK && u.admin == 1 &&
	    u.ngroups == 6, "lookup (re-check) resolves nested groups too "
	    "(%s)", e.msg);
	T_STREQ(u.name, "dscully", "lookup name");
	auth_user_release(&u);

	/* the tree of the other tests: groups under GROUP_BASE (none nest
	 * there), so nesting changes nothing for bob */
	c = search_cfg(1);
	c.nested_depth = 3;
	T_OK(login(&c, "bob", "bobpw", &u, &e) == ERR_OK && u.ngroups == 2,
	    "bob's groups with depth 3: the same two");
	auth_user_release(&u);
	/* a DN with escaped characters goes into the nested filter */
	c = tmpl_cfg();
	c.group_base = GROUPS;
	c.nested_depth = 3;
	mark = log_mark();
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_OK &&
	    u.ngroups == 2 && has_group(&u, "x<script>alert(1)</script>"),
	    "template mode with nesting: alice's two groups (%s)", e.msg);
	auth_user_release(&u);
	T_OK(logged_since(&mark, "user=alice searches=1 groups=2 cut=0"),
	    "one nested search with the escaped DN, nothing found");
}

static void
test_ad_settings(void)
{
	struct ldap_cfg c = ad_cfg(AUTH_LDAP_NESTED_MAX + 1);
	struct auth_user u;
	struct err e = { 0 };

	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_INVALID,
	    "a depth above the bound is refused");
	T_STREQ(e.msg, "LDAP_NESTED_GROUPS_DEPTH must be 0..10",
	    "the message names the setting and the range");
	c = tmpl_cfg();
	c.nested_depth = 2;
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_INVALID &&
	    strstr(e.msg, "LDAP_NESTED_GROUPS_DEPTH needs LDAP_GROUP_BASE") !=
	    NULL, "nested groups need a base to search (%s)", e.msg);
	c = tmpl_cfg();
	c.username_attribute = "sAMAccountName";
	T_OK(login(&c, "alice", "alicepw", &u, &e) == ERR_INVALID &&
	    strstr(e.msg, "LDAP_USERNAME_ATTRIBUTE needs search-then-bind") !=
	    NULL, "the username attribute needs search mode (%s)", e.msg);
	c = ad_cfg(0);
	c.username_attribute = "sAMAccountName)(x=*";
	T_OK(login(&c, "dscully", "dscullypw", &u, &e) == ERR_INVALID &&
	    strstr(e.msg, "is not an attribute name") != NULL,
	    "a username attribute that is no name is refused (%s)", e.msg);
}

/* Runs the tests with stderr in a file; fails if a password was logged. */
int
main(void)
{
	static const char *const secrets[] = {
		"alicepw", "bobpw", "carolpw", "davepw", "frankpw", "readerpw",
		"p@ss w0rd", "dscullypw", "fmulderpw",
	};
	FILE *log = log_file = tmpfile();
	char line[1024];
	int saved = dup(2), leaked = 0;

	uri = t_need_env("SWARMHUB_TEST_LDAP_URI", "ldap", SCRIPT);
	ldaps_uri = t_need_env("SWARMHUB_TEST_LDAPS_URI", "ldap", SCRIPT);
	ca = t_need_env("SWARMHUB_TEST_LDAP_CA", "ldap", SCRIPT);
	if (log == NULL || saved < 0)
		return 2;
	/* libldap reads this once, at its first use: the ca_file-less case
	 * must use the global TLS settings. */
	setenv("LDAPTLS_CACERT", ca, 1);
	log_set_level(LOG_DEBUG);
	fflush(stderr);
	dup2(fileno(log), 2);

	test_template();
	test_search();
	test_refused();
	test_groups();
	test_tls();
	test_unreachable();
	test_lookup();
	test_ad_logins();
	test_ad_nested();
	test_ad_settings();

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(log);
	while (fgets(line, sizeof(line), log)) {
		int fail = strncmp(line, "FAIL", 4) == 0;

		for (size_t i = 0; i < sizeof(secrets) / sizeof(*secrets); i++)
			if (strstr(line, secrets[i]) && !fail)
				leaked = 1;
		if (getenv("T_VERBOSE") || strncmp(line, "FAIL", 4) == 0 ||
		    strncmp(line, "  got", 5) == 0)
			fputs(line, stderr);
	}
	fclose(log);
	T_OK(!leaked, "no password appears in the log");
	return t_done();
}
