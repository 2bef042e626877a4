package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/auth"
)

func newAuthCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "auth", Short: "Issue the identities and certificates of a secured cluster (per-role NATS credentials, TLS)"}
	cmd.AddCommand(newAuthInitCommand(a), newAuthAddCommand(a))
	return cmd
}

type authInitOptions struct {
	agents, detectors, supervisors, sites, monitors, operators []string
	dns, ips                                                   []string
	clientCerts                                                bool
}

func newAuthInitCommand(a *app) *cobra.Command {
	var o authInitOptions
	cmd := &cobra.Command{
		Use:   "init DIR",
		Short: "Write a new credential set: a CA, the server certificate, an nkey per identity, identities.json",
		Long: `Writes into DIR (created 0700) everything a secured cluster needs: a CA, the
certificate every server presents to clients and to the other servers (valid
for 127.0.0.1, ::1, localhost and every --dns and --ip), one nkey seed per
identity (<role>-<name>.nk, 0600: copy each to its machine only) and
identities.json, which every server loads (server.auth.identities). The
server lets each identity do what its role needs and nothing else
(docs/security.md). It refuses a DIR that already holds a set; add
identities later with 'xenft auth add'. It prints the configuration keys
each role needs.`,
		Example: `  xenft auth init /etc/xenft/auth --agents n1,n2,n3 --detectors det-a --supervisors sup-a,sup-b \
      --sites ipmi --monitors mon --operators admin --dns nats1.example.org --ip 10.0.0.11`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := o.spec()
			if err != nil {
				return err
			}
			if err := a.setup(cmd, func(c Config) error { return nil }); err != nil {
				return err
			}
			spec.Prefix = a.cfg.Bus.Prefix
			if !events.ValidPrefix(spec.Prefix) {
				return usageErrorf("bus.prefix: %q must be 1-32 letters, digits, '_' or '-'", spec.Prefix)
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			written, err := auth.Init(dir, spec)
			if errors.Is(err, auth.ErrInvalid) {
				return asUsage(err)
			}
			if err != nil {
				return fmt.Errorf("auth init: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "xenft auth: wrote a credential set for prefix %s into %s\n", spec.Prefix, dir)
			printWritten(out, written)
			printServerKeys(out, dir, spec.ClientCerts)
			fmt.Fprintln(out, "\nEach identity, on its own machine (copy its seed there, readable by it alone):")
			tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
			for _, id := range spec.Identities {
				printIdentityKeys(tw, dir, id, spec.ClientCerts)
			}
			_ = tw.Flush()
			printOtherClients(out, dir, spec)
			fmt.Fprintf(out, "\nKeep %s off the hosts.\n", filepath.Join(dir, auth.CAKeyFile))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.agents, "agents", nil, "agents: one per Xen host, named as agent.host")
	f.StringSliceVar(&o.detectors, "detectors", nil, "detectors, named as detector.id")
	f.StringSliceVar(&o.supervisors, "supervisors", nil, "supervisors, named as supervisor.id")
	f.StringSliceVar(&o.sites, "sites", nil, "site plug-ins that publish node.fault themselves")
	f.StringSliceVar(&o.monitors, "monitors", nil, "monitors: read the events, nothing else")
	f.StringSliceVar(&o.operators, "operators", nil, "operators: the xenft CLI (status, vm, checkpoint, event publish)")
	f.StringSliceVar(&o.dns, "dns", nil, "DNS names the servers are reached at (server certificate)")
	f.StringSliceVar(&o.ips, "ip", nil, "IP addresses the servers are reached at (server certificate)")
	f.BoolVar(&o.clientCerts, "client-certs", false, "also issue every identity a client certificate (for server.tls.ca)")
	f.String("prefix", "", "the bus prefix the permissions are for (bus.prefix)")
	a.flagKeys(cmd, map[string]string{"prefix": "bus.prefix"})
	return cmd
}

// spec is the flags as an auth.Spec, or a usage error naming the flag.
func (o authInitOptions) spec() (auth.Spec, error) {
	spec := auth.Spec{ClientCerts: o.clientCerts, DNSNames: o.dns}
	for _, r := range []struct {
		flag, role string
		names      []string
	}{
		{"--supervisors", events.RoleSupervisor, o.supervisors}, {"--detectors", events.RoleDetector, o.detectors},
		{"--agents", events.RoleAgent, o.agents}, {"--sites", events.RoleSite, o.sites},
		{"--monitors", events.RoleMonitor, o.monitors}, {"--operators", events.RoleOperator, o.operators},
	} {
		for _, n := range r.names {
			if !events.ValidName(n) {
				return auth.Spec{}, usageErrorf("%s: %q is not a name (%s)", r.flag, n, events.NameRule)
			}
			spec.Identities = append(spec.Identities, events.Publisher{Role: r.role, Name: n})
		}
	}
	if len(spec.Identities) == 0 {
		return auth.Spec{}, usageErrorf("no identities: name them with --agents, --detectors, --supervisors, --sites, --monitors, --operators")
	}
	for _, s := range o.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return auth.Spec{}, usageErrorf("--ip: %q is not an IP address", s)
		}
		spec.IPs = append(spec.IPs, ip)
	}
	for _, d := range o.dns {
		if d == "" || strings.ContainsAny(d, " /") {
			return auth.Spec{}, usageErrorf("--dns: %q is not a DNS name", d)
		}
	}
	return spec, nil
}

func newAuthAddCommand(a *app) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "add ROLE NAME --dir DIR",
		Short: "Issue one more identity (a new host, a site's script) into a credential set",
		Long: `Issues ROLE/NAME's nkey seed (and client certificate, if the set has them) into
DIR and adds it to DIR/identities.json. Servers read that file when they start:
restart them, one at a time in a cluster, to let the new identity in.`,
		Example: `  xenft auth add agent n4 --dir /etc/xenft/auth`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return usageErrorf("--dir: required (the directory 'xenft auth init' wrote)")
			}
			if err := a.setup(cmd, func(c Config) error { return nil }); err != nil {
				return err
			}
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			written, err := auth.Add(abs, args[0], args[1])
			if errors.Is(err, auth.ErrInvalid) {
				return asUsage(err)
			}
			if err != nil {
				return fmt.Errorf("auth add: %w", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "xenft auth: issued %s/%s in %s\n", args[0], args[1], abs)
			printWritten(out, written)
			f, err := auth.Load(filepath.Join(abs, auth.IdentitiesFile))
			if err != nil {
				return err
			}
			fmt.Fprintln(out, "\nOn its machine:")
			tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
			printIdentityKeys(tw, abs, events.Publisher{Role: args[0], Name: args[1]}, f.ClientCerts)
			_ = tw.Flush()
			fmt.Fprintln(out, "Restart the servers (one at a time) so that they load the new identities.json.")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "the credential set's directory")
	return cmd
}

