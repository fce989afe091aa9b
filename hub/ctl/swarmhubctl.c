/*
 * swarmhubctl.c - the admin CLI's entry: the command table, the command
 * line parser, help texts, and the mapping of results to exit statuses.
 *
 * A command is a row of cmds[]: its words ("users", "add"), the synopsis
 * of its positional arguments, its options and its function. Options are
 * "--name VALUE", "--name=VALUE" or "--name"; the global ones (--url,
 * --token-file, --json, --help) are accepted before or after the command.
 * Exit statuses: 0 ok, 1 failure (network, HTTP error), 2 usage error.
 * Ownership: main owns struct ctl and the positional array; everything a
 * command allocates it frees before it returns.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "ctl.h"

#define PROG		"swarmhubctl"
#define DEFAULT_URL	"http://127.0.0.1:8000"
#define ANY		SIZE_MAX

struct cmd {
	const char *group;	/* first word */
	const char *name;	/* second word; NULL for a one-word command */
	const char *synopsis;	/* positional arguments */
	const char *summary;
	const char *details;	/* NULL or more help, lines ending in \n */
	const struct opt *opts;
	size_t min_pos, max_pos;
	int (*run)(struct ctl *c, const struct args *a, struct err *e);
};

struct globals {
	const char *url;
	const char *token_file;
	int json;
	int help;
};

static const struct opt no_opts[] = { { NULL, NULL, NULL } };

static const struct opt global_opts[] = {
	{ "url", "URL", "the hub's address (default: $SWARMHUB_URL, "
	    "else " DEFAULT_URL ")" },
	{ "token-file", "FILE", "read the API token from FILE (default: "
	    "$SWARMHUB_TOKEN, else $SWARMHUB_ADMIN_TOKEN)" },
	{ "json", NULL, "print the hub's JSON instead of tables" },
	{ "help", NULL, "show help (-h; also after any command)" },
	{ NULL, NULL, NULL }
};

static const struct opt users_list_opts[] = {
	{ "inactive-since", "DURATION", "only users not active for DURATION "
	    "(90m, 12h, 30d) or never" },
	{ "group", "GROUP", "only members of GROUP" },
	{ NULL, NULL, NULL }
};

static const struct opt users_add_opts[] = {
	{ "admin", NULL, "make the new users admins" },
	{ "password-stdin", NULL, "read one password line from stdin and "
	    "set it for each new user (local auth)" },
	{ NULL, NULL, NULL }
};

static const struct opt servers_start_opts[] = {
	{ "profile", "PROFILE", "profile to start with (default: the hub's)" },
	{ "image", "IMAGE", "image key of the profile" },
	{ "cpu", "N", "CPU limit (cores, may be fractional)" },
	{ "mem-gb", "N", "memory limit in GiB (2^30 bytes)" },
	{ "gpus", "N", "number of GPUs" },
	{ "pool", "POOL", "node pool of the profile (its \"pools\")" },
	{ NULL, NULL, NULL }
};

static const struct opt servers_stop_opts[] = {
	{ "idle-for", "DURATION", "stop every server idle for DURATION "
	    "(90m, 2h, 1d) instead of naming them" },
	{ "dry-run", NULL, "with --idle-for: only show what would stop" },
	{ "remove", NULL, "named servers (NAME/SERVER): remove their records "
	    "too" },
	{ NULL, NULL, NULL }
};

static const struct opt tokens_create_opts[] = {
	{ "note", "TEXT", "what the token is for" },
	{ "expires-in", "DURATION", "lifetime (90m, 12h, 30d; default: "
	    "never expires)" },
	{ NULL, NULL, NULL }
};

static const struct opt cleanup_opts[] = {
	{ "inactive-since", "DURATION", "users not active for DURATION "
	    "(90m, 12h, 90d; never active: created that long ago)" },
	{ "not-in-ldap", NULL, "users no longer in the directory or in no "
	    "allowed group (SWARMHUB_AUTH=ldap)" },
	{ "home", "ACTION", "keep (default), archive (moved to "
	    ".archive/NAME-DATE on the home server) or delete" },
	{ "dry-run", NULL, "print the plan and stop" },
	{ "yes", NULL, "do not ask before deleting homes" },
	{ NULL, NULL, NULL }
};

