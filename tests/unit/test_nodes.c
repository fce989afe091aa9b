/*
 * test_nodes.c - spawner/nodes.c: Docker's node and task lists into the
 * nodes the hub shows (totals, what this hub's servers and other tasks
 * reserve, the servers on each), constraint matching, and the fail-fast
 * check with its messages. The JSON has the shape Docker 20.10 answered
 * on the test cluster (tests/services/cluster.sh), cut to the fields
 * read. No network.
 */
#include <jansson.h>
#include "../../spawner/internal.h"
#include "../lib/t.h"

#define GIB 1073741824LL

/* JSON written with ' for " (heap string). */
static char *
q(const char *s)
{
	char *r = xstrdup(s), *p;

	for (p = r; *p; p++)
		if (*p == '\'')
			*p = '"';
	return r;
}

#define NODE(id, host, role, avail, state, labels, res) \
	"{'ID': '" id "', 'Spec': {'Role': '" role "', 'Availability': '" \
	avail "', 'Labels': " labels "}, 'Description': {'Hostname': '" \
	host "', 'Resources': " res "}, 'Status': {'State': '" state \
	"', 'Addr': '10.0.0.1'}}"
#define CPU2 "{'NanoCPUs': 2000000000, 'MemoryBytes': 25769803776"

static const char nodes_json[] = "["
	NODE("w2", "shc-worker2", "worker", "active", "ready",
	     "{'pool': 'gpu'}", CPU2 ", 'GenericResources': "
	     "[{'DiscreteResourceSpec': {'Kind': 'gpu', 'Value': 2}}]}") ","
	NODE("m0", "shc-manager", "manager", "active", "ready",
	     "{'pool': 'cpu'}", CPU2 "}") ","
	NODE("w1", "shc-worker1", "worker", "active", "ready",
	     "{'pool': 'cpu', 'zone': 'a'}", CPU2 "}") ","
	NODE("w3", "shc-worker3", "worker", "drain", "ready",
	     "{'pool': 'gpu'}", CPU2 ", 'GenericResources': ["
	     "{'NamedResourceSpec': {'Kind': 'gpu', 'Value': 'GPU-a'}},"
	     "{'NamedResourceSpec': {'Kind': 'gpu', 'Value': 'GPU-b'}},"
	     "{'NamedResourceSpec': {'Kind': 'fpga', 'Value': 'F-1'}}]}")
	"]";

#define TASK(node, state, desired, labels, res) \
	"{'NodeID': '" node "', 'DesiredState': '" desired "', 'Status': " \
	"{'State': '" state "'}, 'Spec': {'ContainerSpec': {'Labels': " \
	labels "}, 'Resources': {'Reservations': " res "}}}"
#define OURS(user, server) "{'swarmhub.hub': 'hubA', 'swarmhub.user': '" \
	user "', 'swarmhub.server': '" server "'}"

static const char tasks_json[] = "["
	/* alice on the GPU worker, 1 GPU */
	TASK("w2", "running", "running", OURS("alice", ""),
	     "{'NanoCPUs': 500000000, 'MemoryBytes': 268435456, "
	     "'GenericResources': [{'DiscreteResourceSpec': {'Kind': 'gpu', "
	     "'Value': 1}}]}") ","
	/* another hub's task on worker1 */
	TASK("w1", "running", "running", "{'swarmhub.hub': 'hubB', "
	     "'swarmhub.user': 'eve'}", "{'NanoCPUs': 250000000}") ","
	/* bob's named server on worker1, being ended (a drain) */
	TASK("w1", "running", "shutdown", OURS("bob", "gpu"),
	     "{'NanoCPUs': 100000000, 'MemoryBytes': 1073741824}") ","
	/* ended and pending tasks hold nothing */
	TASK("w2", "shutdown", "shutdown", OURS("carol", ""),
	     "{'NanoCPUs': 1000000000, 'GenericResources': "
	     "[{'DiscreteResourceSpec': {'Kind': 'gpu', 'Value': 1}}]}") ","
	TASK("", "pending", "running", OURS("dave", ""),
	     "{'NanoCPUs': 1000000000}") ","
	TASK("w2", "failed", "running", OURS("erin", ""),
	     "{'NanoCPUs': 1000000000}")
	"]";

