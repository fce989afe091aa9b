/*
 * pages_admin.c - the admin page (/hub/admin) and the API token page
 * (/hub/token).
 *
 * The users table is rendered from memory under the state's read lock:
 * one pass filters (?q=, a substring of the name or of a group), the
 * matches are sorted by a copied key (?sort=name|last_activity|state) and
 * one page of 50 (?page=) is written, so the page stays fast with tens of
 * thousands of users. Actions (stop, delete, set admin, add users) and
 * token creation and revocation are done by app.js through the REST API
 * with the X-XSRFToken header; the pages only render.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "web.h"

#define ADMIN_PAGE_SIZE 50
#define AUDIT_ROWS 20

/* ---- the users table ------------------------------------------------- */
enum sort_key { SORT_NAME, SORT_ACTIVITY, SORT_STATE };

struct row {
	const struct user *u;
	int64_t activity_ms;
	int state_rank;
};

static int
cmp_name(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	return strcmp(x->u->name, y->u->name);
}

static int
cmp_activity(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->activity_ms != y->activity_ms)
		return x->activity_ms < y->activity_ms ? 1 : -1;
	return cmp_name(a, b);
}

static int
cmp_state(const void *a, const void *b)
{
	const struct row *x = a, *y = b;

	if (x->state_rank != y->state_rank)
		return x->state_rank - y->state_rank;
	return cmp_name(a, b);
}

static int
state_rank(const struct server *s)
{
	static const int rank[] = { 3, 1, 0, 2 };	/* running first */

	return s ? rank[s->state] : 3;
}

/* q: lowercase; matches a part of the name or of a group. */
static int
matches(const struct user *u, const char *q)
{
	if (*q == '\0' || strstr(u->name, q))
		return 1;
	for (size_t i = 0; i < u->ngroups; i++)
		if (strcasestr(u->groups[i], q))
			return 1;
	return 0;
}

/* Rows matching q, sorted; caller holds the read lock, frees the array. */
static struct row *
select_rows(struct state *st, const char *q, enum sort_key key, size_t *n)
{
	struct row *v = xcalloc(st->nusers + 1, sizeof(*v));
	int (*cmp)(const void *, const void *) = key == SORT_ACTIVITY ?
	    cmp_activity : key == SORT_STATE ? cmp_state : cmp_name;

	*n = 0;
	for (size_t i = 0; i < st->nusers; i++) {
		const struct user *u = st->user_list[i];

		if (!matches(u, q))
			continue;
		v[*n].u = u;
		v[*n].activity_ms = __atomic_load_n(&u->last_activity_ms,
						    __ATOMIC_RELAXED);
		v[*n].state_rank = state_rank(u->server);
		(*n)++;
	}
	qsort(v, *n, sizeof(*v), cmp);
	return v;
}

static void
user_actions(struct strbuf *sb, const struct user *u, const struct who *w)
{
	const struct server *s = u->server;
	enum srv_state st = s ? s->state : SRV_STOPPED;

	sb_adds(sb, "<td class=\"row-actions\">");
	if (st == SRV_STOPPED) {
		sb_adds(sb, "<a class=\"button small\" href=\"/hub/spawn/");
		sb_add_html(sb, u->name);
		sb_adds(sb, "\">Start</a>");
	} else {
		sb_adds(sb, "<button type=\"button\" class=\"small danger\" "
			"data-action=\"stop\" data-user=\"");
		sb_add_html(sb, u->name);
		sb_adds(sb, "\">Stop</button>");
	}
	sb_addf(sb, "<button type=\"button\" class=\"small secondary\" "
		"data-action=\"admin\" data-value=\"%s\" data-user=\"",
		u->admin ? "false" : "true");
	sb_add_html(sb, u->name);
	sb_addf(sb, "\">%s</button>", u->admin ? "Remove admin" :
		"Make admin");
	if (strcmp(u->name, w->name) != 0) {
		sb_adds(sb, "<button type=\"button\" class=\"small secondary\" "
			"data-action=\"delete\" data-user=\"");
		sb_add_html(sb, u->name);
		sb_adds(sb, "\">Delete</button>");
	}
	sb_adds(sb, "</td>");
}

