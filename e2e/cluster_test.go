//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/eventstest"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
)

// The cluster's shape: every scenario runs the same processes.
var (
	hosts       = []string{"n1", "n2", "n3", "n4"}
	supervisors = []string{"sup-a", "sup-b"}
	detectors   = []string{"det-a", "det-b"}
)

// leaderTTL is the supervisors' lease: a standby takes over within it.
const leaderTTL = 3 * time.Second

// fencing is the self-fence timing of a cluster. Agents and supervisors
// must agree on the self-fence timeout (docs/fencing.md).
type fencing struct {
	selfTimeout   time.Duration // agent.restarter.fence.self_timeout = supervisor.policy.fence_self_timeout
	actionTimeout time.Duration // agent.restarter.fence.action_timeout
	renew         time.Duration // agent.restarter.fence.renew_interval
	margin        time.Duration // supervisor.policy.fence_margin
}

// shortFencing makes a host's VMs restart 10 s after its last beat, so that
// a scenario takes seconds. An agent fences itself when no lease renewal
// was acknowledged for 7 s (the demo's window): with 4 s, healthy hosts
// fenced themselves beside a CPU hog of twice the cores, when the
// race-instrumented servers acknowledged nothing for 4-5 s; 2 s did so
// while the cluster came up. The agents warn under 5 s
// (restarter.ShortFenceWindow).
var shortFencing = fencing{selfTimeout: 8 * time.Second, actionTimeout: time.Second, renew: 500 * time.Millisecond, margin: 2 * time.Second}

// deadline is how long after a host's last beat its VMs may restart
// elsewhere.
func (f fencing) deadline() time.Duration { return f.selfTimeout + f.margin }

// options vary a cluster per scenario.
type options struct {
	// fenceCommand makes the supervisors power a failed host off (the fake
	// xl's sim-poweroff on that host) before its VMs restart elsewhere.
	fenceCommand bool
	// partitionable runs this host's agent in its own network namespace,
	// reaching the servers over a veth link the test can cut.
	partitionable string
	// fencing is shortFencing unless set.
	fencing fencing
	// prepare, if set, runs once the servers' names and ports are chosen,
	// before any process starts (the soak lane mounts its slow disks and
	// opens its proxies there).
	prepare func(c *cluster)
	// env, if set, adds settings to the named process's environment, after
	// the cluster's own: the last value of a variable wins.
	env func(name string) []string
	// serverSync is the servers' server.sync; empty keeps the default.
	serverSync string
}

// natsNode is one `xenft server` of the 3-node JetStream cluster.
type natsNode struct {
	name        string
	port        int // client port on 127.0.0.1
	clusterPort int
}

