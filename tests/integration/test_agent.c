/*
 * test_agent.c - the hub's side of the usage agents
 * (spawner_usage_agents) against a real `bin/swarmhub agent` reading the
 * machine's Docker: a labelled container's sample comes back through the
 * agent, a CPU figure from two of them, a wrong key and a closed port
 * count as failed agents, a name that resolves to nothing is an error
 * naming it, and the agent stops cleanly on SIGTERM. (On many nodes:
 * tests/integration/test_usage_nodes.py.)
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../spawner/internal.h"
#include "../../hub/hub.h"
#include "../lib/t.h"

#define SECRET "test-usage-agents-0123456789abcdef0123456789"

static char run_id[64];

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static int
accepts(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* bin/swarmhub agent on port, reading host for run_id's containers. */
static pid_t
start_agent(const char *host, int port)
{
	const char *dir = getenv("SWARMHUB_BIN_DIR");
	char *bin = xasprintf("%s/swarmhub", dir && *dir ? dir : "bin");
	char *env[8];
	pid_t pid;

	env[0] = xasprintf("SWARMHUB_SECRET=%s", SECRET);
	env[1] = xasprintf("SWARMHUB_HUB_ID=%s", run_id);
	env[2] = xasprintf("SWARMHUB_AGENT_PORT=%d", port);
	env[3] = xasprintf("SWARMHUB_DOCKER_HOST=%s", host);
	env[4] = xstrdup("SWARMHUB_LOG_LEVEL=warn");
	env[5] = xstrdup("PATH=/usr/bin:/bin");
	env[6] = NULL;
	pid = fork();
	if (pid == 0) {
		execle(bin, bin, "agent", (char *)NULL, env);
		_exit(127);
	}
	for (int i = 0; i < 6; i++)
		free(env[i]);
	free(bin);
	/* slow under valgrind (the hub's C tests may run under it) */
	for (int i = 0; pid > 0 && i < 600 && !accepts(port); i++)
		usleep(50 * 1000);
	return pid;
}

/* A running container labelled as user's server of this run. */
static void
container(struct docker *d, const char *image, const char *user, char *id,
	  size_t size)
{
	json_t *spec = json_pack("{s:s, s:[s,s,s], s:{s:s, s:s, s:s},"
				 " s:{s:b}}",
				 "Image", image, "Cmd", "sh", "-c", "sleep 120",
				 "Labels", "swarmhub.hub", run_id,
				 "swarmhub.user", user, "swarmhub.server", "",
				 "HostConfig", "AutoRemove", 1);
	char *body = json_dumps(spec, 0), *p;
	struct docker_resp r = { 0 };
	struct err e = { 0 };
	json_t *j;

	id[0] = '\0';
	if (docker_post(d, "/containers/create", body, &r, &e) == 0 &&
	    (j = json_loads(r.body, 0, NULL)) != NULL) {
		snprintf(id, size, "%s",
			 json_string_value(json_object_get(j, "Id")));
		json_decref(j);
	}
	docker_resp_release(&r);
	p = xasprintf("/containers/%s/start", id);
	if (id[0] && docker_post(d, p, "", &r, &e) < 0)
		id[0] = '\0';
	if (id[0] == '\0')
		fprintf(stderr, "test_agent: container: %s\n", e.msg);
	docker_resp_release(&r);
	free(p);
	free(body);
	json_decref(spec);
}

/* Every container of this run, also one whose create answered late. */
static void
remove_ours(struct docker *d)
{
	char *f = xasprintf("{\"label\":[\"swarmhub.hub=%s\"]}", run_id);
	char *esc = docker_escape(d, f), *path;
	struct docker_resp r = { 0 };
	struct err e = { 0 };
	json_t *a = NULL, *c;
	size_t i;

	path = xasprintf("/containers/json?all=1&filters=%s", esc);
	if (docker_get(d, path, &r, &e) == 0)
		a = json_loadb(r.body, r.len, 0, NULL);
	docker_resp_release(&r);
	json_array_foreach(a, i, c) {
		char *p = xasprintf("/containers/%s?force=1", json_string_value(
		    json_object_get(c, "Id")));

		docker_delete(d, p, &r, &e);
		docker_resp_release(&r);
		free(p);
	}
	json_decref(a);
	free(path);
	free(esc);
	free(f);
}

