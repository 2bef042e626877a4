package main

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// checkValues refuses a value of the wrong type for a duration, number or
// boolean key before the configuration is decoded, naming the key, the
// value and where it was set, always with the key's environment variable:
//
//	heartbeat.interval: "5x" is not a duration such as 1s or 500ms (set by XENFT_HEARTBEAT_INTERVAL)
//
// The decoder's own message names the key with a wrapped parser error and
// nothing of where the value came from. A duration must have a unit: 5 in
// the YAML file would otherwise be read as 5 ns.
func (l *loader) checkValues(file string) error {
	keys := make([]string, 0, len(l.kinds))
	for k := range l.kinds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, key := range keys {
		if problem := badValue(l.kinds[key], l.v.Get(key)); problem != "" {
			errs = append(errs, fmt.Errorf("%s: %s (%s)", key, problem, l.source(key, file)))
		}
	}
	if len(errs) > 0 {
		return &usageError{errors.Join(errs...)}
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

// badValue says what is wrong with v as a value of type t, or "" if nothing
// this check knows of.
func badValue(t reflect.Type, v any) string {
	if t == durationType {
		switch v := v.(type) {
		case string:
			if _, err := time.ParseDuration(v); err != nil {
				return fmt.Sprintf("%q is not a duration such as 1s, 500ms or 2m30s", v)
			}
		case int, int64, float64:
			if fmt.Sprint(v) != "0" {
				return fmt.Sprintf("%v is not a duration: give a unit, such as %vs or %vms", v, v, v)
			}
		}
		return ""
	}
	s, ok := v.(string)
	if !ok {
		return ""
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if _, err := strconv.ParseInt(s, 0, t.Bits()); err != nil {
			return fmt.Sprintf("%q is not an integer", s)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if _, err := strconv.ParseUint(s, 0, t.Bits()); err != nil {
			return fmt.Sprintf("%q is not a non-negative integer", s)
		}
	case reflect.Float32, reflect.Float64:
		if _, err := strconv.ParseFloat(s, t.Bits()); err != nil {
			return fmt.Sprintf("%q is not a number", s)
		}
	case reflect.Bool:
		if _, err := strconv.ParseBool(s); err != nil {
			return fmt.Sprintf("%q is not true or false", s)
		}
	}
	return ""
}

// source says where key's value came from, in viper's precedence (a flag
// the command line set, the environment, the file), always naming the
// environment variable that overrides it.
func (l *loader) source(key, file string) string {
	env := envName(key)
	if f := l.flags[key]; f != nil && f.Changed {
		return fmt.Sprintf("set by --%s; environment variable %s", f.Name, env)
	}
	if os.Getenv(env) != "" {
		return "set by " + env
	}
	if file != "" && l.v.InConfig(key) {
		return fmt.Sprintf("set in %s; environment variable %s", file, env)
	}
	return "environment variable " + env
}

// durationHook parses a string into a time.Duration, its error naming the
// value (mapstructure's own hook drops it); checkValues has refused the
// scalar keys already, so this speaks for durations inside lists
// (detector.plugins).
func durationHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != durationType {
		return data, nil
	}
	d, err := time.ParseDuration(data.(string))
	if err != nil {
		return nil, fmt.Errorf("%q is not a duration such as 1s, 500ms or 2m30s", data)
	}
	return d, nil
}

// decodeError turns the decoder's errors into one usage error naming each
// field ("detector.plugins[0].interval: ...") and where its key was set.
func (l *loader) decodeError(err error, file string) error {
	var parts []string
	var walk func(error) bool // reports whether it found a field error
	walk = func(e error) bool {
		if de, ok := e.(*mapstructure.DecodeError); ok {
			if walk(de.Unwrap()) {
				return true
			}
			parts = append(parts, fmt.Sprintf("%s: %v (%s)", de.Name(), de.Unwrap(), l.source(l.keyOf(de.Name()), file)))
			return true
		}
		found := false
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, inner := range u.Unwrap() {
				found = walk(inner) || found
			}
		case interface{ Unwrap() error }:
			found = walk(u.Unwrap())
		}
		return found
	}
	if !walk(err) {
		return usageErrorf("configuration: %s", strings.TrimPrefix(oneLine(err.Error()), "decoding failed due to the following error(s):; "))
	}
	return &usageError{errors.New(strings.Join(parts, "; "))}
}

// keyOf is the configuration key a decoded field belongs to:
// "detector.plugins[0].interval" is set by detector.plugins.
func (l *loader) keyOf(field string) string {
	for k := field; k != ""; {
		if l.known[k] {
			return k
		}
		i := strings.LastIndexAny(k, ".[")
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return field
}
