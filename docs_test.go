package stepup_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The README is a first screen and a map into docs/, SECURITY.md and
// BENCHMARKS.md. These tests keep the map honest: every relative link and
// every #anchor of those pages leads somewhere, every docs page is on the
// map, and the README stays one screen and a table of contents long.

// docPages are the Markdown pages whose links are checked.
func docPages(t *testing.T) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join("docs", "*.md"))
	require.NoError(t, err)
	return append([]string{"README.md", "SECURITY.md", "BENCHMARKS.md"}, pages...)
}

func TestDocsLinksResolve(t *testing.T) {
	for _, page := range docPages(t) {
		t.Run(page, func(t *testing.T) {
			for _, link := range markdownLinks(t, page) {
				target, anchor, _ := strings.Cut(link, "#")
				if hasScheme(target) {
					continue
				}
				file := page
				if target != "" {
					file = filepath.Join(filepath.Dir(page), filepath.FromSlash(target))
					_, err := os.Stat(file)
					if !assert.NoError(t, err, "%s links to %q, which does not exist", page, link) {
						continue
					}
				}
				if anchor == "" {
					continue
				}
				require.True(t, strings.HasSuffix(file, ".md"), "%s links to an anchor of %q, which is not a Markdown page", page, link)
				assert.Contains(t, anchors(t, file), anchor, "%s links to %q: no such heading in %s", page, link, file)
			}
		})
	}
}

func TestDocsPagesAreOnTheREADMEsMap(t *testing.T) {
	linked := map[string]bool{}
	for _, link := range markdownLinks(t, "README.md") {
		target, _, _ := strings.Cut(link, "#")
		linked[filepath.Clean(filepath.FromSlash(target))] = true
	}
	for _, page := range docPages(t) {
		if page != "README.md" {
			assert.True(t, linked[filepath.Clean(page)], "README.md does not link to %s", page)
		}
	}
}

func TestDocsREADMEIsAFirstScreenAndAMap(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	lines := strings.Count(string(readme), "\n")
	assert.Less(t, lines, 400, "README.md has %d lines: move reference and evidence to docs/", lines)
	assert.True(t, strings.Contains(string(readme), "\n## Contents\n"), "README.md has no table of contents")
	for _, command := range []string{"go run ./examples/bank", "go test -race work"} {
		assert.True(t, strings.Contains(string(readme), command), "README.md lost the set-up command %q", command)
	}
}

var (
	fence      = regexp.MustCompile("^\\s*(```|~~~)")
	codeSpan   = regexp.MustCompile("`+[^`]*`+")
	inlineLink = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refLink    = regexp.MustCompile(`^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	htmlLink   = regexp.MustCompile(`(?:href|src)="([^"]+)"`)
	heading    = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
	htmlAnchor = regexp.MustCompile(`<a\s+(?:id|name)="([^"]+)"`)
	mdLink     = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
)

// proseLines returns the lines of a Markdown page outside fenced code
// blocks, with code spans blanked, so that code is never read as a link.
func proseLines(t *testing.T, page string) []string {
	t.Helper()
	data, err := os.ReadFile(page)
	require.NoError(t, err)
	var lines []string
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if !inFence {
			lines = append(lines, codeSpan.ReplaceAllString(line, "``"))
		}
	}
	return lines
}

// markdownLinks returns the targets of a page's inline, reference and
// HTML links and images.
func markdownLinks(t *testing.T, page string) []string {
	t.Helper()
	var links []string
	for _, line := range proseLines(t, page) {
		for _, re := range []*regexp.Regexp{inlineLink, refLink, htmlLink} {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				links = append(links, m[1])
			}
		}
	}
	return links
}

// hasScheme reports an absolute URL (https:, mailto:…), which is not checked.
func hasScheme(target string) bool {
	scheme, _, ok := strings.Cut(target, ":")
	return ok && !strings.ContainsAny(scheme, "/.")
}

// anchors returns the anchors of a page's headings as GitHub makes them
// (lower case, punctuation dropped, spaces as hyphens, -1, -2… for repeats),
// and those of its <a id="…"> elements.
func anchors(t *testing.T, page string) []string {
	t.Helper()
	data, err := os.ReadFile(page)
	require.NoError(t, err)
	var out []string
	seen := map[string]int{}
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if fence.MatchString(line) {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range htmlAnchor.FindAllStringSubmatch(line, -1) {
			out = append(out, m[1])
		}
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		slug := slugify(m[2])
		if n := seen[slug]; n > 0 {
			out = append(out, slug+"-"+strconv.Itoa(n))
		} else {
			out = append(out, slug)
		}
		seen[slug]++
	}
	return out
}

func slugify(text string) string {
	text = mdLink.ReplaceAllString(text, "$1")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