// printOtherClients says what a client other than xenft needs: its inbox
// prefix, and the nats CLI line of a monitor.
func printOtherClients(out io.Writer, dir string, spec auth.Spec) {
	fmt.Fprintln(out, "\nOther clients (the nats CLI, nats-py, ...) reply to their requests and JetStream publishes")
	fmt.Fprintln(out, "on their own inboxes only: give them the inbox prefix _INBOX.<role>.<name> (nats --inbox-prefix,")
	fmt.Fprintln(out, "nats.connect(inbox_prefix=...)).")
	for _, id := range spec.Identities {
		if id.Role == events.RoleMonitor {
			fmt.Fprintf(out, "A monitor with the nats CLI: nats --server nats://SERVER:4222 --tlsca %s --nkey %s sub '%s'\n",
				filepath.Join(dir, auth.CAFile), filepath.Join(dir, auth.SeedFile(id.Role, id.Name)), events.Subjects{Prefix: spec.Prefix}.AllEvents())
			return
		}
	}
}

func printWritten(out io.Writer, written []auth.Written) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	for _, w := range written {
		fmt.Fprintf(tw, "  %s\t%s\n", w.Path, w.What)
	}
	_ = tw.Flush()
}

// printServerKeys says how every server is configured with the set.
func printServerKeys(out io.Writer, dir string, clientCerts bool) {
	p := func(f string) string { return filepath.Join(dir, f) }
	fmt.Fprintln(out, "\nEvery server (xenft server):")
	fmt.Fprintf(out, "  server.auth.identities: %s\n", p(auth.IdentitiesFile))
	fmt.Fprintf(out, "  server.tls.cert: %s\n  server.tls.key: %s\n", p(auth.ServerCertFile), p(auth.ServerKeyFile))
	if clientCerts {
		fmt.Fprintf(out, "  server.tls.ca: %s   (requires the identities' client certificates)\n", p(auth.CAFile))
	}
	fmt.Fprintf(out, "  in a cluster also server.cluster.tls.cert: %s, .key: %s, .ca: %s\n", p(auth.ServerCertFile), p(auth.ServerKeyFile), p(auth.CAFile))
}

// printIdentityKeys prints the configuration keys id's role needs: its
// seed, the CA, and who it is (the daemons name themselves by their own
// keys; sites and operators by bus.identity).
func printIdentityKeys(tw io.Writer, dir string, id events.Publisher, clientCerts bool) {
	keys := []string{"bus.auth.nkey_seed_file: " + filepath.Join(dir, auth.SeedFile(id.Role, id.Name)),
		"bus.tls.ca: " + filepath.Join(dir, auth.CAFile)}
	switch id.Role {
	case events.RoleAgent:
		keys = append(keys, "agent.host: "+id.Name)
	case events.RoleDetector:
		keys = append(keys, "detector.id: "+id.Name)
	case events.RoleSupervisor:
		keys = append(keys, "supervisor.id: "+id.Name)
	default:
		keys = append(keys, "bus.identity: "+id.String())
	}
	if clientCerts {
		cert, key := auth.ClientCertFiles(id.Role, id.Name)
		keys = append(keys, "bus.tls.cert: "+filepath.Join(dir, cert), "bus.tls.key: "+filepath.Join(dir, key))
	}
	fmt.Fprintf(tw, "  %s\t%s\n", id, strings.Join(keys, "  "))
}