/* What the server uses, from Docker's stats (usage.c). */
static void
used_cell(struct strbuf *sb, const struct hub *h, const struct server *s,
	  int64_t now)
{
	int64_t mem;
	double cpu;

	if (s == NULL || s->state != SRV_RUNNING) {
		sb_adds(sb, "&mdash;");
		return;
	}
	if (h->spawner == NULL || h->cfg.usage_every_s <= 0) {
		sb_adds(sb, "not sampled");
		return;
	}
	if (usage_get(s, now, h->cfg.usage_every_s, &cpu, &mem) < 0) {
		/* not yet, or its container runs on another node */
		sb_adds(sb, "no sample yet");
		return;
	}
	pages_add_usage(sb, cpu, mem);
}

/* The profile / image, limits and usage cells of a server's row (s may be
 * NULL), up to the opening of the activity cell. */
static void
server_cells(struct strbuf *sb, const struct hub *h, const struct server *s,
	     int64_t now)
{
	if (s && s->has_opts && s->state != SRV_STOPPED) {
		sb_add_html(sb, s->opts.profile);
		sb_adds(sb, " / ");
		sb_add_html(sb, s->opts.image);
		sb_addf(sb, "</td><td>%g CPU, %.4g GiB", s->opts.cpu,
			s->opts.mem_gb);
		if (s->opts.gpus)
			sb_addf(sb, ", %d GPU", s->opts.gpus);
	} else {
		sb_adds(sb, "&mdash;</td><td>&mdash;");
	}
	sb_adds(sb, "</td><td class=\"used\">");
	used_cell(sb, h, s, now);
	sb_adds(sb, "</td><td>");
}

/* A named server of u, in the row under u's. */
static void
named_row(struct strbuf *sb, const struct hub *h, const struct user *u,
	  const struct server *s, int64_t now)
{
	const char *word = pages_state_word(s->state);

	sb_adds(sb, "<tr class=\"named-server\" data-user=\"");
	sb_add_html(sb, u->name);
	sb_adds(sb, "\" data-server=\"");
	sb_add_html(sb, s->name);
	sb_adds(sb, "\"><th scope=\"row\">&#8627; ");
	sb_add_html(sb, u->name);
	sb_addc(sb, '/');
	sb_add_html(sb, s->name);
	sb_addf(sb, "</th><td></td><td></td><td><span class=\"badge %s\">%s"
		"</span></td><td>", word, word);
	server_cells(sb, h, s, now);
	pages_add_ago(sb, __atomic_load_n(&s->last_activity_ms,
					  __ATOMIC_RELAXED), now);
	sb_adds(sb, "</td><td class=\"row-actions\">");
	if (s->state == SRV_STOPPED) {
		sb_adds(sb, "<a class=\"button small\" href=\"/hub/spawn/");
		sb_add_html(sb, u->name);
		sb_addc(sb, '/');
		sb_add_html(sb, s->name);
		sb_adds(sb, "\">Start</a>");
	} else {
		sb_adds(sb, "<button type=\"button\" class=\"small danger\" "
			"data-action=\"stop-named\" data-user=\"");
		sb_add_html(sb, u->name);
		sb_adds(sb, "\" data-server=\"");
		sb_add_html(sb, s->name);
		sb_adds(sb, "\">Stop</button>");
	}
	sb_adds(sb, "</td></tr>");
}

static void
user_row(struct strbuf *sb, const struct hub *h, const struct row *row,
	 const struct who *w, int64_t now)
{
	const struct user *u = row->u;
	const struct server *s = u->server;
	const char *word = pages_state_word(s ? s->state : SRV_STOPPED);

	sb_adds(sb, "<tr data-user=\"");
	sb_add_html(sb, u->name);
	sb_adds(sb, "\"><th scope=\"row\">");
	sb_add_html(sb, u->name);
	sb_addf(sb, "</th><td>%s</td><td>", u->admin ? "yes" : "no");
	for (size_t i = 0; i < u->ngroups; i++) {
		sb_adds(sb, i ? ", " : "");
		sb_add_html(sb, u->groups[i]);
	}
	sb_addf(sb, "</td><td><span class=\"badge %s\">%s</span></td><td>",
		word, word);
	server_cells(sb, h, s, now);
	pages_add_ago(sb, row->activity_ms, now);
	sb_adds(sb, "</td>");
	user_actions(sb, u, w);
	sb_adds(sb, "</tr>");
	for (size_t i = 0; i < u->nnamed; i++)
		named_row(sb, h, u, u->named[i], now);
}

