package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/xenft/xenft/detector"
)

// envValueFor makes an override of the same type as def that differs from it.
func envValueFor(t *testing.T, key string, def any) (string, any) {
	switch d := def.(type) {
	case string:
		return "env-" + d, "env-" + d
	case int:
		return fmt.Sprint(d + 2), d + 2
	case int64:
		return fmt.Sprint(d + 2), d + 2
	case bool:
		return fmt.Sprint(!d), !d
	case time.Duration:
		return (d + 3*time.Second).String(), d + 3*time.Second
	case []string:
		return "nats://a:1,nats://b:2", []string{"nats://a:1", "nats://b:2"}
	case float64:
		return fmt.Sprint(d + 1.5), d + 1.5
	case []detector.PluginConfig:
		return `[{"name":"ipmi","command":"/bin/true","interval":"7s","timeout":"2s"}]`,
			[]detector.PluginConfig{{Name: "ipmi", Command: "/bin/true", Interval: 7 * time.Second, Timeout: 2 * time.Second}}
	}
	t.Fatalf("key %s: no env test value for type %T", key, def)
	return "", nil
}

func TestEveryKeyIsOverriddenByItsEnvironmentVariable(t *testing.T) {
	base := newLoader()
	keys := base.keys()
	if len(keys) < 20 {
		t.Fatalf("only %d keys registered", len(keys))
	}
	for _, key := range keys {
		t.Run(key, func(t *testing.T) {
			l := newLoader()
			raw, want := envValueFor(t, key, l.v.Get(key))
			t.Setenv(envName(key), raw)
			cfg, err := l.load("")
			if err != nil {
				t.Fatalf("load with %s=%s: %v", envName(key), raw, err)
			}
			got := fieldByKey(t, reflect.ValueOf(cfg), key)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s=%s gave %s = %#v, want %#v", envName(key), raw, key, got, want)
			}
		})
	}
}

// fieldByKey walks the mapstructure tags of cfg to the value of key.
func fieldByKey(t *testing.T, v reflect.Value, key string) any {
	for _, part := range strings.Split(key, ".") {
		found := false
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).Tag.Get("mapstructure") == part {
				v = v.Field(i)
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("no field for %s", key)
		}
	}
	return v.Interface()
}

func TestPrecedenceFileThenEnvThenFlag(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("bus:\n  request_timeout: 11s\n  connect_timeout: 12s\n  replicas: 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("XENFT_BUS_CONNECT_TIMEOUT", "13s")
	t.Setenv("XENFT_BUS_REPLICAS", "2")
	a := &app{loader: newLoader(), flags: map[*cobra.Command]map[string]string{}, configFile: file}
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().Int("replicas", 0, "")
	a.flagKeys(cmd, map[string]string{"replicas": "bus.replicas"})
	if err := cmd.Flags().Set("replicas", "5"); err != nil {
		t.Fatal(err)
	}
	if err := a.setup(cmd); err != nil {
		t.Fatal(err)
	}
	if a.cfg.Bus.RequestTimeout != 11*time.Second || a.cfg.Bus.ConnectTimeout != 13*time.Second || a.cfg.Bus.Replicas != 5 {
		t.Fatalf("got request_timeout %s (file), connect_timeout %s (env), replicas %d (flag)",
			a.cfg.Bus.RequestTimeout, a.cfg.Bus.ConnectTimeout, a.cfg.Bus.Replicas)
	}
}

func TestEveryFlagIsBoundToAKnownKey(t *testing.T) {
	a := &app{loader: newLoader(), flags: map[*cobra.Command]map[string]string{}}
	for _, c := range []*cobra.Command{newUpCommand(a), newServerCommand(a), newTailCommand(a), newPublishCommand(a)} {
		for flag, key := range a.flags[c] {
			if err := a.loader.bindFlag(key, c.Flags(), flag); err != nil {
				t.Errorf("%s: %v", c.Name(), err)
			}
		}
	}
	if err := a.loader.bindFlag("bus.nope", newTailCommand(a).Flags(), "nats"); err == nil {
		t.Error("binding to an unknown key succeeded")
	}
}

func TestExampleConfigsLoadAndValidate(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	more, _ := filepath.Glob("../../configs/cluster/*.yaml")
	files = append(files, more...)
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := newLoader().load(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, err := range []error{cfg.Log.Validate("log"), cfg.Bus.Validate("bus"), cfg.Server.Validate("server"),
				cfg.Store.Validate("store"), cfg.Agent.Validate("agent"), cfg.Supervisor.Validate("supervisor"),
				cfg.Detector.Validate("detector"), cfg.Heartbeat.Validate("heartbeat")} {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestSummarizeKeepsFieldOrder(t *testing.T) {
	got := summarize([]byte(`{"host":"n3","severity":"fatal","reason":"PSU failure","n":3}`))
	if got != `host=n3 severity=fatal reason="PSU failure" n=3` {
		t.Fatalf("summarize = %q", got)
	}
	if got := summarize([]byte(`"x"`)); got != `"x"` {
		t.Fatalf("summarize of a non-object = %q", got)
	}
}