static const struct opt orphans_opts[] = {
	{ "remove", NULL, "remove the orphan services (never homes)" },
	{ NULL, NULL, NULL }
};

static const struct opt homes_chown_opts[] = {
	{ "dry-run", NULL, "count what would change, change nothing" },
	{ NULL, NULL, NULL }
};

static int cmd_homes_chown(struct ctl *c, const struct args *a,
			   struct err *e);

static const struct cmd cmds[] = {
	{ "users", "list", "", "list users",
	    "Columns: NAME ADMIN GROUPS SERVER LAST-ACTIVITY (times UTC).\n",
	    users_list_opts, 0, 0, cmd_users_list },
	{ "users", "add", "NAME...", "create users",
	    "Names that already exist are skipped; if all exist, the hub "
	    "refuses (exit 1).\n",
	    users_add_opts, 1, ANY, cmd_users_add },
	{ "users", "remove", "NAME...", "delete users", NULL,
	    no_opts, 1, ANY, cmd_users_remove },
	{ "users", "set-admin", "NAME on|off", "grant or revoke admin rights",
	    NULL, no_opts, 2, 2, cmd_users_set_admin },
	{ "users", "set-password", "NAME", "set a user's password (local "
	    "auth)", "Reads one line from stdin; on a terminal, prompts twice "
	    "without echo.\n", no_opts, 1, 1, cmd_users_set_password },
	{ "servers", "list", "", "list running and pending servers",
	    "Columns: NAME STATE IMAGE STARTED LAST-ACTIVITY (times UTC);\n"
	    "NAME is the user, USER/SERVER for a named server.\n",
	    no_opts, 0, 0, cmd_servers_list },
	{ "servers", "start", "NAME[/SERVER]", "start a user's server",
	    "NAME/SERVER starts (and creates) the named server SERVER.\n"
	    "Prints \"ready\" or \"pending\" (still starting).\n",
	    servers_start_opts, 1, 1, cmd_servers_start },
	{ "servers", "stop", "[NAME[/SERVER]...]", "stop servers",
	    "Give NAMEs (NAME/SERVER: a named server) or --idle-for (every "
	    "server,\ndefault and named). Prints \"stopped\" or \"pending\" "
	    "(still stopping).\n",
	    servers_stop_opts, 0, ANY, cmd_servers_stop },
	{ "tokens", "list", "[NAME]", "list a user's API tokens",
	    "NAME defaults to the owner of the token in use.\n",
	    no_opts, 0, 1, cmd_tokens_list },
	{ "tokens", "create", "[NAME]", "create an API token",
	    "Prints the new token alone (the JSON with --json); it cannot be "
	    "shown again.\nNAME defaults to the owner of the token in use.\n",
	    tokens_create_opts, 0, 1, cmd_tokens_create },
	{ "tokens", "revoke", "[NAME] ID", "revoke an API token",
	    "NAME defaults to the owner of the token in use.\n",
	    no_opts, 1, 2, cmd_tokens_revoke },
	{ "cleanup", NULL, "[NAME...]", "remove users who left, with their "
	    "servers, tokens and homes",
	    "Pick the users with NAMEs, --inactive-since or --not-in-ldap "
	    "(one of them).\n"
	    "First prints the plan: USER SERVER TOKENS HOME; --dry-run stops "
	    "there.\n"
	    "Then, user by user: stop the server (waits up to 120 s), delete "
	    "the user\n(this revokes sessions and tokens), then the home "
	    "action; each step done is\nprinted. A failed step ends that "
	    "user's sequence with a line on stderr naming\nthe steps done "
	    "and not done; the next user goes on, and the exit status is 1.\n"
	    "--home delete asks to type \"yes\" on a terminal; without a "
	    "terminal it needs\n--yes (else exit 2). A NAME with no user but "
	    "a home nobody owns (see 'orphans')\ngets the home action only.\n"
	    "The token's own user is never picked by --inactive-since or "
	    "--not-in-ldap.\n",
	    cleanup_opts, 0, ANY, cmd_cleanup },
	{ "orphans", NULL, "", "list services and homes that no user owns",
	    "Columns: KIND NAME USER SERVER RUNNING. Services are those with "
	    "this hub's\nlabel that no running server owns; homes are "
	    "directories under SWARMHUB_HOME\nwith no user.\n"
	    "--remove deletes the orphan services, never homes: archive or "
	    "delete those\nwith 'swarmhubctl cleanup NAME... --home "
	    "archive|delete'.\n",
	    orphans_opts, 0, 0, cmd_orphans },
	{ "homes", "chown", "[NAME...]", "give each home to its user's "
	    "owner under the current settings",
	    "For switching an installation to SWARMHUB_HOME_UID=ldap (or "
	    "back): re-owns each\nuser's home and everything in it "
	    "(symlinks themselves, never their targets) to\nthe uid:gid its "
	    "server runs as now (1000:100 by default; with ldap the\n"
	    "directory's uidNumber/gidNumber, else a uid of "
	    "SWARMHUB_LOCAL_UID_RANGE), then\ngives SHARED_DIR group "
	    "HOME_GID (100) and mode 2775. NAMEs default to every\nuser. "
	    "One line per user as it is done: [i/N] NAME: N entries -> "
	    "uid:gid.\nA user whose server runs or is pending is skipped "
	    "(stop it first: it keeps the\nowner it started with) and the "
	    "exit status is 1; a user without a home is\nskipped quietly. "
	    "--dry-run counts the entries that would change.\n",
	    homes_chown_opts, 0, ANY, cmd_homes_chown },
	{ "nodes", NULL, "", "list the swarm's nodes and what this hub's "
	    "servers reserve there",
	    "Columns: HOSTNAME ROLE AVAILABILITY STATE CPUS MEM_GIB GPUS "
	    "(each reserved by\nthis hub's servers / total) FREE_CPUS "
	    "FREE_MEM_GIB FREE_GPUS (after every\ntask's reservations) "
	    "SERVERS (user or user/server of each server there)\nLABELS. "
	    "From GET /hub/api/swarmhub/nodes; --json prints its answer.\n",
	    no_opts, 0, 0, cmd_nodes },
	{ "doctor", NULL, "", "check the hub and the services it needs",
	    "Checks here that the URL answers /hub/health and that the token "
	    "works and is an\nadmin's, then asks the hub "
	    "(/hub/api/swarmhub/doctor) about PostgreSQL, Docker,\nthe "
	    "network, the profiles file, the homes and LDAP (those that "
	    "apply).\nEach check is printed with \u2713 or \u2717, its "
	    "detail, and for a failure the fix.\n"
	    "With spawning on, \"images\" names the nodes that lack a "
	    "profile image (the\nmanager's copy, compared by image ID on "
	    "every ready node: nothing is pulled).\n"
	    "Exit status 0 when every check passed, 1 otherwise.\n",
	    no_opts, 0, 0, cmd_doctor },
	{ "images", "pull", "[IMAGE...]", "pull the profiles' images on every "
	    "node",
	    "IMAGEs are image keys of the profiles or image references "
	    "(default: every image\nof the profiles). The hub runs one Swarm "
	    "job per image on every ready node,\nwith the registry "
	    "credentials (SWARMHUB_REGISTRY_AUTH), and answers when each\n"
	    "node has an outcome (at most 240 s).\n"
	    "Columns: IMAGE NODE STATUS MESSAGE; STATUS is ok, error (the "
	    "message says why:\nunauthorized, not found, ...) or unknown "
	    "(node down or drained, or no answer\nin time).\n"
	    "Exit status 0 when every node asked has every image, 1 "
	    "otherwise.\n",
	    no_opts, 0, ANY, cmd_images_pull },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

/* ---- homes chown ---------------------------------------------------- */
/* Re-owns one user's home: 0 done or no home, -1 reported. */
static int
chown_one(struct ctl *c, const char *name, size_t i, size_t n, int dry_run)
{
	char *path = rest_pathf(c, "/hub/api/swarmhub/chown/%s", name);
	json_t *body = json_pack("{s:b}", "dry_run", dry_run), *out = NULL;
	struct err e = { 0 };
	long status = 0;
	int rc = 0;

	if (rest_call(c, "POST", path, body, &out, &status, name, &e) == 0 &&
	    c->json) {
		json_print(out);
	} else if (status / 100 == 2) {
		printf("[%zu/%zu] %s: %lld entr%s %s %lld:%lld\n", i, n, name,
		    (long long)json_integer_value(json_object_get(out,
		    "changed")), json_integer_value(json_object_get(out,
		    "changed")) == 1 ? "y" : "ies", dry_run ? "would go to" :
		    "->", (long long)json_integer_value(json_object_get(out,
		    "uid")), (long long)json_integer_value(json_object_get(out,
		    "gid")));
	} else if (status == 404) {
		printf("[%zu/%zu] %s: no home, skipped\n", i, n, name);
	} else {
		printf("[%zu/%zu] %s: skipped\n", i, n, name);
		ctl_report(&e);
		rc = -1;
	}
	fflush(stdout);
	json_decref(out);
	json_decref(body);
	free(path);
	return rc;
}

static int
chown_shared(struct ctl *c, int dry_run)
{
	json_t *body = json_pack("{s:b}", "dry_run", dry_run), *out = NULL;
	struct err e = { 0 };
	long status = 0;
	int rc = 0;

	if (rest_call(c, "POST", "/hub/api/swarmhub/chown-shared", body, &out,
		      &status, "shared directory", &e) == 0 && c->json) {
		json_print(out);
	} else if (status / 100 == 2) {
		int changed = json_integer_value(json_object_get(out,
		    "changed")) != 0;

		printf("shared %s: %s group %lld, mode 2775\n",
		    json_str(out, "shared"), !changed ? "already" : dry_run ?
		    "would get" : "now", (long long)json_integer_value(
		    json_object_get(out, "gid")));
	} else if (status != 404) {
		ctl_report(&e);
		rc = -1;
	}
	json_decref(out);
	json_decref(body);
	return rc;
}

static int
cmd_homes_chown(struct ctl *c, const struct args *a, struct err *e)
{
	int dry_run = args_get(a, "dry-run") != NULL, failed = 0;
	json_t *users = NULL, *u;
	size_t i, n;

	if (a->npos == 0) {
		if (rest_get_all(c, "/hub/api/users", NULL, &users, "users",
				 e) < 0)
			return -1;
		n = json_array_size(users);
		json_array_foreach(users, i, u)
			failed |= chown_one(c, json_str(u, "name"), i + 1, n,
					    dry_run) < 0;
		json_decref(users);
	} else {
		for (i = 0; i < a->npos; i++)
			failed |= chown_one(c, a->pos[i], i + 1, a->npos,
					    dry_run) < 0;
	}
	failed |= chown_shared(c, dry_run) < 0;
	return failed ? CTL_REPORTED : 0;
}

static const char exit_help[] =
    "Exit status: 0 success, 1 failure (network, or an error from the hub),\n"
    "2 usage error (unknown command or option, missing argument).\n";

/* "users add" for help hints; set as the parser recognizes words. */
static char hint[64] = "";

int
usage_err(struct err *e, const char *fmt, ...)
{
	va_list ap;

	e->code = ERR_INVALID;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return CTL_USAGE;
}

void
ctl_report(const struct err *e)
{
	fprintf(stderr, PROG ": %s\n", e->msg);
}

const char *
args_get(const struct args *a, const char *name)
{
	size_t i;

	for (i = 0; a->opts[i].name != NULL; i++)
		if (strcmp(a->opts[i].name, name) == 0)
			return a->val[i];
	return NULL;
}

/* ---- help ------------------------------------------------------------ */

/* Prints text from column indent, wrapped before column 80. */
static void
wrap_print(const char *text, int indent)
{
	const char *p = text, *sp;
	int col = indent, len;

	while (*p != '\0') {
		sp = strchr(p, ' ');
		len = sp ? (int)(sp - p) : (int)strlen(p);
		if (col > indent && col + 1 + len > 79) {
			printf("\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			putchar(' ');
			col++;
		}
		printf("%.*s", len, p);
		col += len;
		p += len;
		while (*p == ' ')
			p++;
	}
	putchar('\n');
}

static void
opts_print(const struct opt *o)
{
	char buf[40];

	for (; o->name != NULL; o++) {
		snprintf(buf, sizeof(buf), "--%s%s%s", o->name,
		    o->arg ? " " : "", o->arg ? o->arg : "");
		printf("  %-22s ", buf);
		wrap_print(o->help, 25);
	}
}

static void
synopsis_print(const struct cmd *c)
{
	const struct opt *o;

	printf(PROG " %s%s%s", c->group, c->name ? " " : "",
	    c->name ? c->name : "");
	if (*c->synopsis)
		printf(" %s", c->synopsis);
	for (o = c->opts; o->name != NULL; o++)
		printf(" [--%s%s%s]", o->name, o->arg ? " " : "",
		    o->arg ? o->arg : "");
	putchar('\n');
}

static void
help_program(void)
{
	char buf[40];
	size_t i;

	printf("usage: " PROG " [--url URL] [--token-file FILE] [--json] "
	    "COMMAND [ARGS]\n\n"
	    "Administer a swarmhub through its REST API (/hub/api).\n\n"
	    "Commands:\n");
	for (i = 0; i < NCMDS; i++) {
		snprintf(buf, sizeof(buf), "%s%s%s %s", cmds[i].group,
		    cmds[i].name ? " " : "", cmds[i].name ? cmds[i].name : "",
		    cmds[i].synopsis);
		printf("  %-28s ", buf);
		wrap_print(cmds[i].summary, 31);
	}
	printf("\nGlobal options:\n");
	opts_print(global_opts);
	printf("\nThe token is sent as \"Authorization: token ...\"; "
	    "admin commands need an admin token.\n"
	    "Run '" PROG " COMMAND --help' for a command's options.\n\n%s",
	    exit_help);
}

static void
help_group(const char *group)
{
	size_t i;

	printf("usage: " PROG " %s COMMAND [ARGS]\n\nCommands:\n", group);
	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].group, group) == 0) {
			printf("  ");
			synopsis_print(&cmds[i]);
			printf("      %s\n", cmds[i].summary);
		}
	printf("\nRun '" PROG " %s COMMAND --help' for details.\n\n%s",
	    group, exit_help);
}

