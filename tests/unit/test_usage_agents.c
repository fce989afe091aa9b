/*
 * test_usage_agents.c - the usage agents' answer (spawner/agents.c): what
 * an agent writes is what the hub reads back, every bad field is refused
 * naming it, USAGE_AGENTS is host:port, and the agent key is an HMAC of
 * the secret (never the secret). No network, no Docker.
 */
#include <jansson.h>
#include "../../spawner/internal.h"
#include "../../hub/hub.h"
#include "../lib/t.h"

static void
test_round_trip(void)
{
	struct spawner_usage in[2] = {
		{ .user = "alice", .server = "", .container = "c0ffee",
		  .read_ms = 1765000000123, .cpu_ns = 4200000000,
		  .mem_bytes = 52428800, .mem_limit = 268435456 },
		{ .user = "bob", .server = "gpu", .container = "beef",
		  .read_ms = 1765000000456, .cpu_ns = 0, .mem_bytes = 1,
		  .mem_limit = 0 },
	};
	struct spawner_usage *out = NULL;
	struct err e = { 0 };
	char *text = usage_agent_json(in, 2);
	size_t n = 0;

	T_OK(usage_agent_parse(text, strlen(text), &out, &n, &e) == 0,
	     "the agent's own answer parses (%s)", e.msg);
	T_OK(n == 2, "two containers back, got %zu", n);
	T_OK(n == 2 && memcmp(&out[0], &in[0], sizeof(in[0])) == 0 &&
	     memcmp(&out[1], &in[1], sizeof(in[1])) == 0,
	     "every field comes back as it was sent");
	free(out);
	free(text);
	text = usage_agent_json(NULL, 0);
	T_STREQ(text, "{\"containers\":[]}", "no containers: an empty list");
	T_OK(usage_agent_parse(text, strlen(text), &out, &n, &e) == 0 &&
	     n == 0, "an empty list parses to nothing");
	free(out);
	free(text);
}

static void
test_bad_answers(void)
{
	static const struct { const char *json, *names; } bad[] = {
		{ "", "\"containers\"" },
		{ "[]", "\"containers\"" },
		{ "{\"containers\": {}}", "\"containers\"" },
		{ "{\"containers\": [1]}", "containers[]" },
		{ "{\"containers\": [{\"server\": \"\", \"container\": \"c\","
		  "\"read_ms\": 1, \"cpu_ns\": 1, \"mem_bytes\": 1,"
		  "\"mem_limit\": 0}]}", "\"user\"" },
		{ "{\"containers\": [{\"user\": \"a\", \"server\": \"\","
		  "\"container\": \"c\", \"read_ms\": 1, \"cpu_ns\": -5,"
		  "\"mem_bytes\": 1, \"mem_limit\": 0}]}", "\"cpu_ns\"" },
		{ "{\"containers\": [{\"user\": \"a\", \"server\": \"\","
		  "\"container\": \"c\", \"read_ms\": 0, \"cpu_ns\": 1,"
		  "\"mem_bytes\": 1, \"mem_limit\": 0}]}", "\"read_ms\"" },
		{ "{\"containers\": [{\"user\": \"a\", \"server\": \"\","
		  "\"container\": \"c\", \"read_ms\": 1, \"cpu_ns\": 1,"
		  "\"mem_bytes\": \"1\", \"mem_limit\": 0}]}", "\"mem_bytes\"" },
		{ "{\"containers\": [{\"user\": \"a\", \"server\": \"\","
		  "\"container\": \"\", \"read_ms\": 1, \"cpu_ns\": 1,"
		  "\"mem_bytes\": 1, \"mem_limit\": 0}]}", "\"container\"" },
		{ "{\"containers\": [{\"user\": \"a\", \"server\": \"\","
		  "\"container\": \"c\", \"read_ms\": 1, \"cpu_ns\": 1,"
		  "\"mem_bytes\": 1}]}", "\"mem_limit\"" },
	};
	char longname[200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct spawner_usage *out = (void *)1;
		struct err e = { 0 };
		size_t n = 7;

		T_OK(usage_agent_parse(bad[i].json, strlen(bad[i].json), &out,
				       &n, &e) < 0 && out == NULL && n == 0 &&
		     strstr(e.msg, bad[i].names) != NULL,
		     "bad answer %zu refused naming %s: '%s'", i,
		     bad[i].names, e.msg);
	}
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	{
		char *j = xasprintf("{\"containers\": [{\"user\": \"%s\","
				    "\"server\": \"\", \"container\": \"c\","
				    "\"read_ms\": 1, \"cpu_ns\": 1,"
				    "\"mem_bytes\": 1, \"mem_limit\": 0}]}",
				    longname);
		struct spawner_usage *out = NULL;
		struct err e = { 0 };
		size_t n;

		T_OK(usage_agent_parse(j, strlen(j), &out, &n, &e) < 0 &&
		     strstr(e.msg, "\"user\""), "a user name longer than a "
		     "user name can be is refused: '%s'", e.msg);
		free(j);
	}
}

static void
test_split(void)
{
	char host[64], port[8];
	struct err e = { 0 };

	T_OK(usage_agents_split("tasks.swarmhub_agent:8001", host,
				sizeof(host), port, sizeof(port), &e) == 0,
	     "host:port splits (%s)", e.msg);
	T_STREQ(host, "tasks.swarmhub_agent", "the host part");
	T_STREQ(port, "8001", "the port part");
	static const char *bad[] = { "tasks.agent", "tasks.agent:",
		":8001", "tasks.agent:0", "tasks.agent:65536", "h:80x", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct err be = { 0 };

		T_OK(usage_agents_split(bad[i], host, sizeof(host), port,
					sizeof(port), &be) < 0 &&
		     strstr(be.msg, "SWARMHUB_USAGE_AGENTS") != NULL,
		     "'%s' refused naming the setting: '%s'", bad[i], be.msg);
	}
}

static void
test_key(void)
{
	const char *secret = "0123456789abcdef0123456789abcdef";
	char k1[65], k2[65], k3[65];

	usage_agent_key(secret, k1);
	usage_agent_key(secret, k2);
	usage_agent_key("0123456789abcdef0123456789abcdeX", k3);
	T_OK(strlen(k1) == 64 && strspn(k1, "0123456789abcdef") == 64,
	     "the key is 64 hex characters: %s", k1);
	T_OK(strcmp(k1, k2) == 0, "the same secret gives the same key");
	T_OK(strcmp(k1, k3) != 0, "another secret gives another key");
	T_OK(strstr(k1, secret) == NULL, "the key is not the secret");
}

int
main(void)
{
	test_round_trip();
	test_bad_answers();
	test_split();
	test_key();
	return t_done();
}