/* A link to another page of the table with the same search and sort. */
static void
page_link(struct strbuf *sb, const char *q, const char *sort, long page,
	  const char *rel, const char *text)
{
	sb_addf(sb, "<a class=\"button secondary\" rel=\"%s\" href=\"/hub/admin"
		"?page=%ld&amp;sort=", rel, page);
	pages_add_urlenc(sb, sort);
	if (*q) {
		sb_adds(sb, "&amp;q=");
		pages_add_urlenc(sb, q);
	}
	sb_addf(sb, "\">%s</a>", text);
}

static void
search_form(struct strbuf *sb, const char *q, const char *sort)
{
	static const char *const keys[] = { "name", "last_activity", "state",
					    NULL };
	static const char *const labels[] = { "Name", "Last activity (newest "
		"first)", "Server state (running first)", NULL };

	sb_adds(sb, "<form class=\"search\" method=\"get\" action=\"/hub/admin\""
		" role=\"search\"><div class=\"field\"><label for=\"q\">Search "
		"users (name or group)</label><input type=\"search\" id=\"q\" "
		"name=\"q\" value=\"");
	sb_add_html(sb, q);
	sb_adds(sb, "\"></div><div class=\"field\"><label for=\"sort\">Sort by"
		"</label><select id=\"sort\" name=\"sort\">");
	for (size_t i = 0; keys[i]; i++)
		sb_addf(sb, "<option value=\"%s\"%s>%s</option>", keys[i],
			strcmp(sort, keys[i]) == 0 ? " selected" : "", labels[i]);
	sb_adds(sb, "</select></div><button type=\"submit\">Search</button>"
		"</form>");
}

static void
users_table(struct strbuf *sb, struct hub *h, const struct who *w,
	    const char *q, const char *sort, long page)
{
	enum sort_key key = strcmp(sort, "last_activity") == 0 ?
	    SORT_ACTIVITY : strcmp(sort, "state") == 0 ? SORT_STATE : SORT_NAME;
	int64_t now = time_now_ms();
	struct row *rows;
	size_t n, first, end;
	long pages;

	pthread_rwlock_rdlock(&h->state.lock);
	rows = select_rows(&h->state, q, key, &n);
	pages = n ? (long)((n + ADMIN_PAGE_SIZE - 1) / ADMIN_PAGE_SIZE) : 1;
	if (page > pages)
		page = pages;
	first = (size_t)(page - 1) * ADMIN_PAGE_SIZE;
	end = first + ADMIN_PAGE_SIZE < n ? first + ADMIN_PAGE_SIZE : n;
	sb_addf(sb, "<p id=\"count\">%zu %s. Page %ld of %ld.</p>", n,
		n == 1 ? (*q ? "user matches" : "user") :
		(*q ? "users match" : "users"), page, pages);
	sb_adds(sb, "<div class=\"table-wrap\" tabindex=\"0\" role=\"region\" "
		"aria-labelledby=\"users-h\"><table id=\"users\"><thead><tr>"
		"<th scope=\"col\">Name</th><th scope=\"col\">Admin</th>"
		"<th scope=\"col\">Groups</th><th scope=\"col\">Server</th>"
		"<th scope=\"col\">Profile / image</th><th scope=\"col\">"
		"Requested</th><th scope=\"col\">Used</th>"
		"<th scope=\"col\">Last activity</th>"
		"<th scope=\"col\">Actions</th></tr></thead><tbody>");
	for (size_t i = first; i < end; i++)
		user_row(sb, h, &rows[i], w, now);
	pthread_rwlock_unlock(&h->state.lock);
	free(rows);
	sb_adds(sb, "</tbody></table></div><nav class=\"pager\" "
		"aria-label=\"Pages\">");
	if (page > 1)
		page_link(sb, q, sort, page - 1, "prev", "Previous page");
	if (page < pages)
		page_link(sb, q, sort, page + 1, "next", "Next page");
	sb_adds(sb, "</nav>");
}

