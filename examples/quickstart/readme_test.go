// Package quickstart_test checks that the quick starts of README.md and
// docs/quickstarts.md are the programs beside this file, so that they
// cannot drift: each program's test drives a challenge and its replay
// through it against the emulator.
package quickstart_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// snippetRE finds a code block marked with the program it shows.
var snippetRE = regexp.MustCompile("(?s)<!-- (examples/quickstart/[a-z]+/main\\.go) -->\n```go\n(.*?)```\n")

// restRE is the line after which a program's block starts; a program
// without it is shown whole.
var restRE = regexp.MustCompile(`(?m)^// docs/quickstarts\.md shows the rest of this file\.\n\n`)

// pages are where the quick starts are shown.
var pages = []string{"README.md", "docs/quickstarts.md"}

func TestREADMEQuickStartsAreThePrograms(t *testing.T) {
	programs, err := filepath.Glob(filepath.Join("*", "main.go"))
	require.NoError(t, err)
	require.Len(t, programs, 6, "nethttp, echo, chi, gin, policyfile, redis")

	shown := map[string]string{} // program → block
	where := map[string]string{} // program → page
	for _, page := range pages {
		text, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(page)))
		require.NoError(t, err)
		for _, m := range snippetRE.FindAllStringSubmatch(string(text), -1) {
			require.NotContains(t, shown, m[1], "%s is shown twice", m[1])
			shown[m[1]], where[m[1]] = m[2], page
		}
	}
	for _, p := range programs {
		name := "examples/quickstart/" + filepath.ToSlash(p)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(p)
			require.NoError(t, err)
			want, page := string(src), "README.md"
			if loc := restRE.FindStringIndex(want); loc != nil {
				want, page = want[loc[1]:], "docs/quickstarts.md"
			}
			got, ok := shown[name]
			require.True(t, ok, "%s shows %s in a block marked <!-- %s -->", page, name, name)
			assert.Equal(t, page, where[name], "the program's marked line says where it is shown")
			assert.Equal(t, want, got, "%s's block is %s (from its marked line on, if it has one)", page, name)
		})
	}
	assert.Len(t, shown, len(programs), "every marked block is a program of examples/quickstart")
}

func TestREADMEShowsTheSmallestQuickStartFirstAndWhole(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	first := snippetRE.FindStringSubmatch(string(readme))
	require.NotNil(t, first)
	assert.Equal(t, "examples/quickstart/nethttp/main.go", first[1])
	assert.True(t, strings.HasPrefix(first[2], "// Command nethttp"), "the first quick start is shown whole, a program to paste")
	assert.Contains(t, first[2], "guard.NewServeMux()")
}