static struct spawner_node *
parse_kind(size_t *n, const char *kind)
{
	const struct nodes_ctx ctx = { "hubA", "jupyter-{user}", kind };
	char *nj = q(nodes_json), *tj = q(tasks_json);
	struct spawner_node *v = NULL;
	struct err e = { 0 };

	if (nodes_parse(nj, strlen(nj), tj, strlen(tj), &ctx, &v, n, &e) < 0)
		fprintf(stderr, "parse failed: %s\n", e.msg);
	free(nj);
	free(tj);
	return v;
}

static struct spawner_node *
parse(size_t *n)
{
	return parse_kind(n, "gpu");
}

static void
test_parse(void)
{
	struct spawner_node *v;
	size_t n = 0;
	struct err e = { 0 };

	v = parse(&n);
	T_OK(v && n == 4, "four nodes (%zu)", n);
	if (!v || n != 4)
		return;
	T_STREQ(v[0].hostname, "shc-manager", "managers first");
	T_STREQ(v[1].hostname, "shc-worker1", "then by hostname");
	T_STREQ(v[3].hostname, "shc-worker3", "last");
	T_OK(v[0].total.cpus == 2 && v[0].total.mem_bytes == 24 * GIB &&
	     v[0].total.gpus == 0, "manager totals");
	T_OK(v[2].total.gpus == 2, "discrete gpu=2 counts 2");
	T_OK(v[3].total.gpus == 2, "two named gpus count 2, fpga not");
	T_STREQ(v[1].labels[0], "pool=cpu", "labels sorted");
	T_STREQ(v[1].labels[1], "zone=a", "second label");
	T_OK(v[1].labels[2] == NULL, "labels end");
	T_STREQ(v[3].availability, "drain", "availability");
	/* worker2: alice only; the ended and failed tasks hold nothing */
	T_OK(v[2].nservers == 1, "one server on worker2 (%zu)", v[2].nservers);
	T_STREQ(v[2].servers[0].user, "alice", "alice on worker2");
	T_STREQ(v[2].servers[0].service, "jupyter-alice", "service name");
	T_OK(v[2].reserved.cpus == 0.5 && v[2].reserved.gpus == 1 &&
	     v[2].reserved.mem_bytes == 268435456, "worker2 reserved");
	T_OK(v[2].used.gpus == 1 && v[2].used.cpus == 0.5, "worker2 used");
	/* worker1: bob (ending) is ours, eve's task is another hub's */
	T_OK(v[1].nservers == 1, "bob on worker1");
	T_STREQ(v[1].servers[0].server, "gpu", "named server");
	T_STREQ(v[1].servers[0].service, "jupyter-bob-gpu", "its service");
	T_STREQ(v[1].servers[0].desired, "shutdown", "being ended");
	T_OK(v[1].reserved.cpus > 0.099 && v[1].reserved.cpus < 0.101,
	     "ours on worker1: bob's 0.1");
	T_OK(v[1].used.cpus > 0.349 && v[1].used.cpus < 0.351,
	     "used on worker1: 0.1 + eve's 0.25");
	T_OK(v[0].nservers == 0 && v[0].used.cpus == 0, "manager empty");
	spawner_nodes_free(v, n);

	T_OK(nodes_parse("{}", 2, "[]", 2, &(struct nodes_ctx){ "h", "j-{user}",
	     "gpu" }, &v, &n, &e) == -1 &&
	     e.code == ERR_UPSTREAM, "not an array: refused");
	spawner_nodes_free(NULL, 0);
}