func (n natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// cluster is one scenario's processes, the test's own connection to the
// bus, and what the test observes.
type cluster struct {
	t       *testing.T
	dir     string
	opts    options
	started time.Time
	servers []natsNode
	env     []string // every xenft process's XENFT_* settings
	bus     *events.Bus
	images  *store.NATS
	story   *story
	sec     security  // the credential set (secure_test.go)
	link    *vethLink // the partitionable host's link, if any

	mu    sync.Mutex
	procs map[string]*proc
}

// newCluster starts servers, agents, detectors and supervisors, and
// registers the workload; it returns once a supervisor leads. Everything
// is stopped and checked for leftovers when the test ends.
func newCluster(t *testing.T, opts options) *cluster {
	t.Helper()
	if opts.fencing == (fencing{}) {
		opts.fencing = shortFencing
	}
	c := &cluster{t: t, dir: t.TempDir(), opts: opts, started: time.Now(), procs: map[string]*proc{}}
	if opts.partitionable != "" {
		c.link = newVethLink(t) // skips the test without network namespaces
	}
	// Registered first, so it runs last: after every process is gone.
	t.Cleanup(c.checkNoLeftovers)
	t.Cleanup(c.stopAll)
	ports := freePorts(t, 6)
	for i := range 3 {
		c.servers = append(c.servers, natsNode{name: fmt.Sprintf("nats-%d", i+1), port: ports[2*i], clusterPort: ports[2*i+1]})
	}
	var urls []string
	for _, s := range c.servers {
		urls = append(urls, s.url())
	}
	c.env = []string{
		"XENFT_BUS_URLS=" + strings.Join(urls, ","),
		"XENFT_BUS_REPLICAS=3",
		"XENFT_BUS_LEADER_TTL=" + leaderTTL.String(), // the leader bucket's TTL: every role must agree
		"XENFT_STORE_BACKEND=nats",
		"XENFT_LOG_LEVEL=info",
		"XENFT_LOG_JSON=false",
		"XENFT_AGENT_RESTARTER_FENCE_SELF_TIMEOUT=" + opts.fencing.selfTimeout.String(),
		"XENFT_AGENT_RESTARTER_FENCE_RENEW_INTERVAL=" + opts.fencing.renew.String(),
		"XENFT_AGENT_RESTARTER_FENCE_ACTION_TIMEOUT=" + opts.fencing.actionTimeout.String(),
		"XENFT_SUPERVISOR_POLICY_FENCE_SELF_TIMEOUT=" + opts.fencing.selfTimeout.String(),
		"XENFT_SUPERVISOR_POLICY_FENCE_MARGIN=" + opts.fencing.margin.String(),
		"XENFT_SUPERVISOR_CHECKPOINT_INTERVAL=0", // the test asks for each checkpoint
	}
	if opts.fenceCommand {
		// No shell: env sets the failed host's fake xl state, {host} is
		// replaced by the supervisor.
		c.env = append(c.env, "XENFT_SUPERVISOR_FENCE_COMMAND="+strings.Join(
			[]string{"env", "FAKEXL_STATE=" + filepath.Join(c.dir, "xl-{host}"), fakeXL, "sim-poweroff"}, ","))
	}
	c.env = append(c.env, c.secure()...)
	if opts.prepare != nil {
		opts.prepare(c)
	}
	for _, s := range c.servers {
		c.startServer(s)
	}
	c.connect(urls)
	c.logf("servers up")
	c.waitReplicated()
	c.logf("streams replicated")
	c.story = watchStory(t, c.bus)
	if c.link != nil {
		c.link.forward(t, c.servers)
	}
	c.bootWorkload()
	for _, h := range hosts {
		c.startAgent(h)
	}
	for _, d := range detectors {
		c.startXenft(d, nil, "detector", "--id", d)
	}
	for _, s := range supervisors {
		c.startXenft(s, nil, "supervisor", "--id", s)
	}
	c.eventually(60*time.Second, func() bool { return c.leader() != "" }, says("no supervisor leads"))
	c.logf("cluster up: 3 servers, %d agents, %d detectors, %d supervisors; %s leads", len(hosts), len(detectors), len(supervisors), c.leader())
	return c
}

// freePorts reserves n distinct free loopback ports and releases them for
// the servers to take. They are drawn below the kernel's ephemeral range
// (ip_local_port_range), so no listener on port 0 or outgoing connection,
// of this test (the soak's fault proxies open theirs after the servers'
// ports are chosen) or of anything else on the machine, can take one
// before its server binds it: CI saw a server's route port "already in
// use" when they came from the ephemeral range.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	lo, hi := belowEphemeral()
	var ls []net.Listener
	var ports []int
	for try := 0; len(ports) < n; try++ {
		if try > 1000 {
			t.Fatalf("no %d free loopback ports in %d-%d", n, lo, hi)
		}
		port := lo + rand.IntN(hi-lo)
		if slices.Contains(ports, port) {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // in use
		}
		ls = append(ls, l)
		ports = append(ports, port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// belowEphemeral is a port range under the kernel's ephemeral ports.
func belowEphemeral() (lo, hi int) {
	lo, hi = 20000, 32768 // below Linux's default 32768-60999
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if start, err := strconv.Atoi(f[0]); err == nil && start > 11000 {
				lo, hi = 10000, start
			}
		}
	}
	return lo, hi
}

func (c *cluster) startServer(n natsNode) {
	c.t.Helper()
	var routes []string
	for _, s := range c.servers {
		routes = append(routes, fmt.Sprintf("      - nats-route://127.0.0.1:%d", s.clusterPort))
	}
	cfg := fmt.Sprintf(`server:
  name: %s
  host: 127.0.0.1
  port: %d
  data_dir: %s
  cluster:
    name: xenft-e2e
    host: 127.0.0.1
    port: %d
    no_advertise: true
    routes:
%s
%s%s`, n.name, n.port, filepath.Join(c.dir, n.name+"-data"), n.clusterPort, strings.Join(routes, "\n"), c.routeSecurity(), c.serverSecurity())
	if c.opts.serverSync != "" {
		cfg += "  sync: " + c.opts.serverSync + "\n"
	}
	path := filepath.Join(c.dir, n.name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		c.t.Fatal(err)
	}
	// Without -race (main_test.go serverBin).
	c.run(n.name, slices.Clone(c.env), []string{serverBin, "server", "--config", path})
}

// connect is the test's own connection: the operator's and the monitor's.
func (c *cluster) connect(urls []string) {
	c.t.Helper()
	cfg := c.busConfig(urls, nil)
	log := eventstest.Logger(c.t, hclog.Warn)
	var err error
	c.eventually(60*time.Second, func() bool {
		if c.bus == nil {
			if c.bus, err = events.Connect(cfg, log); err != nil {
				return false
			}
		}
		// Short attempts: requests made before the cluster has a meta
		// leader only time out, and the next one should follow soon after.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = c.bus.EnsureResources(ctx)
		return err == nil
	}, func() string { return fmt.Sprintf("the NATS cluster did not form: %v", err) })
	c.t.Cleanup(c.bus.Close)
	obj, err := c.bus.Images(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	chunks, err := c.bus.ImagesStream(context.Background())
	if err != nil {
		c.t.Fatal(err)
	}
	c.images = store.NewNATS(obj, store.LeaderChunks(c.bus.Conn(), chunks.CachedInfo().Config.Name))
}

// waitReplicated waits until every stream of the installation (events,
// buckets, images) has a leader and two current followers: agents started
// on a cluster still electing would see their first lease renewals time
// out and might fence themselves before the scenario begins.
func (c *cluster) waitReplicated() {
	c.t.Helper()
	n := c.bus.Names()
	streams := []string{n.Stream(), "OBJ_" + n.Images()}
	for _, b := range []string{n.Hosts(), n.VMs(), n.Groups(), n.Checkpoints(), n.Leader(), n.State()} {
		streams = append(streams, "KV_"+b)
	}
	var lagging string
	c.eventually(60*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, name := range streams {
			s, err := c.bus.JetStream().Stream(ctx, name)
			if err != nil {
				lagging = fmt.Sprintf("%s: %v", name, err)
				return false
			}
			ci := s.CachedInfo().Cluster
			if ci == nil || ci.Leader == "" || len(ci.Replicas) != 2 {
				lagging = name + ": no leader or missing replicas"
				return false
			}
			for _, r := range ci.Replicas {
				if !r.Current {
					lagging = name + ": replica " + r.Name + " not current"
					return false
				}
			}
		}
		return true
	}, func() string { return "the cluster's streams are not replicated: " + lagging })
}

// startXenft runs `xenft args...` as the process name, with the cluster's
// settings and extra.
func (c *cluster) startXenft(name string, extra []string, args ...string) {
	c.t.Helper()
	env := append(slices.Clone(c.env), c.credentials(name)...)
	env = append(env, extra...)
	if c.opts.env != nil {
		env = append(env, c.opts.env(name)...)
	}
	c.run(name, env, append([]string{xenftBin}, args...))
}

func (c *cluster) run(name string, env, argv []string) {
	c.t.Helper()
	p, err := startProc(name, c.logPath(name), env, argv...)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.procs[name]; old != nil && !old.exited() {
		c.t.Fatalf("%s started while it still runs", name)
	}
	c.procs[name] = p
}

func (c *cluster) logPath(name string) string { return filepath.Join(c.dir, name+".log") }

// startAgent runs host's agent on its fake xl; the partitionable host's
// runs inside its network namespace and reaches the servers through the
// veth link.
func (c *cluster) startAgent(host string) {
	c.t.Helper()
	env := append(slices.Clone(c.env), c.xlEnv(host)...)
	env = append(env, c.credentials(host)...)
	env = append(env,
		"XENFT_AGENT_STATE_DIR="+filepath.Join(c.dir, "state-"+host),
		"XENFT_AGENT_CHECKPOINT_SPOOL_DIR="+filepath.Join(c.dir, "spool-"+host),
		"XENFT_AGENT_RESTARTER_SPOOL_DIR="+filepath.Join(c.dir, "restore-"+host))
	argv := []string{xenftBin, "agent", "--host", host, "--driver", "xl", "--xl-path", fakeXL}
	if host == c.opts.partitionable {
		env = append(env, "XENFT_BUS_URLS="+strings.Join(c.link.urls(), ","))
		// ip netns exec execs the agent in place: the pid the test holds
		// is the agent's, and SIGKILL reaches it.
		argv = append([]string{"ip", "netns", "exec", c.link.ns}, argv...)
	}
	if c.opts.env != nil {
		env = append(env, c.opts.env(host)...)
	}
	c.run(host, env, argv)
}

func (c *cluster) proc(name string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// kill ends a process with SIGKILL, as a crash does.
func (c *cluster) kill(name string) {
	c.t.Helper()
	p := c.proc(name)
	if p == nil {
		c.t.Fatalf("no process %s", name)
	}
	p.kill()
	c.logf("killed %s (pid %d)", name, p.pid())
}

// crashHost is a host losing power: its agent and the xl calls it was
// running die, and so do its domains.
func (c *cluster) crashHost(host string) {
	c.t.Helper()
	p := c.proc(host)
	children := childrenOf(p.pid())
	c.kill(host)
	for _, pid := range children {
		// xl runs in a process group of its own (the driver kills hung
		// calls that way).
		_ = killGroup(pid)
	}
	c.xl(host, "sim-poweroff")
	c.logf("host %s crashed: agent and %d xl calls killed, domains gone", host, len(children))
}

// leader reads who holds the supervisors' lease, or "".
func (c *cluster) leader() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := c.bus.KV(ctx, c.bus.Names().Leader())
	if err != nil {
		return ""
	}
	l, err := supervisor.Current(ctx, kv)
	if err != nil {
		return ""
	}
	return l.Holder
}

// logf logs with the time since the cluster started, so that a scenario's
// log reads as a timeline.
func (c *cluster) logf(format string, args ...any) {
	c.t.Helper()
	c.t.Logf("+%5.1fs "+format, append([]any{time.Since(c.started).Seconds()}, args...)...)
}

// eventually waits for cond with a deadline and fails the test with what
// when it passes; what is called then, so it can show the last value seen.
func (c *cluster) eventually(timeout time.Duration, cond func() bool, what func() string) {
	c.t.Helper()
	eventstest.Poll(c.t, timeout, 100*time.Millisecond, cond, func() string { return fmt.Sprintf("after %s: %s", timeout, what()) })
}

// says is a fixed failure message for eventually.
func says(format string, args ...any) func() string {
	return func() string { return fmt.Sprintf(format, args...) }
}

// stopAll stops every process: clients first, then the servers they would
// otherwise keep reconnecting to. It fails the test for a process that
// exited before it was told to, or that logged a data race or a panic, and
// prints the tail of every log when the test failed.
func (c *cluster) stopAll() {
	c.mu.Lock()
	procs := c.procs
	c.procs = map[string]*proc{}
	c.mu.Unlock()
	var unexpected []string
	for _, p := range procs {
		if p.exited() && !p.ended {
			unexpected = append(unexpected, fmt.Sprintf("%s exited by itself: %v", p.name, p.err))
		}
	}
	order := [][]string{detectors, supervisors, hosts, {"nats-1", "nats-2", "nats-3"}}
	for _, names := range order {
		var wg sync.WaitGroup
		for _, n := range names {
			p := procs[n]
			if p == nil || p.exited() {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if !p.stop(20 * time.Second) {
					c.t.Errorf("%s did not stop within 20s of SIGTERM; killed", p.name)
				}
			}()
		}
		wg.Wait()
	}
	for _, u := range unexpected {
		c.t.Error(u)
	}
	for name := range procs {
		b, _ := os.ReadFile(c.logPath(name))
		log := string(b)
		if strings.Contains(log, "WARNING: DATA RACE") {
			c.t.Errorf("%s: data race:\n%s", name, excerpt(log, "WARNING: DATA RACE", 60))
		}
		if strings.Contains(log, "\npanic: ") {
			c.t.Errorf("%s: panic:\n%s", name, excerpt(log, "\npanic: ", 40))
		}
	}
	if c.t.Failed() {
		c.dumpLogs(procs)
	} else if c.story != nil {
		c.t.Logf("event stream:\n%s", c.story.String())
	}
}

func (c *cluster) dumpLogs(procs map[string]*proc) {
	names := make([]string, 0, len(procs))
	for n := range procs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if b, err := os.ReadFile(c.logPath(n)); err == nil {
			c.t.Logf("--- %s.log (tail)\n%s", n, tail(string(b), 40))
		}
	}
	if c.story != nil {
		c.t.Logf("--- event stream\n%s", c.story.String())
	}
}

// logTime finds the first line of name's log that contains marker and
// returns the time it was logged (hclog's timestamp).
func (c *cluster) logTime(name, marker string) (time.Time, bool) {
	b, _ := os.ReadFile(c.logPath(name))
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, marker) {
			continue
		}
		stamp, _, _ := strings.Cut(line, " ")
		if t, err := time.Parse("2006-01-02T15:04:05.000Z07:00", stamp); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// excerpt returns n lines of s from the first occurrence of marker.
func excerpt(s, marker string, n int) string {
	i := strings.Index(s, marker)
	if i < 0 {
		return ""
	}
	lines := strings.SplitN(s[i:], "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

// checkNoLeftovers fails the test if a process of this suite survived it
// (an orphaned xl call is given a few seconds to finish).
func (c *cluster) checkNoLeftovers() {
	var left []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		left = ourProcesses()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	killAll(left)
	c.t.Errorf("processes left behind after the scenario:\n  %s", strings.Join(left, "\n  "))
}