static void
help_cmd(const struct cmd *c)
{
	printf("usage: ");
	synopsis_print(c);
	printf("\n%c%s.\n", toupper((unsigned char)c->summary[0]),
	    c->summary + 1);
	if (c->details)
		printf("%s", c->details);
	if (c->opts[0].name != NULL) {
		printf("\nOptions:\n");
		opts_print(c->opts);
	}
	printf("\nGlobal options:\n");
	opts_print(global_opts);
	printf("\n%s", exit_help);
}

/* ---- parsing --------------------------------------------------------- */

/* Index of the option named by the len bytes at name, or -1. */
static long
opt_find(const struct opt *opts, const char *name, size_t len)
{
	long k;

	for (k = 0; opts[k].name != NULL; k++)
		if (strlen(opts[k].name) == len &&
		    strncmp(opts[k].name, name, len) == 0)
			return k;
	return -1;
}

static void
global_set(struct globals *g, const char *name, const char *val)
{
	if (strcmp(name, "url") == 0)
		g->url = val;
	else if (strcmp(name, "token-file") == 0)
		g->token_file = val;
	else if (strcmp(name, "json") == 0)
		g->json = 1;
	else if (strcmp(name, "help") == 0)
		g->help = 1;
}

/* Takes argv[*i] (and its value) as a command option when a is not NULL
 * and it names one, else as a global option. */
