package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/xenft/xenft/detector"
	"github.com/xenft/xenft/events"
	"github.com/xenft/xenft/events/embedded"
	"github.com/xenft/xenft/supervisor"
)

// Config is the whole configuration file. Each role reads the sections it
// needs and validates only those; one file can serve every role on a machine.
// Every key can be set in the YAML file (--config), overridden by the
// environment as XENFT_<SECTION>_<KEY> (bus.connect_timeout is
// XENFT_BUS_CONNECT_TIMEOUT; nested keys join with '_'; lists are
// comma-separated), and by the command's flags, in rising precedence.
type Config struct {
	Log        LogConfig             `mapstructure:"log"`
	Bus        events.BusConfig      `mapstructure:"bus"`
	Server     embedded.Config       `mapstructure:"server"`
	Store      StoreConfig           `mapstructure:"store"`
	Agent      AgentConfig           `mapstructure:"agent"`
	Supervisor supervisor.Config     `mapstructure:"supervisor"`
	Detector   detector.Config       `mapstructure:"detector"`
	Heartbeat  detector.BeaconConfig `mapstructure:"heartbeat"`
}

// LogConfig is the "log" section.
type LogConfig struct {
	// Level is trace, debug, info, warn or error.
	Level string `mapstructure:"level"`
	// JSON writes one JSON object per line instead of text.
	JSON bool `mapstructure:"json"`
}

// Validate checks the log section.
func (c LogConfig) Validate(section string) error {
	switch strings.ToLower(c.Level) {
	case "trace", "debug", "info", "warn", "error":
		return nil
	}
	return fmt.Errorf("%s.level: %q is not one of trace, debug, info, warn, error", section, c.Level)
}

// DefaultConfig is the configuration with no file, environment or flags.
func DefaultConfig() Config {
	return Config{
		Log:        LogConfig{Level: "info"},
		Bus:        events.DefaultBusConfig(),
		Server:     embedded.DefaultConfig(),
		Store:      StoreConfig{Backend: "dir", Dir: ".xenft/images"},
		Agent:      defaultAgentConfig(),
		Supervisor: supervisor.DefaultConfig(),
		Detector:   detector.DefaultConfig(),
		Heartbeat:  detector.DefaultBeaconConfig(),
	}
}

// loader reads the configuration in layers: defaults, the YAML file, the
// environment and the flags bound with bindFlag.
type loader struct {
	v     *viper.Viper
	known map[string]bool // every key of Config; lists of structs are leaves
	kinds map[string]reflect.Type
	flags map[string]*pflag.Flag // the flag bound to a key, if any
}

func newLoader() *loader {
	l := &loader{v: viper.New(), known: map[string]bool{}, kinds: map[string]reflect.Type{}, flags: map[string]*pflag.Flag{}}
	l.register("", reflect.ValueOf(DefaultConfig()))
	return l
}

// register declares every leaf key of a config struct to viper with its
// default and its XENFT_* environment variable: viper only consults the
// environment for keys it knows, so this is what makes every key overridable.
func (l *loader) register(prefix string, val reflect.Value) {
	t := val.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		fv := val.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Time{}) {
			l.register(key, fv)
			continue
		}
		l.known[key] = true
		l.kinds[key] = f.Type
		l.v.SetDefault(key, fv.Interface())
		_ = l.v.BindEnv(key, envName(key))
	}
}

// envName is the environment variable overriding key.
func envName(key string) string {
	return "XENFT_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// bindFlag makes flag name set key when the user passes it.
func (l *loader) bindFlag(key string, fs *pflag.FlagSet, name string) error {
	f := fs.Lookup(name)
	if !l.known[key] || f == nil {
		return fmt.Errorf("flag --%s is bound to unknown configuration key %q", name, key)
	}
	l.flags[key] = f
	return l.v.BindPFlag(key, f)
}

// load reads file (if any) and returns the merged configuration. Errors are
// usage errors naming the file or key.
func (l *loader) load(file string) (Config, error) {
	if file != "" {
		l.v.SetConfigFile(file)
		l.v.SetConfigType("yaml")
		if err := l.v.ReadInConfig(); err != nil {
			var pathErr *os.PathError
			if errors.As(err, &pathErr) {
				return Config{}, usageErrorf("--config: %v", pathErr)
			}
			return Config{}, usageErrorf("--config %s: %v", file, err)
		}
		if unknown := l.unknownKeys(); len(unknown) > 0 {
			return Config{}, usageErrorf("--config %s: unknown key %s", file, strings.Join(unknown, ", "))
		}
	}
	if err := l.checkValues(file); err != nil {
		return Config{}, err
	}
	var cfg Config
	hooks := mapstructure.ComposeDecodeHookFunc(jsonListHook, durationHook, mapstructure.StringToSliceHookFunc(","))
	if err := l.v.Unmarshal(&cfg, viper.DecodeHook(hooks)); err != nil {
		return Config{}, l.decodeError(err, file)
	}
	return cfg, nil
}

// jsonListHook lets the environment set a list of structs (detector.plugins)
// as JSON: XENFT_DETECTOR_PLUGINS='[{"name":"ipmi","command":"/usr/lib/xenft/ipmi-check"}]'.
// The parsed maps are then decoded like the YAML file's, durations included.
func jsonListHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice || to.Elem().Kind() != reflect.Struct {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []any{}, nil
	}
	var list []any
	if err := json.Unmarshal([]byte(s), &list); err != nil {
		return nil, fmt.Errorf("expected a JSON list: %w", err)
	}
	return list, nil
}

// unknownKeys lists keys in the file that Config does not have, so a typo is
// an error rather than a silently ignored setting.
func (l *loader) unknownKeys() []string {
	var out []string
	for _, k := range l.v.AllKeys() {
		if l.known[k] || l.underListKey(k) {
			continue
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (l *loader) underListKey(k string) bool {
	for known := range l.known {
		if strings.HasPrefix(k, known+".") {
			return true
		}
	}
	return false
}

// Keys lists every configuration key with its environment variable, sorted:
// the table in README.md and `xenft config keys`.
func (l *loader) keys() []string {
	out := make([]string, 0, len(l.known))
	for k := range l.known {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
