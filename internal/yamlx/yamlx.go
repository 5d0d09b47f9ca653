// Package yamlx decodes the module's YAML (and JSON) documents strictly and
// safely: unknown fields are errors, and a panic of the YAML decoder is an
// error too.
package yamlx

import (
	"fmt"

	"github.com/goccy/go-yaml"
)

// Unmarshal decodes data (YAML, or JSON, which is YAML) into v, rejecting
// fields v does not have. goccy/go-yaml v1.19.2 panics on some malformed
// documents (it dereferences nil on tagged empty nodes, found by the fuzz
// targets of the policy files and of the emulator's rules); that is
// reported as an error, never passed on to the caller.
func Unmarshal(data []byte, v any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("malformed document (YAML parser panic: %v)", p)
		}
	}()
	return yaml.UnmarshalWithOptions(data, v, yaml.DisallowUnknownField())
}