static int
opt_take(int argc, char **argv, int *i, struct args *a, struct globals *g,
	 struct err *e)
{
	const char *arg = argv[*i], *eq, *val = "";
	const struct opt *o;
	size_t len;
	long k = -1;
	int global = 0;

	if (strcmp(arg, "-h") == 0) {
		g->help = 1;
		return 0;
	}
	if (strncmp(arg, "--", 2) != 0)
		return usage_err(e, "unknown option '%s'", arg);
	eq = strchr(arg + 2, '=');
	len = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
	if (a != NULL)
		k = opt_find(a->opts, arg + 2, len);
	if (k < 0) {
		global = 1;
		k = opt_find(global_opts, arg + 2, len);
	}
	if (k < 0)
		return usage_err(e, "unknown option '%.*s'", (int)len + 2, arg);
	o = global ? &global_opts[k] : &a->opts[k];
	if (o->arg == NULL && eq != NULL)
		return usage_err(e, "option '--%s' takes no value", o->name);
	if (o->arg != NULL && eq == NULL && *i + 1 >= argc)
		return usage_err(e, "option '--%s' needs a value", o->name);
	if (o->arg != NULL)
		val = eq ? eq + 1 : argv[++*i];
	if (global)
		global_set(g, o->name, val);
	else
		a->val[k] = val;
	return 0;
}

