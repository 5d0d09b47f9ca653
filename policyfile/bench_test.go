package policyfile_test

// Parse of a large policy table, beside its anchor in the same run:
// encoding/json decoding the same table into the same Go types.
//
//	go test -run '^$' -bench . -benchmem -count 6 ./policyfile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stepupkit/stepup/policyfile"
)

// bigTable writes n policies as YAML (block style, as people write it) and
// as JSON.
func bigTable(n int) (yml, js []byte) {
	var y, j bytes.Buffer
	y.WriteString("policies:\n")
	j.WriteString(`{"policies":[`)
	for i := range n {
		fmt.Fprintf(&y, "  - method: POST\n    route: /r/%d/{id}\n    action: a%d\n    remember: 5m\n"+
			"    attributes:\n      - {name: amount, from: form, key: amount, type: number}\n", i, i)
		if i > 0 {
			j.WriteByte(',')
		}
		fmt.Fprintf(&j, `{"method":"POST","route":"/r/%d/{id}","action":"a%d","remember":"5m",`+
			`"attributes":[{"name":"amount","from":"form","key":"amount","type":"number"}]}`, i, i)
	}
	j.WriteString("]}")
	return y.Bytes(), j.Bytes()
}

func BenchmarkParse(b *testing.B) {
	const n = 100_000
	yml, js := bigTable(n)
	b.Run(fmt.Sprintf("entries=%d/encoding_json_anchor", n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f policyfile.File
			if err := json.Unmarshal(js, &f); err != nil || len(f.Policies) != n {
				b.Fatal(err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		doc  []byte
	}{{"json", js}, {"yaml", yml}} {
		b.Run(fmt.Sprintf("entries=%d/Parse_%s", n, tc.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ps, err := policyfile.Parse(tc.doc)
				if err != nil || len(ps) != n {
					b.Fatal(err)
				}
			}
		})
	}
}
