package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/store"
	"github.com/xenft/xenft/supervisor"
	"github.com/xenft/xenft/supervisor/core"
)

type upOptions struct {
	dataDir         string
	hosts           int
	chaos           bool
	partition       bool
	chaosEvery      time.Duration
	checkpointEvery time.Duration
	json            bool
	// insecure runs without credentials or TLS (up_auth.go).
	insecure bool
	// portAsked: the operator named a port (--port); then a busy port is
	// an error, not a reason to take another.
	portAsked bool
}

func newUpCommand(a *app) *cobra.Command {
	var o upOptions
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything in one process on an embedded NATS server (the demo)",
		Long: `Starts an embedded NATS server with JetStream under ./.xenft (or --data), a
supervisor, a detector and --hosts simulated Xen hosts, each with its agent;
registers a group of 3 VMs (one MPI job) and 2 single VMs, checkpoints them on
an interval, and shows hosts, VMs, checkpoints and events live. With --chaos a
random host crashes every so often (--partition also cuts one off the bus) so
you can watch detection, fencing, rollback and restart. Like a production
cluster, its server lets in only the identities it issues at start into
<data>/auth, over TLS, each with its role's permissions (--insecure: none of
that). It prints the NATS URL and how to watch the same stream from another
terminal ('xenft events tail --config <data>/auth/admin.yaml', or the nats
CLI as a monitor). Ctrl-C stops everything and prints a summary (--json: JSON
lines instead).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.hosts < 2 || o.hosts > 64 {
				return usageErrorf("--hosts: must be 2 to 64, got %d", o.hosts)
			}
			if o.chaosEvery < 5*time.Second {
				return usageErrorf("--chaos-every: must be at least 5s, got %s", o.chaosEvery)
			}
			if o.checkpointEvery < time.Second {
				return usageErrorf("--checkpoint-every: must be at least 1s, got %s", o.checkpointEvery)
			}
			if err := a.setup(cmd, validateServer, validateBus); err != nil {
				return err
			}
			o.portAsked = cmd.Flags().Changed("port")
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runUp(ctx, a, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dataDir, "data", ".xenft", "data directory (NATS store, images, spools)")
	f.IntVar(&o.hosts, "hosts", 4, "simulated hosts")
	f.BoolVar(&o.chaos, "chaos", false, "crash a random host every --chaos-every")
	f.BoolVar(&o.partition, "partition", false, "with --chaos, also cut hosts off the bus (they self-fence)")
	f.DurationVar(&o.chaosEvery, "chaos-every", 40*time.Second, "time between injected faults")
	f.DurationVar(&o.checkpointEvery, "checkpoint-every", 10*time.Second, "checkpoint interval of the demo groups")
	f.BoolVar(&o.json, "json", false, "print JSON lines (events, faults, status, summary) instead of the live view")
	f.BoolVar(&o.insecure, "insecure", false, "no credentials and no TLS: anyone who reaches the port may do anything")
	f.Int("port", 0, "NATS client port, -1 for any free port (server.port)")
	a.flagKeys(cmd, map[string]string{"port": "server.port"})
	return cmd
}

// portFree reports whether host:port can be listened on now (-1, any
// port, always can).
func portFree(host string, port int) error {
	if port == -1 {
		return nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

// demoPolicy shortens the fencing times so a newcomer sees a recovery in
// seconds; agents and supervisor must agree on the self-fence timeout.
//
// The agents' fence window (self_timeout − action_timeout, the time their
// lease renewals may fail before they destroy their guests) is 7 s: with
// 4 s − 3 s (one second) every simulated host of a busy machine fenced
// itself at the first slow JetStream acknowledgement. A silent host's VMs
// come back 10 s after its last beat.
const (
	demoSelfFence     = 8 * time.Second
	demoActionTimeout = time.Second // the sim destroys in milliseconds
	demoFenceMargin   = 2 * time.Second
)

func runUp(ctx context.Context, a *app, o upOptions, out io.Writer) error {
	cfg := a.cfg
	cfg.Server.DataDir = filepath.Join(o.dataDir, "nats")
	// The demo's own logs would drown the view: warnings and up only, to a file.
	logPath := filepath.Join(o.dataDir, "xenft-up.log")
	lock, err := startFresh(o.dataDir, out)
	if err != nil {
		return err
	}
	defer lock.Close()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	defer logFile.Close()
	log := hclog.New(&hclog.LoggerOptions{Name: "xenft", Level: hclog.LevelFromString(cfg.Log.Level), Output: logFile, JSONFormat: cfg.Log.JSON})

	var creds *upCreds
	if !o.insecure {
		if creds, err = issueUpCredentials(o.dataDir, cfg.Bus.Prefix, o.hosts); err != nil {
			return err
		}
		creds.secure(&cfg)
	}
	if err := portFree(cfg.Server.Host, cfg.Server.Port); err != nil && o.portAsked {
		// Said at once: the embedded server would only time out waiting
		// to be ready.
		return fmt.Errorf("server.port %d: %w", cfg.Server.Port, err)
	}
	srv, err := embedded.Start(cfg.Server, log, 15*time.Second)
	if err != nil && cfg.Server.Port != -1 && !o.portAsked {
		// Port 4222 is often taken (another NATS, another xenft up): any
		// free port will do for a demo (the URL is printed).
		cfg.Server.Port = -1
		srv, err = embedded.Start(cfg.Server, log, 15*time.Second)
	}
	if err != nil {
		return fmt.Errorf("server.port %d: %w", cfg.Server.Port, err)
	}
	defer srv.Shutdown()
	// The server's own connection creates the stream and buckets.
	ownCfg := cfg.Bus
	ownCfg.ClientName = "xenft-up-server"
	own, err := srv.ConnectOwner(ownCfg, log)
	if err != nil {
		return err
	}
	err = ensureResources(ctx, own, log)
	own.Close()
	if err != nil {
		return err
	}
	st, err := store.NewDir(filepath.Join(o.dataDir, "images"))
	if err != nil {
		return err
	}

	d := &demo{a: a, o: o, cfg: cfg, srv: srv, creds: creds, st: st, log: log, out: out, started: time.Now(), hosts: map[string]*simHost{}}
	bus, err := d.connect("xenft-up", upSelf)
	if err != nil {
		return err
	}
	defer bus.Close()
	d.bus = bus
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// The watchers first, so the view and summary see everything.
	d.rec = newRecorder()
	wg.Add(1)
	go func() { defer wg.Done(); d.rec.follow(ctx, bus) }()

	for i := 1; i <= o.hosts; i++ {
		if err := d.startHost(ctx, &wg, upHost(i), true); err != nil {
			return err
		}
	}
	if err := d.register(ctx); err != nil {
		return err
	}
	if err := d.startRoles(ctx, &wg); err != nil {
		return err
	}
	if err := d.announce(); err != nil {
		return err
	}
	if o.chaos {
		wg.Add(1)
		go func() { defer wg.Done(); d.chaos(ctx, &wg) }()
	}
	d.show(ctx)
	cancel()
	wg.Wait()
	d.summary()
	return nil
}

// startRoles runs the supervisor and the detector in this process.
func (d *demo) startRoles(ctx context.Context, wg *sync.WaitGroup) error {
	scfg := d.cfg.Supervisor
	scfg.ID = upSupervisor.Name
	scfg.CheckpointInterval = d.o.checkpointEvery
	scfg.Policy = core.DefaultPolicy()
	scfg.Policy.FenceSelfTimeout, scfg.Policy.FenceMargin = demoSelfFence, demoFenceMargin
	sbus, err := d.connect("xenft-up-supervisor", upSupervisor)
	if err != nil {
		return err
	}
	sup, err := supervisor.New(ctx, sbus, d.st, scfg, d.log)
	if err != nil {
		return err
	}
	dbus, err := d.connect("xenft-up-detector", upDetector)
	if err != nil {
		return err
	}
	dcfg := d.cfg.Detector
	dcfg.ID = upDetector.Name
	mon, err := detector.NewMonitor(dbus, dcfg, d.log)
	if err != nil {
		return err
	}
	d.sup, d.mon = sup, mon
	wg.Add(2)
	go func() { defer wg.Done(); defer sbus.Close(); _ = sup.Run(ctx) }()
	go func() { defer wg.Done(); defer dbus.Close(); _ = mon.Run(ctx) }()
	return nil
}

// connect opens another in-process connection as id (each role and host
// has its own, so a host can be cut off alone), with id's seed unless the
// demo runs --insecure. Nothing leaves the process: no TLS.
func (d *demo) connect(name string, id events.Publisher) (*events.Bus, error) {
	c := d.cfg.Bus
	c.ClientName = name
	c.TLS = events.TLSFiles{}
	if d.creds != nil {
		c.Auth = events.ClientAuth{NKeySeedFile: d.creds.seed(id)}
	}
	return events.Connect(c, d.log, events.InProcess(d.srv), events.As(id.Role, id.Name))
}

// register puts the demo's VMs in the inventory: a 3-VM group spread over
// the first three hosts, and two single VMs.
func (d *demo) register(ctx context.Context) error {
	vms, err := d.bus.KV(ctx, d.bus.Names().VMs())
	if err != nil {
		return err
	}
	groups, err := d.bus.KV(ctx, d.bus.Names().Groups())
	if err != nil {
		return err
	}
	inv := supervisor.NewInventory(vms, groups)
	for _, v := range demoVMs(d.o.hosts) {
		if err := inv.PutVM(ctx, v.spec); err != nil {
			return err
		}
	}
	return inv.PutGroup(ctx, supervisor.GroupSettings{Name: "mpi", CheckpointInterval: supervisor.Duration(d.o.checkpointEvery), Retain: 3})
}

func (d *demo) announce() error {
	url, images := d.srv.ClientURL(), filepath.Join(d.o.dataDir, "images")
	var adminCfg, natsCLI string
	if d.creds != nil {
		var err error
		if adminCfg, err = d.creds.adminConfig(url, d.cfg.Bus.Prefix); err != nil {
			return err
		}
		natsCLI = d.creds.natsCLI(url, d.cfg.Bus.Prefix)
	}
	if d.o.json {
		ev := map[string]any{"kind": "started", "nats_url": url, "hosts": d.o.hosts, "data": d.o.dataDir, "store_dir": images, "secured": d.creds != nil}
		if d.creds != nil {
			ev["auth_dir"], ev["operator_config"], ev["nats_cli"] = d.creds.dir, adminCfg, natsCLI
		}
		d.rec.emit(ev)
		return nil
	}
	// How another terminal reaches the bus: the operator's configuration,
	// or the URL alone without credentials.
	reach := "--nats " + url
	secured := "no credentials, no TLS (--insecure)"
	if d.creds != nil {
		reach = "--config " + adminCfg
		secured = "TLS and a credential per role, issued into " + d.creds.dir
	}
	fmt.Fprintf(d.out, "xenft up: embedded NATS with JetStream at %s (%s); %d simulated hosts; logs in %s\n",
		url, secured, d.o.hosts, filepath.Join(d.o.dataDir, "xenft-up.log"))
	fmt.Fprintf(d.out, "  watch from another terminal: xenft events tail %s\n", reach)
	fmt.Fprintf(d.out, "  checkpoints: xenft checkpoint list %s; verify their images: xenft checkpoint verify mpi %[1]s --store-dir %s\n", reach, images)
	if d.creds != nil {
		fmt.Fprintf(d.out, "  with the nats CLI, as monitor/mon: %s\n", natsCLI)
	}
	return nil
}