static int
is_opt(const char *s)
{
	return s[0] == '-' && s[1] != '\0';
}

/* Parses argv[*i...] as options and positional arguments (into a when not
 * NULL; positional arguments are an error when a is NULL). */
static int
rest_parse(int argc, char **argv, int i, struct args *a, struct globals *g,
	   struct err *e)
{
	int only_pos = 0;

	for (; i < argc; i++) {
		if (!only_pos && strcmp(argv[i], "--") == 0)
			only_pos = 1;
		else if (!only_pos && is_opt(argv[i])) {
			if (opt_take(argc, argv, &i, a, g, e) < 0)
				return CTL_USAGE;
		} else if (a != NULL)
			a->pos[a->npos++] = argv[i];
		else
			return usage_err(e, "unexpected argument '%s'",
			    argv[i]);
	}
	return 0;
}

static const struct cmd *
cmd_find(const char *group, const char *name)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strcmp(cmds[i].group, group) == 0 &&
		    (name == NULL || cmds[i].name == NULL ||
		     strcmp(cmds[i].name, name) == 0))
			return &cmds[i];
	return NULL;
}

/* Finds the command named at argv[*i...]; *cmdp NULL for a group whose
 * subcommand is missing (only an error without --help). */
static int
words_parse(int argc, char **argv, int *i, const struct cmd **cmdp,
	    struct err *e)
{
	const char *group = argv[*i];
	const struct cmd *c;

