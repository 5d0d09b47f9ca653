package pgstore_test

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	pgstore "github.com/stepupkit/stepup/stores/postgres"
)

// TestDocShowsTheSchema: the SQL in the package documentation is the SQL
// that Migrate runs.
func TestDocShowsTheSchema(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	require.NoError(t, err)
	doc := f.Doc.Text()
	var shown []string
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "\t") { // a code block
			shown = append(shown, strings.TrimPrefix(line, "\t"))
		}
	}
	start := 0
	for i, l := range shown {
		if strings.HasPrefix(l, "CREATE TABLE IF NOT EXISTS stepup_records") {
			start = i
			break
		}
	}
	want := strings.Split(strings.TrimSuffix(pgstore.Schema, "\n"), "\n")
	require.GreaterOrEqual(t, len(shown)-start, len(want), "the doc shows the schema")
	assert.Equal(t, want, shown[start:start+len(want)])
}