static void
test_through_agent(const char *agents, const char *id)
{
	struct spawner_usage *a = NULL, *b = NULL;
	size_t na, nb, asked;
	char *failed = NULL;
	struct err e = { 0 };
	char key[65];
	int64_t t0 = time_mono_ms();

	usage_agent_key(SECRET, key);
	T_OK(spawner_usage_agents(agents, key, 10000, &a, &na, &asked,
				  &failed, &e) == 0, "asking %s: %s", agents,
	     e.msg);
	printf("usage agents: one pass through one agent: %ld ms\n",
	       (long)(time_mono_ms() - t0));
	T_OK(asked == 1 && failed == NULL, "one agent asked, none failed "
	     "(%zu, %s)", asked, failed ? failed : "");
	T_OK(na == 1 && strcmp(a[0].user, "alice") == 0 &&
	     strcmp(a[0].container, id) == 0 && a[0].server[0] == '\0',
	     "alice's container through the agent (%zu)", na);
	T_OK(na == 1 && a[0].mem_bytes > 0 && a[0].read_ms > 0,
	     "a memory figure and a sample time");
	usleep(1200 * 1000);
	T_OK(spawner_usage_agents(agents, key, 10000, &b, &nb, &asked,
				  &failed, &e) == 0 && nb == 1 && failed == NULL,
	     "a second pass: %s", e.msg);
	T_OK(na == 1 && nb == 1 && spawner_usage_cpu(&a[0], &b[0]) >= 0,
	     "two samples through the agent give a CPU figure");
	free(a);
	free(b);
}

static void
test_refusals(int port)
{
	struct spawner_usage *v = NULL;
	size_t n, asked;
	char *failed = NULL;
	struct err e = { 0 };
	char *agents = xasprintf("127.0.0.1:%d", port), *closed;
	char key[65];

	usage_agent_key("another-secret-0123456789abcdef0123456789", key);
	T_OK(spawner_usage_agents(agents, key, 10000, &v, &n, &asked,
				  &failed, &e) == 0 && asked == 1 && n == 0 &&
	     failed && strstr(failed, "refused the key (401)"),
	     "a wrong key: the agent counts as failed, saying why: '%s'",
	     failed ? failed : "");
	free(v);
	free(failed);
	T_OK(spawner_usage_agents(agents, SECRET, 10000, &v, &n, &asked,
				  &failed, &e) == 0 && failed && n == 0,
	     "the secret itself is not the key");
	free(v);
	free(failed);
	closed = xasprintf("127.0.0.1:%d", free_port());
	T_OK(spawner_usage_agents(closed, key, 3000, &v, &n, &asked, &failed,
				  &e) == 0 && asked == 1 && failed &&
	     strstr(failed, closed) && strchr(failed, ';') == NULL,
	     "a closed port: one failed agent, named: '%s'",
	     failed ? failed : "");
	free(v);
	free(failed);
	T_OK(spawner_usage_agents("no-such-agent.invalid:8001", key, 3000,
				  &v, &n, &asked, &failed, &e) < 0 &&
	     e.code == ERR_UNAVAILABLE && v == NULL && failed == NULL &&
	     strstr(e.msg, "no-such-agent.invalid") != NULL,
	     "a name that resolves to nothing: '%s'", e.msg);
	T_OK(spawner_usage_agents("no-port", key, 3000, &v, &n, &asked,
				  &failed, &e) < 0 && e.code == ERR_INVALID,
	     "not host:port: '%s'", e.msg);
	free(agents);
	free(closed);
}

int
main(void)
{
	const char *host = getenv("DOCKER_HOST");
	const char *image = getenv("SWARMHUB_TEST_IMAGE");
	struct docker *d = NULL;
	struct err e = { 0 };
	char id[80] = "", *agents;
	int port = free_port(), status = -1;
	pid_t pid;

	t_need_env("SWARMHUB_TEST_DOCKER_NETWORK", "docker",
		   "tests/services/docker.sh start");
	if (host == NULL || strncmp(host, "unix://", 7) != 0)
		host = "unix:///var/run/docker.sock";
	if (image == NULL || *image == '\0')
		image = "swarmhub/test-notebook:latest";
	snprintf(run_id, sizeof(run_id), "test-agents-%ld-%ld",
		 (long)getpid(), (long)(time_now_ms() / 1000));
	log_set_level(LOG_ERROR);
	T_OK(docker_new(host, NULL, &d, &e) == 0, "docker_new: %s", e.msg);
	if (d == NULL)
		return t_done();
	container(d, image, "alice", id, sizeof(id));
	T_OK(id[0] != '\0', "a labelled container of %s runs", image);
	pid = start_agent(host, port);
	T_OK(pid > 0 && accepts(port), "bin/swarmhub agent listens on %d",
	     port);
	agents = xasprintf("localhost:%d", port);
	if (id[0] && accepts(port)) {
		test_through_agent(agents, id);
		test_refusals(port);
	}
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, &status, 0);
		T_OK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		     "the agent stops cleanly on SIGTERM (status %d)", status);
	}
	remove_ours(d);
	free(agents);
	docker_free(d);
	return t_done();
}