	*cmdp = NULL;
	c = cmd_find(group, NULL);
	if (c == NULL)
		return usage_err(e, "unknown command '%s'", group);
	snprintf(hint, sizeof(hint), "%s", c->group);
	++*i;
	if (c->name == NULL) {
		*cmdp = c;
		return 0;
	}
	if (*i >= argc || is_opt(argv[*i]))
		return 0;
	c = cmd_find(group, argv[*i]);
	if (c == NULL)
		return usage_err(e, "unknown command '%s %s'", group,
		    argv[*i]);
	snprintf(hint, sizeof(hint), "%s %s", c->group, c->name);
	++*i;
	*cmdp = c;
	return 0;
}

/* Returns 0 to run *cmdp, 1 when help was printed, or CTL_USAGE. */
static int
parse(int argc, char **argv, struct globals *g, const struct cmd **cmdp,
      struct args *a, struct err *e)
{
	int i = 1;

	for (; i < argc && is_opt(argv[i]) && strcmp(argv[i], "--") != 0; i++)
		if (opt_take(argc, argv, &i, NULL, g, e) < 0)
			return CTL_USAGE;
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	if (i >= argc) {
		if (!g->help)
			return usage_err(e, "missing command");
		help_program();
		return 1;
	}
	if (words_parse(argc, argv, &i, cmdp, e) < 0)
		return CTL_USAGE;
	if (*cmdp == NULL) {
		if (rest_parse(argc, argv, i, NULL, g, e) < 0)
			return CTL_USAGE;
		if (!g->help)
			return usage_err(e, "missing command after '%s'",
			    argv[i - 1]);
		help_group(argv[i - 1]);
		return 1;
	}
	a->opts = (*cmdp)->opts;
	a->pos = xcalloc((size_t)argc, sizeof(*a->pos));
	if (rest_parse(argc, argv, i, a, g, e) < 0)
		return CTL_USAGE;
	if (g->help) {
		help_cmd(*cmdp);
		return 1;
	}
	if (a->npos < (*cmdp)->min_pos)
		return usage_err(e, "missing argument (expected %s)",
		    (*cmdp)->synopsis);
	if (a->npos > (*cmdp)->max_pos)
		return usage_err(e, "unexpected argument '%s'",
		    a->pos[(*cmdp)->max_pos]);
	return 0;
}

