// Package quickstart_test checks that the README's quick starts are the
// programs beside this file, so that they cannot drift: each program's test
// drives a challenge and its replay through it against the emulator.
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

// snippetRE finds a README code block marked with the program it shows.
var snippetRE = regexp.MustCompile("(?s)<!-- (examples/quickstart/[a-z]+/main\\.go) -->\n```go\n(.*?)```\n")

// restRE is the line after which a program's README block starts; a
// program without it is shown whole.
var restRE = regexp.MustCompile(`(?m)^// The README's .* quick start shows the rest of this file\.\n\n`)

func TestREADMEQuickStartsAreThePrograms(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	programs, err := filepath.Glob(filepath.Join("*", "main.go"))
	require.NoError(t, err)
	require.Len(t, programs, 6, "nethttp, echo, chi, gin, policyfile, redis")

	shown := map[string]string{}
	for _, m := range snippetRE.FindAllStringSubmatch(string(readme), -1) {
		_, dup := shown[m[1]]
		require.False(t, dup, "%s is shown twice", m[1])
		shown[m[1]] = m[2]
	}
	for _, p := range programs {
		name := "examples/quickstart/" + filepath.ToSlash(p)
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(p)
			require.NoError(t, err)
			want := string(src)
			if loc := restRE.FindStringIndex(want); loc != nil {
				want = want[loc[1]:]
			}
			got, ok := shown[name]
			require.True(t, ok, "README.md shows %s in a block marked <!-- %s -->", name, name)
			assert.Equal(t, want, got, "README.md's block is %s (from its marked line on, if it has one)", name)
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
