package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/events"
)

func newEventsCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "Watch the event stream"}
	cmd.AddCommand(newTailCommand(a))
	return cmd
}

type tailOptions struct {
	types []string
	since time.Duration
	json  bool
	count int
}

func newTailCommand(a *app) *cobra.Command {
	var o tailOptions
	cmd := &cobra.Command{
		Use:   "tail",
		Short: "Print events as they come",
		Long: `Prints events from the stream as they arrive: a table by default, one
CloudEvent JSON per line with --json. --since 10m starts ten minutes back
(history kept by the stream); without it only new events are shown.`,
		Example: `  xenft events tail
  xenft events tail --type node.failed --type node.fault --since 1h
  xenft events tail --json | jq .data`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var filters []string
			var typs []events.Type
			for _, s := range o.types {
				t, ok := events.ParseType(s)
				if !ok {
					return usageErrorf("--type: unknown event type %q (known: %s)", s, knownTypes())
				}
				typs = append(typs, t)
			}
			if o.since < 0 {
				return usageErrorf("--since: must not be negative, got %s", o.since)
			}
			if err := a.setup(cmd, validateBus); err != nil {
				return err
			}
			for _, t := range typs {
				filters = append(filters, events.Subjects{Prefix: a.cfg.Bus.Prefix}.EventsOfType(t))
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			return runTail(ctx, a, filters, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.types, "type", nil, "only events of this type (node.failed or xenft.node.failed); repeatable")
	f.DurationVar(&o.since, "since", 0, "start this far back in the stream's history (e.g. 30m); 0 for new events only")
	f.BoolVar(&o.json, "json", false, "print each event as one line of CloudEvents JSON")
	f.IntVar(&o.count, "count", 0, "exit after this many events (0: run until interrupted)")
	addBusFlags(a, cmd)
	return cmd
}

func runTail(ctx context.Context, a *app, filters []string, o tailOptions, out io.Writer) error {
	cfg := a.cfg.Bus
	cfg.ClientName = "xenft-events-tail"
	bus, err := events.Connect(cfg, a.log)
	if err != nil {
		return err
	}
	defer bus.Close()
	tc := events.TailConfig{Filters: filters}
	if o.since > 0 {
		tc.Since = time.Now().Add(-o.since)
	}
	if !o.json {
		fmt.Fprintf(out, "%-24s %-26s %-18s %s\n", "TIME", "TYPE", "SUBJECT", "DATA")
	}
	n := 0
	errDone := errors.New("count reached")
	err = bus.Tail(ctx, tc, func(_ context.Context, ev events.Event, _ events.Meta) error {
		if o.json {
			b, _ := json.Marshal(ev)
			fmt.Fprintln(out, string(b))
		} else {
			fmt.Fprintf(out, "%-24s %-26s %-18s %s\n", ev.Time.Local().Format("2006-01-02 15:04:05.000"), ev.Type.Short(), ev.Subject, summarize(ev.Data))
		}
		n++
		if o.count > 0 && n >= o.count {
			return errDone
		}
		return nil
	})
	if errors.Is(err, errDone) || errors.Is(err, events.ErrStopped) {
		return nil
	}
	return err
}

// summarize renders an event's data as key=value pairs in the order they were
// written, which reads well in a terminal for every type without a formatter
// per type.
func summarize(data json.RawMessage) string {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return string(data)
	}
	var parts []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			break
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		s := string(v)
		var str string
		if json.Unmarshal(v, &str) == nil {
			s = str
			if strings.ContainsAny(s, " \t") {
				s = fmt.Sprintf("%q", s)
			}
		}
		parts = append(parts, fmt.Sprintf("%v=%s", k, s))
	}
	return strings.Join(parts, " ")
}

func knownTypes() string {
	var s []string
	for _, t := range events.Types() {
		s = append(s, t.Short())
	}
	return strings.Join(s, ", ")
}

func newEventCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{Use: "event", Short: "Inject events (how site scripts plug in)"}
	cmd.AddCommand(newPublishCommand(a))
	return cmd
}

type publishOptions struct {
	typ, subject, data, id, source string
}

func newPublishCommand(a *app) *cobra.Command {
	var o publishOptions
	var ev events.Event
	cmd := a.busCommand(&cobra.Command{
		Use:   "publish",
		Short: "Validate and publish one event",
		Long: `Publishes one CloudEvent on the stream after checking it against the type's
JSON Schema. An invalid event is refused with a one-line error naming the field
and exit status 2; nothing is published. --data takes JSON, @FILE, or - for
standard input.`,
		Example: `  xenft event publish --type node.fault --subject host/n3 \
      --data '{"host":"n3","severity":"fatal","reason":"IPMI: PSU failure"}'`,
		Args: cobra.NoArgs,
	}, busCall{
		check: func(cmd *cobra.Command, _ []string) (err error) {
			ev, err = buildEvent(o, cmd.InOrStdin())
			return err
		},
		client: "xenft-event-publish",
		run: func(cmd *cobra.Command, _ []string, bus *events.Bus) error {
			ack, err := bus.PublishAck(cmd.Context(), ev)
			if err != nil {
				return err
			}
			note := ""
			if ack.Duplicate {
				note = " (duplicate id: already in the stream, not stored again)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "published %s %s id=%s seq=%d%s\n", ev.Type.Short(), ev.Subject, ev.ID, ack.Sequence, note)
			return nil
		},
	})
	f := cmd.Flags()
	f.StringVar(&o.typ, "type", "", "event type, e.g. node.fault (required)")
	f.StringVar(&o.subject, "subject", "", "CloudEvents subject, e.g. host/n3 (required)")
	f.StringVar(&o.data, "data", "", "event data as JSON, @FILE or - (required)")
	f.StringVar(&o.id, "id", "", "event id (default: random); the stream drops a repeated id")
	f.StringVar(&o.source, "source", "", "CloudEvents source (default: xenft-cli/<hostname>)")
	return cmd
}

// buildEvent turns the flags into a validated event, or a usage error naming
// the flag or field at fault. It runs before any connection is made.
func buildEvent(o publishOptions, stdin io.Reader) (events.Event, error) {
	for _, f := range []struct{ flag, v string }{{"--type", o.typ}, {"--subject", o.subject}, {"--data", o.data}} {
		if f.v == "" {
			return events.Event{}, usageErrorf("%s: required", f.flag)
		}
	}
	t, ok := events.ParseType(o.typ)
	if !ok {
		return events.Event{}, usageErrorf("--type: unknown event type %q (known: %s)", o.typ, knownTypes())
	}
	raw, err := readData(o.data, stdin)
	if err != nil {
		return events.Event{}, err
	}
	if !json.Valid(raw) {
		var v any
		err := json.Unmarshal(raw, &v)
		return events.Event{}, usageErrorf("--data: invalid JSON: %v", err)
	}
	source := o.source
	if source == "" {
		h, _ := os.Hostname()
		source = "xenft-cli/" + h
	}
	ev := events.Event{
		SpecVersion:     events.SpecVersion,
		ID:              o.id,
		Source:          source,
		Type:            t,
		Subject:         o.subject,
		Time:            time.Now().UTC(),
		DataContentType: events.ContentTypeJSON,
		Data:            raw,
	}
	if ev.ID == "" {
		ev.ID = events.NewID()
	}
	if _, err := events.Encode(ev); err != nil {
		return events.Event{}, asUsage(err)
	}
	return ev, nil
}

func readData(arg string, stdin io.Reader) ([]byte, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(io.LimitReader(stdin, events.MaxEventSize+1))
		if err != nil {
			return nil, usageErrorf("--data -: %v", err)
		}
		return b, nil
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, usageErrorf("--data: %v", err)
		}
		return b, nil
	}
	return []byte(arg), nil
}