/* ---- quotas ---------------------------------------------------------- */
static void
add_groups(char ***v, size_t *n, const struct user *u)
{
	for (size_t i = 0; i < u->ngroups; i++) {
		size_t k;

		for (k = 0; k < *n && strcmp((*v)[k], u->groups[i]); k++)
			;
		if (k < *n)
			continue;
		*v = xrealloc(*v, (*n + 2) * sizeof(**v));
		(*v)[(*n)++] = xstrdup(u->groups[i]);
		(*v)[*n] = NULL;
	}
}

/* Profiles of every group some user is in (and default), as JSON. */
static json_t *
all_profiles(struct hub *h)
{
	char **groups = xcalloc(1, sizeof(*groups));
	size_t n = 0;
	char *text;
	json_t *j;

	pthread_rwlock_rdlock(&h->state.lock);
	for (size_t i = 0; i < h->state.nusers && n < 1000; i++)
		add_groups(&groups, &n, h->state.user_list[i]);
	pthread_rwlock_unlock(&h->state.lock);
	text = spawner_profiles_json(h->spawner, (const char *const *)groups,
				     n);
	strv_free(groups);
	j = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	return j;
}

static void
quota_cell(struct strbuf *sb, double used, json_t *limit)
{
	sb_addf(sb, "<td>%g", used);
	if (json_is_number(limit))
		sb_addf(sb, " of %g", json_number_value(limit));
	sb_adds(sb, "</td>");
}

static void
quota_table(struct strbuf *sb, struct hub *h)
{
	json_t *j, *p;
	size_t i;

	sb_adds(sb, "<section class=\"card\" aria-labelledby=\"quota-h\">"
		"<h2 id=\"quota-h\">Quota use by group</h2>");
	if (h->spawner == NULL) {
		sb_adds(sb, "<p class=\"notice\">Starting servers is not set "
			"up on this hub (SWARMHUB_NETWORK, SWARMHUB_PROFILES)."
			"</p></section>");
		return;
	}
	j = all_profiles(h);
	sb_adds(sb, "<div class=\"table-wrap\"><table id=\"quotas\"><thead><tr>"
		"<th scope=\"col\">Profile (group)</th><th scope=\"col\">"
		"Servers</th><th scope=\"col\">CPUs</th><th scope=\"col\">"
		"Memory (GiB)</th><th scope=\"col\">GPUs</th></tr></thead>"
		"<tbody>");
	json_array_foreach(json_object_get(j, "profiles"), i, p) {
		const char *name = json_string_value(json_object_get(p,
								     "name"));
		json_t *q = json_object_get(p, "quota");
		struct servers_usage use;

		servers_usage_of(h, name, &use);
		sb_adds(sb, "<tr><th scope=\"row\">");
		sb_add_html(sb, name);
		sb_adds(sb, "</th>");
		quota_cell(sb, (double)use.servers, json_object_get(q,
								    "servers"));
		quota_cell(sb, use.cpu, json_object_get(q, "cpu"));
		quota_cell(sb, use.mem_gb, json_object_get(q, "mem_gb"));
		quota_cell(sb, (double)use.gpus, json_object_get(q, "gpus"));
		sb_adds(sb, "</tr>");
	}
	sb_adds(sb, "</tbody></table></div><p class=\"hint\">&ldquo;of N&rdquo;"
		" is the group&rsquo;s quota; no number means no limit.</p>"
		"</section>");
	json_decref(j);
}

/* ---- audit log ------------------------------------------------------- */
struct audit_ctx {
	struct strbuf *sb;
	int64_t now;
	int n;
};

static int
audit_row(void *ctx, const struct store_audit *a)
{
	struct audit_ctx *c = ctx;

	sb_adds(c->sb, "<tr><td>");
	pages_add_ago(c->sb, a->ts_ms, c->now);
	sb_adds(c->sb, "</td><td>");
	sb_add_html(c->sb, *a->actor ? a->actor : "anonymous");
	sb_adds(c->sb, "</td><td>");
	sb_add_html(c->sb, a->action);
	sb_adds(c->sb, "</td><td>");
	sb_add_html(c->sb, a->target);
	sb_adds(c->sb, "</td><td>");
	sb_add_html(c->sb, a->ip);
	sb_adds(c->sb, "</td></tr>");
	c->n++;
	return 0;
}

