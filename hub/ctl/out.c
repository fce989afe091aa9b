/*
 * out.c - what swarmhubctl shows people: aligned tables, short UTC times,
 * pretty JSON; and the password prompt.
 *
 * Table cells are copied and their control characters replaced, so a
 * token note or a group name from the hub cannot drive the terminal.
 */
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include "ctl.h"

void
table_init(struct table *t, size_t ncols, const char *const *head)
{
	t->ncols = ncols;
	t->nrows = 0;
	t->cap = 0;
	t->cells = NULL;
	table_add(t, head);
}

static char *
cell_dup(const char *s)
{
	char *p, *q;

	p = xstrdup(s != NULL && *s != '\0' ? s : "-");
	for (q = p; *q != '\0'; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	return p;
}

void
table_add(struct table *t, const char *const *row)
{
	size_t i, base = (t->cells == NULL ? 0 : t->nrows + 1) * t->ncols;

	if (base + t->ncols > t->cap) {
		t->cap = (base + t->ncols) * 2;
		t->cells = xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	for (i = 0; i < t->ncols; i++)
		t->cells[base + i] = cell_dup(row[i]);
	if (base > 0)
		t->nrows++;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t
width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

void
table_print(const struct table *t, FILE *f)
{
	size_t *w = xcalloc(t->ncols, sizeof(*w));
	size_t r, i, n;
	const char *s;

	for (r = 0; r <= t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			n = width(t->cells[r * t->ncols + i]);
			if (n > w[i])
				w[i] = n;
		}
	for (r = 0; r <= t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			s = t->cells[r * t->ncols + i];
			fputs(s, f);
			if (i + 1 == t->ncols)
				break;
			for (n = width(s); n < w[i] + 2; n++)
				fputc(' ', f);
		}
		fputc('\n', f);
	}
	free(w);
}

void
table_release(struct table *t)
{
	size_t i;

	if (t->cells != NULL)
		for (i = 0; i < (t->nrows + 1) * t->ncols; i++)
			free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

const char *
fmt_time(const json_t *v, char *buf, size_t size)
{
	int64_t ms;
	time_t secs;
	struct tm tm;

	if (!json_is_string(v))
		return "-";
	if (time_parse_iso8601(json_string_value(v), &ms) < 0)
		return json_string_value(v);
	secs = (time_t)(ms / 1000);
	if (gmtime_r(&secs, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%MZ", &tm) == 0)
		return json_string_value(v);
	return buf;
}

int
time_older(const json_t *v, int64_t cutoff_ms)
{
	int64_t ms;

	if (!json_is_string(v))
		return 1;
	if (time_parse_iso8601(json_string_value(v), &ms) < 0)
		return 0;
	return ms < cutoff_ms;
}

void
json_print(const json_t *j)
{
	if (j == NULL)
		return;
	json_dumpf(j, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
}

const char *
json_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* Reads one line from stdin into a heap string, newline removed. */
static char *
line_read(struct err *e)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	n = getline(&line, &cap, stdin);
	if (n < 0) {
		free(line);
		err_set(e, ERR_INVALID, "read password: no line on stdin");
		return NULL;
	}
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	return line;
}

/* Prompts on stderr and reads a line with echo off. */
static char *
prompt_read(const char *prompt, struct err *e)
{
	struct termios old, quiet;
	int restore;
	char *line;

	fputs(prompt, stderr);
	fflush(stderr);
	restore = tcgetattr(STDIN_FILENO, &old) == 0;
	if (restore) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	line = line_read(e);
	if (restore)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	fputc('\n', stderr);
	return line;
}

char *
password_read(struct err *e)
{
	char *pw, *again;

	if (!isatty(STDIN_FILENO))
		pw = line_read(e);
	else {
		pw = prompt_read("Password: ", e);
		if (pw == NULL)
			return NULL;
		again = prompt_read("Retype password: ", e);
		if (again == NULL || strcmp(pw, again) != 0) {
			if (again != NULL)
				err_set(e, ERR_INVALID, "read password: "
				    "the passwords do not match");
			password_free(again);
			password_free(pw);
			return NULL;
		}
		password_free(again);
	}
	if (pw != NULL && *pw == '\0') {
		password_free(pw);
		err_set(e, ERR_INVALID, "read password: empty password");
		return NULL;
	}
	return pw;
}

void
password_free(char *pw)
{
	if (pw == NULL)
		return;
	explicit_bzero(pw, strlen(pw));
	free(pw);
}
