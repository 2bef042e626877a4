package main

import "strings"

// oneLine folds a multi-line error (errors.Join, mapstructure, YAML) into one
// line, so every failure is a single line an operator can grep.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "* "))
		if l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