static void
audit_table(struct strbuf *sb, struct hub *h)
{
	struct audit_ctx c = { sb, time_now_ms(), 0 };
	struct err e = { 0 };

	sb_adds(sb, "<section class=\"card\" aria-labelledby=\"audit-h\">"
		"<h2 id=\"audit-h\">Recent activity (audit log)</h2>"
		"<div class=\"table-wrap\"><table id=\"audit\"><thead><tr>"
		"<th scope=\"col\">When</th><th scope=\"col\">Who</th>"
		"<th scope=\"col\">Action</th><th scope=\"col\">Target</th>"
		"<th scope=\"col\">Address</th></tr></thead><tbody>");
	if (store_audit_list(h->store, AUDIT_ROWS, audit_row, &c, &e) < 0) {
		sb_adds(sb, "<tr><td colspan=\"5\">The audit log cannot be "
			"read now: ");
		sb_add_html(sb, e.msg);
		sb_adds(sb, "</td></tr>");
	} else if (c.n == 0) {
		sb_adds(sb, "<tr><td colspan=\"5\">No entries yet.</td></tr>");
	}
	sb_adds(sb, "</tbody></table></div></section>");
}

static void
add_users_form(struct strbuf *sb)
{
	sb_adds(sb, "<section class=\"card\" aria-labelledby=\"add-h\">"
		"<h2 id=\"add-h\">Add users</h2><form id=\"add-users\">"
		"<div class=\"field\"><label for=\"usernames\">Usernames (one "
		"per line)</label><textarea id=\"usernames\" name=\"usernames\" "
		"rows=\"4\" required autocapitalize=\"off\" spellcheck=\"false\">"
		"</textarea></div><div class=\"choice\"><input type=\"checkbox\" "
		"id=\"new-admin\" name=\"admin\"><label for=\"new-admin\">Make "
		"them administrators</label></div><button type=\"submit\">Add "
		"users</button></form></section>");
}

