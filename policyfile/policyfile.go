// Package policyfile reads a stepup policy table from a YAML or JSON file,
// so that the table can live beside the application's configuration
// rather than in its Go source:
//
//	policies, err := policyfile.Load("policies.yaml")
//	if err != nil {
//		log.Fatal(err)
//	}
//	guard, err := stepup.New(stepup.Config{Policies: policies, …})
//
// It is a package of its own so that an application declaring its policies
// in Go does not link a YAML decoder.
//
// JSON, and YAML written the usual way (block mappings and sequences,
// one-line flow mappings such as {name: amount, from: form, key: amount},
// plain and quoted one-line scalars, comments), are decoded by strict
// one-pass decoders of the package's own: 100,000 entries in well under a
// second. Any other YAML (anchors and aliases, tags, block scalars, flow
// sequences such as methods: [PASSKEY], values such as yes, ~ or 0x10
// whose type YAML resolves)
// goes through goccy/go-yaml, which reads it exactly as before but takes
// seconds and gigabytes for a table that large. Both read every document
// the same way and refuse the same documents.
package policyfile

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/internal/yamlx"
)

// File is the document Load and Parse read:
//
//	policies:
//	  - method: POST
//	    route: /transfer
//	    action: transfer
//	    attributes:
//	      - {name: amount, from: form, key: amount, type: number, display: true}
//	  - method: POST
//	    route: /settings/email
//	    action: changeEmail
//	    methods: [PASSKEY]  # the verification methods accepted; default any
//	    unenrolled: enroll
//	  - method: "*"
//	    route: /admin/*
//	    action: adminAccess
//	    remember: 5m
//	    review: 24h        # REVIEW_REQUIRED parks for a reviewer this long
//	    failOpen: false
//	    unenrolled: deny   # the default; or enroll, or allow
//
// JSON with the same field names is accepted too. Unknown fields are errors.
type File struct {
	Policies []Entry `json:"policies" yaml:"policies"`
}

// Entry is one stepup.Policy as written in a file.
type Entry struct {
	Method   string `json:"method" yaml:"method"`
	Route    string `json:"route" yaml:"route"`
	Action   string `json:"action" yaml:"action"`
	Remember string `json:"remember,omitempty" yaml:"remember,omitempty"` // a Go duration: "5m"
	Review   string `json:"review,omitempty" yaml:"review,omitempty"`     // a Go duration: "24h" (stepup.Policy.Review)
	FailOpen bool   `json:"failOpen,omitempty" yaml:"failOpen,omitempty"`
	// Unenrolled is stepup.Policy.Unenrolled: deny (the default), enroll
	// or allow.
	Unenrolled string `json:"unenrolled,omitempty" yaml:"unenrolled,omitempty"`
	// Methods is stepup.Policy.Methods: Authsignal's names of the
	// verification methods the action accepts, such as PASSKEY.
	Methods    []string    `json:"methods,omitempty" yaml:"methods,omitempty"`
	Attributes []Attribute `json:"attributes,omitempty" yaml:"attributes,omitempty"`
}

// Attribute is one stepup.Attribute as written in a file.
type Attribute struct {
	Name string `json:"name" yaml:"name"`
	From string `json:"from" yaml:"from"`
	Key  string `json:"key" yaml:"key"`
	Type string `json:"type,omitempty" yaml:"type,omitempty"`
	// Display is stepup.Attribute.Display: the value is shown to the user
	// as part of what they approve.
	Display bool `json:"display,omitempty" yaml:"display,omitempty"`
}

// Parse reads a policy table from YAML or JSON and checks every entry as
// stepup.New would (stepup.CheckPolicies). Errors name the offending entry.
func Parse(data []byte) ([]stepup.Policy, error) {
	f, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("stepup: policy file: %w", err)
	}
	if len(f.Policies) == 0 {
		return nil, errors.New("stepup: policy file: no policies")
	}
	ps := make([]stepup.Policy, 0, len(f.Policies))
	for i, e := range f.Policies {
		p := stepup.Policy{Method: e.Method, Route: e.Route, Action: e.Action, FailOpen: e.FailOpen, Unenrolled: e.Unenrolled,
			Methods: e.Methods}
		if e.Remember != "" {
			d, err := time.ParseDuration(e.Remember)
			if err != nil {
				return nil, fmt.Errorf("stepup: policy %d (%s %s): remember: %w", i, e.Method, e.Route, err)
			}
			p.Remember = d
		}
		if e.Review != "" {
			d, err := time.ParseDuration(e.Review)
			if err != nil {
				return nil, fmt.Errorf("stepup: policy %d (%s %s): review: %w", i, e.Method, e.Route, err)
			}
			p.Review = d
		}
		for _, a := range e.Attributes {
			p.Attributes = append(p.Attributes, stepup.Attribute{Name: a.Name, From: stepup.Source(a.From), Key: a.Key,
				Type: stepup.ValueType(a.Type), Display: a.Display})
		}
		ps = append(ps, p)
	}
	if err := stepup.CheckPolicies(ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// decode reads a JSON document with decodeJSON, a YAML document in the
// subset decodeYAML knows with decodeYAML, and anything else with
// goccy/go-yaml.
func decode(data []byte) (File, error) {
	var f File
	if isJSON(data) {
		return f, decodeJSON(data, &f)
	}
	err := decodeYAML(data, &f)
	if err != errFallback {
		return f, err
	}
	f = File{}
	return f, yamlx.Unmarshal(data, &f)
}

// Load reads a policy file; see Parse.
func Load(path string) ([]stepup.Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stepup: %w", err)
	}
	return Parse(data)
}