/* ---- setup ----------------------------------------------------------- */

static int
token_file_read(const char *path, char **out, struct err *e)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	const char *why = NULL;

	f = fopen(path, "r");
	if (f == NULL)
		return err_set(e, ERR_INVALID, "read token file '%s': %s",
		    path, strerror(errno));
	if (getline(&line, &cap, f) < 0)
		why = ferror(f) ? strerror(errno) : "empty";
	else if (*str_trim(line) == '\0')
		why = "empty";
	fclose(f);
	if (why == NULL)
		*out = xstrdup(line);
	if (line != NULL)
		explicit_bzero(line, cap);
	free(line);
	if (why != NULL)
		return err_set(e, ERR_INVALID, "read token file '%s': %s",
		    path, why);
	return 0;
}

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

static int
token_get(const struct globals *g, char **out, struct err *e)
{
	const char *v, *p;

	*out = NULL;
	v = env("SWARMHUB_TOKEN");
	if (v == NULL)
		v = env("SWARMHUB_ADMIN_TOKEN");
	if (g->token_file != NULL) {
		if (token_file_read(g->token_file, out, e) < 0)
			return -1;
	} else if (v != NULL)
		*out = xstrdup(v);
	else
		return usage_err(e, "no API token: use --token-file FILE, or "
		    "set SWARMHUB_TOKEN or SWARMHUB_ADMIN_TOKEN");
	for (p = *out; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f) {
			free(*out);
			*out = NULL;
			return usage_err(e, "the API token contains spaces "
			    "or control characters");
		}
	return 0;
}

static int
ctl_open(struct ctl *c, const struct globals *g, struct err *e)
{
	const char *url = g->url;
	size_t n;
	int rc;

	if (url == NULL)
		url = env("SWARMHUB_URL");
	if (url == NULL)
		url = DEFAULT_URL;
	if (strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "https://", 8) != 0)
		return usage_err(e, "bad URL '%.100s': it must start with "
		    "http:// or https://", url);
	n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	c->url = xstrndup(url, n);
	c->json = g->json;
	rc = token_get(g, &c->token, e);
	if (rc < 0)
		return rc;
	return rest_init(c, e);
}

static void
ctl_close(struct ctl *c)
{
	rest_release(c);
	if (c->token != NULL)
		explicit_bzero(c->token, strlen(c->token));
	free(c->token);
	free(c->url);
}

int
main(int argc, char **argv)
{
	struct globals g = { NULL, NULL, 0, 0 };
	struct ctl c = { NULL, NULL, 0, NULL };
	struct args a = { NULL, 0, no_opts, { NULL } };
	const struct cmd *cmd = NULL;
	struct err e = { ERR_OK, "" };
	int rc;

	rc = parse(argc, argv, &g, &cmd, &a, &e);
	if (rc == 0) {
		rc = ctl_open(&c, &g, &e);
		if (rc < 0)	/* setup errors concern global options */
			*hint = '\0';
	}
	if (rc == 0)
		rc = cmd->run(&c, &a, &e);
	ctl_close(&c);
	free(a.pos);
	if (rc == CTL_USAGE)
		fprintf(stderr, PROG ": %s (see '" PROG "%s%s --help')\n",
		    e.msg, *hint ? " " : "", hint);
	else if (rc == -1)
		ctl_report(&e);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, PROG ": write output: %s\n", strerror(errno));
		return 1;
	}
	if (rc == CTL_USAGE)
		return 2;
	return rc < 0 ? 1 : 0;
}