static void
test_match(void)
{
	struct spawner_node *v;
	size_t n;

	v = parse(&n);
	if (!v)
		return;
	T_OK(nodes_match(&v[2], "node.labels.pool==gpu"), "label ==");
	T_OK(!nodes_match(&v[1], "node.labels.pool==gpu"), "label == no");
	T_OK(nodes_match(&v[1], "node.labels.pool != gpu"), "label != spaced");
	T_OK(!nodes_match(&v[1], "node.labels.nope==1"), "missing label");
	T_OK(nodes_match(&v[1], "node.labels.nope!=1"), "missing label !=");
	T_OK(nodes_match(&v[1], "node.labels.zone==A"), "values ignore case");
	T_OK(!nodes_match(&v[1], "node.labels.zo==a"), "a key prefix is not "
	     "the key");
	T_OK(nodes_match(&v[0], "node.role==manager"), "role");
	T_OK(!nodes_match(&v[0], "node.role==worker"), "role no");
	T_OK(nodes_match(&v[1], "node.hostname==shc-worker1"), "hostname");
	T_OK(nodes_match(&v[1], "node.id!=w2"), "id !=");
	T_OK(nodes_match(&v[1], "engine.labels.os==plan9"), "unknown keys "
	     "match");
	T_OK(nodes_match(&v[1], "garbage"), "no operator: match");
	spawner_nodes_free(v, n);
}

static void
fit(const char *const *cons, size_t ncons, double cpus, double mem_gib,
    long gpus, const char *kind, const char *want)
{
	struct spawner_res ask = { cpus, (int64_t)(mem_gib * GIB), gpus };
	struct spawner_node *v;
	struct err e = { 0 };
	size_t n;
	int rc;

	v = parse_kind(&n, kind);
	if (!v)
		return;
	rc = nodes_fit(v, n, cons, ncons, &ask, kind, &e);
	if (want == NULL)
		T_OK(rc == 0, "fits: %s", e.msg);
	else {
		T_OK(rc == -1 && e.code == ERR_UPSTREAM, "does not fit: %s",
		     want);
		T_STREQ(e.msg, want, "message");
	}
	spawner_nodes_free(v, n);
}

static void
test_fit(void)
{
	const char *gpu[] = { "node.labels.pool==gpu" };
	const char *cpu[] = { "node.labels.pool==cpu", "node.role==worker" };
	const char *none[] = { "node.labels.nope==1" };

	fit(gpu, 1, 0.1, 0.25, 1, "gpu", NULL);
	fit(gpu, 1, 0.1, 0.25, 2, "gpu", "no node has 2 free GPUs; node "
	    "shc-worker2 has 1 free");
	fit(NULL, 0, 0.1, 0.25, 3, "gpu", "no node has 3 free GPUs; node "
	    "shc-worker2 has 1 free");
	fit(cpu, 2, 0.1, 0.25, 1, "gpu", "no node has 1 free GPU; node "
	    "shc-worker1 has 0 free");
	fit(gpu, 1, 0.1, 0.25, 1, "NVIDIA-GPU", "no node has 1 free GPU "
	    "(resource 'NVIDIA-GPU'); node shc-worker2 has 0 free");
	/* worker3 (drained) has one fpga */
	fit(NULL, 0, 0.1, 0.25, 1, "fpga", "no node has 1 free GPU (resource "
	    "'fpga'); node shc-manager has 0 free");
	fit(gpu, 1, 1.6, 0.25, 1, "gpu", "no node has 1.6 free CPUs; node "
	    "shc-worker2 has 1.5 free");
	fit(gpu, 1, 0.1, 30, 1, "gpu", "no node has 30 GiB of memory free; "
	    "node shc-worker2 has 23.8 GiB free");
	fit(none, 1, 0.1, 0.25, 1, "gpu", "no node matches the placement "
	    "constraints (node.labels.nope==1)");
	/* the drained GPU worker3 is no candidate; worker2 is */
	fit((const char *[]){ "node.hostname==shc-worker3" }, 1, 0.1, 0.25, 1,
	    "gpu", "no node can take this server now (shc-worker3 is drain)");
	fit(cpu, 2, 0.1, 0.25, 0, "gpu", NULL);
	/* worker2 has the GPU, the manager the CPUs, none both */
	fit(NULL, 0, 1.8, 0.25, 1, "gpu", "no node has 1.8 CPUs, 0.25 GiB of "
	    "memory and 1 GPU free at once");
}

int
main(void)
{
	test_parse();
	test_match();
	test_fit();
	return t_done();
}