void
pages_admin(struct req *r)
{
	struct strbuf sb;
	struct who w;
	const char *qs = req_query(r, "q"), *sort = req_query(r, "sort");
	const char *ps = req_query(r, "page");
	char q[128];
	long page = 1;

	r->handler = "admin";
	if (pages_signed_in_admin(r, &w) < 0)
		return;
	snprintf(q, sizeof(q), "%s", qs && str_utf8_ok(qs, strlen(qs)) ?
		 qs : "");
	str_trim(q);
	for (char *p = q; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	if (sort == NULL || (strcmp(sort, "last_activity") &&
			     strcmp(sort, "state")))
		sort = "name";
	if (ps && str_to_long(ps, 1, 1L << 30, &page, "page", NULL) < 0)
		page = 1;
	sb_init(&sb);
	pages_begin(&sb, r->hub, "Admin", &w, PAGE_WIDE);
	sb_adds(&sb, "<h1>Administration</h1><p><a id=\"nodes-link\" "
		"href=\"/hub/admin/nodes\">Nodes of the swarm</a></p>");
	sb_adds(&sb, "<p id=\"flash\" role=\"status\" "
		"aria-live=\"polite\" hidden></p><section class=\"card\" "
		"aria-labelledby=\"users-h\"><h2 id=\"users-h\">Users</h2>");
	search_form(&sb, q, sort);
	users_table(&sb, r->hub, &w, q, sort, page);
	sb_adds(&sb, "</section>");
	add_users_form(&sb);
	quota_table(&sb, r->hub);
	audit_table(&sb, r->hub);
	pages_end(r, &sb, 200);
}

/* ---- tokens ---------------------------------------------------------- */
static void
token_row(struct strbuf *sb, const struct token *t, int64_t now)
{
	sb_addf(sb, "<tr data-token=\"a%lld\"><td>", (long long)t->id);
	sb_add_html(sb, *t->note ? t->note : "(no note)");
	sb_adds(sb, "</td><td>");
	pages_add_time(sb, t->created_ms, now);
	sb_adds(sb, "</td><td>");
	pages_add_time(sb, __atomic_load_n(&t->last_used_ms,
					   __ATOMIC_RELAXED), now);
	sb_adds(sb, "</td><td>");
	if (t->expires_ms)
		pages_add_time(sb, t->expires_ms, 0);
	else
		sb_adds(sb, "never");
	sb_addf(sb, "</td><td><button type=\"button\" class=\"small danger\" "
		"data-action=\"revoke\" data-token=\"a%lld\">Revoke</button>"
		"</td></tr>", (long long)t->id);
}

static void
token_list(struct strbuf *sb, struct hub *h, const char *user)
{
	int64_t now = time_now_ms();
	struct token **mine;
	size_t n, shown = 0;

	sb_adds(sb, "<div class=\"table-wrap\"><table id=\"tokens\"><thead><tr>"
		"<th scope=\"col\">Note</th><th scope=\"col\">Created</th>"
		"<th scope=\"col\">Last used</th><th scope=\"col\">Expires</th>"
		"<th scope=\"col\">Actions</th></tr></thead><tbody>");
	pthread_rwlock_rdlock(&h->state.lock);
	mine = state_tokens_of(&h->state, user, &n);
	for (size_t i = n; i-- > 0; ) {
		if (mine[i]->expires_ms && mine[i]->expires_ms <= now)
			continue;
		token_row(sb, mine[i], now);
		shown++;
	}
	pthread_rwlock_unlock(&h->state.lock);
	free(mine);
	sb_adds(sb, "</tbody></table></div>");
	sb_addf(sb, "<p id=\"no-tokens\"%s>You have no API tokens.</p>",
		shown ? " hidden" : "");
}

static void
token_form(struct strbuf *sb)
{
	sb_adds(sb, "<form id=\"token-form\"><div class=\"row\">"
		"<div class=\"field\"><label for=\"note\">Note (what the token "
		"is for)</label><input type=\"text\" id=\"note\" name=\"note\" "
		"maxlength=\"1000\"></div><div class=\"field\"><label "
		"for=\"expires\">Expires</label><select id=\"expires\" "
		"name=\"expires_in\"><option value=\"\">Never</option>"
		"<option value=\"3600\">In 1 hour</option>"
		"<option value=\"86400\">In 1 day</option>"
		"<option value=\"604800\">In 7 days</option>"
		"<option value=\"2592000\" selected>In 30 days</option>"
		"<option value=\"7776000\">In 90 days</option>"
		"<option value=\"31536000\">In 1 year</option></select></div>"
		"</div><button type=\"submit\">Create token</button></form>"
		"<div id=\"new-token\" class=\"notice\" hidden><p><strong>Your "
		"new token</strong> (copy it now: it is shown only once):</p>"
		"<p><code id=\"new-token-value\"></code></p></div>"
		"<p id=\"token-msg\" role=\"status\" aria-live=\"polite\" "
		"hidden></p>");
}

void
pages_token(struct req *r)
{
	struct strbuf sb;
	struct who w;

	r->handler = "token";
	if (pages_signed_in(r, &w) < 0)
		return;
	sb_init(&sb);
	pages_begin(&sb, r->hub, "API tokens", &w, 0);
	sb_adds(&sb, "<h1>API tokens</h1><section class=\"card\" "
		"aria-labelledby=\"new-h\" id=\"token-root\" data-user=\"");
	sb_add_html(&sb, w.name);
	sb_adds(&sb, "\"><h2 id=\"new-h\">Create a token</h2><p class=\"muted\">"
		"A token lets scripts and tools use the hub&rsquo;s REST API "
		"as you: send it as <code>Authorization: token &hellip;</code>."
		"</p>");
	token_form(&sb);
	sb_adds(&sb, "</section><section class=\"card\" aria-labelledby="
		"\"list-h\"><h2 id=\"list-h\">Your tokens</h2>");
	token_list(&sb, r->hub, w.name);
	sb_adds(&sb, "</section>");
	pages_end(r, &sb, 200);
}
