package events

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaFS holds one JSON Schema per event type (<kind>.<name>.json) and the
// shared definitions they reference (envelope.json). docs/schema links here so
// detector and monitor authors read the very files the binary checks against.
//
//go:embed schema/*.json
var schemaFS embed.FS

const schemaBase = "https://xenft.dev/schema/"

// SchemaFS returns the embedded schema files (for xenft to print or serve).
func SchemaFS() fs.FS {
	sub, _ := fs.Sub(schemaFS, "schema")
	return sub
}

type schemaSet struct {
	byType map[Type]*jsonschema.Schema
	err    error
}

var (
	schemaOnce sync.Once
	compiled   schemaSet
)

// schemas compiles the embedded schemas once. A compile failure is a build
// defect (the files ship in the binary), caught by the package's tests; at run
// time it turns every event invalid instead of panicking.
func schemas() *schemaSet {
	schemaOnce.Do(func() { compiled = compileSchemas() })
	return &compiled
}

func compileSchemas() schemaSet {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	entries, err := fs.ReadDir(schemaFS, "schema")
	if err != nil {
		return schemaSet{err: err}
	}
	for _, e := range entries {
		b, err := schemaFS.ReadFile("schema/" + e.Name())
		if err != nil {
			return schemaSet{err: err}
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return schemaSet{err: fmt.Errorf("schema %s: %w", e.Name(), err)}
		}
		if err := c.AddResource(schemaBase+e.Name(), doc); err != nil {
			return schemaSet{err: fmt.Errorf("schema %s: %w", e.Name(), err)}
		}
	}
	set := schemaSet{byType: make(map[Type]*jsonschema.Schema, len(registry))}
	for t := range registry {
		sch, err := c.Compile(schemaBase + SchemaFile(t))
		if err != nil {
			return schemaSet{err: fmt.Errorf("schema of %s: %w", t, err)}
		}
		set.byType[t] = sch
	}
	return set
}

// SchemaFile is the file name of t's schema ("node.failed.json").
func SchemaFile(t Type) string {
	return strings.TrimPrefix(string(t), "xenft.") + ".json"
}

func (s *schemaSet) validate(t Type, inst any) error {
	if s.err != nil {
		return fmt.Errorf("%w: schemas unavailable: %v", ErrInvalid, s.err)
	}
	if err := s.byType[t].Validate(inst); err != nil {
		return describeValidation(t, err)
	}
	return nil
}
