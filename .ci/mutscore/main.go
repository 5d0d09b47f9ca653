// Command mutscore reads gremlins' JSON reports, sets aside the mutants
// listed as equivalent, prints the survivors and the score per file, and
// fails when the score (killed ÷ killed+lived, timed-out counted as
// killed) is under the threshold.
//
//	go run ./.ci/mutscore -equivalents .ci/mutation-equivalents.txt -threshold 90 report.json...
//
// With -diff the reports come from a run limited to the lines changed
// since a base commit (.ci/mutation --diff): finding no mutant is a pass.
//
// An equivalents line is
//
//	file MUTATOR column | the source line, trimmed | why no test can tell it apart
//
// where column counts from the first non-blank character of the line (1 is
// that character). It matches a mutant by its file, its mutator, its place
// in the line and the line's text, wherever the line moves within the file;
// a text that appears on more than one mutated line of the file is refused
// as ambiguous, and an entry that matches nothing is reported as stale, so
// an equivalent can never excuse a mutant it was not written for.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

type report struct {
	GoModule string `json:"go_module"`
	Files    []struct {
		FileName  string `json:"file_name"`
		Mutations []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
			Line   int    `json:"line"`
			Column int    `json:"column"`
		} `json:"mutations"`
	} `json:"files"`
}

type equivalent struct{ file, source, reason string }

func main() {
	equivFile := flag.String("equivalents", "", "file listing equivalent mutants")
	threshold := flag.Float64("threshold", 90, "minimum score, percent")
	root := flag.String("root", ".", "module root the reports' file names are relative to")
	diff := flag.Bool("diff", false, "the reports are of a diff run (.ci/mutation --diff): no mutant at all is a pass, and equivalents whose lines were not mutated are not listed as stale")
	flag.Parse()

	equivs, err := readEquivalents(*equivFile)
	if err != nil {
		fail(err)
	}
	type mutant struct {
		file, key, src string
		line, col      int
		status         string
	}
	var all []mutant
	for _, path := range flag.Args() {
		data, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		var r report
		if err := json.Unmarshal(data, &r); err != nil {
			fail(fmt.Errorf("%s: %w", path, err))
		}
		for _, f := range r.Files {
			lines, err := readLines(filepath.Join(*root, f.FileName))
			if err != nil {
				fail(err)
			}
			for _, m := range f.Mutations {
				raw := ""
				if m.Line-1 < len(lines) {
					raw = lines[m.Line-1]
				}
				src := strings.TrimSpace(raw)
				indent := len(raw) - len(strings.TrimLeft(raw, " \t"))
				all = append(all, mutant{file: f.FileName, src: src, line: m.Line, col: m.Column, status: m.Status,
					key: fmt.Sprintf("%s %s %d | %s", f.FileName, m.Type, m.Column-indent, src)})
			}
		}
	}
	// A source text excuses mutants on one line of its file only.
	linesOf := map[string]map[int]bool{}
	for _, m := range all {
		k := m.file + "\x00" + m.src
		if linesOf[k] == nil {
			linesOf[k] = map[int]bool{}
		}
		linesOf[k][m.line] = true
	}
	for key, e := range equivs {
		if n := len(linesOf[e.file+"\x00"+e.source]); n > 1 {
			fail(fmt.Errorf("equivalent %q: its source line appears on %d mutated lines of %s; it would excuse them all", key, n, e.file))
		}
	}
	used := map[string]bool{}
	type tally struct{ killed, lived, equiv int }
	perFile := map[string]*tally{}
	var survivors []string
	for _, m := range all {
		t := perFile[m.file]
		if t == nil {
			t = &tally{}
			perFile[m.file] = t
		}
		switch m.status {
		case "KILLED", "TIMED OUT":
			t.killed++
		case "LIVED":
			if _, ok := equivs[m.key]; ok {
				used[m.key] = true
				t.equiv++
				continue
			}
			t.lived++
			survivors = append(survivors, fmt.Sprintf("%s:%d:%d  %s", m.file, m.line, m.col, m.key))
		}
	}
	for key := range equivs {
		if !used[key] && !*diff {
			fmt.Printf("stale equivalent (matches no surviving mutant): %s\n", key)
		}
	}
	sort.Strings(survivors)
	if len(survivors) > 0 {
		fmt.Println("survivors:")
		for _, s := range survivors {
			fmt.Println("  LIVED", s)
		}
	}
	names := make([]string, 0, len(perFile))
	for n := range perFile {
		names = append(names, n)
	}
	sort.Strings(names)
	var killed, lived, equiv int
	fmt.Printf("%-28s %7s %6s %6s %7s\n", "file", "killed", "lived", "equiv", "score")
	for _, n := range names {
		t := perFile[n]
		killed, lived, equiv = killed+t.killed, lived+t.lived, equiv+t.equiv
		fmt.Printf("%-28s %7d %6d %6d %6.1f%%\n", n, t.killed, t.lived, t.equiv, score(t.killed, t.lived))
	}
	total := score(killed, lived)
	fmt.Printf("%-28s %7d %6d %6d %6.1f%%  (threshold %.0f%%)\n", "total", killed, lived, equiv, total, *threshold)
	if killed+lived == 0 {
		if *diff {
			fmt.Println("no mutant on a changed line")
			return
		}
		fail(fmt.Errorf("no mutant was run"))
	}
	if total < *threshold {
		fail(fmt.Errorf("mutation score %.1f%% is under %.0f%%", total, *threshold))
	}
}

func score(killed, lived int) float64 {
	if killed+lived == 0 {
		return 100
	}
	return 100 * float64(killed) / float64(killed+lived)
}

func readEquivalents(path string) (map[string]equivalent, error) {
	out := map[string]equivalent{}
	if path == "" {
		return out, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The source may hold "|" itself ("||", "|="): the head ends at
		// the first " | ", the reason starts after the last one.
		first, last := strings.Index(line, " | "), strings.LastIndex(line, " | ")
		if first < 0 || last <= first {
			return nil, fmt.Errorf("%s:%d: want \"file MUTATOR column | source line | reason\"", path, n)
		}
		head := strings.Fields(line[:first])
		parts := []string{line[:first], line[first+3 : last], line[last+3:]}
		if strings.TrimSpace(parts[2]) == "" || len(head) != 3 {
			return nil, fmt.Errorf("%s:%d: want \"file MUTATOR column | source line | reason\"", path, n)
		}
		src := strings.TrimSpace(parts[1])
		key := strings.Join(head, " ") + " | " + src
		out[key] = equivalent{head[0], src, strings.TrimSpace(parts[2])}
	}
	return out, sc.Err()
}

func readLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Split(string(data), "\n"), nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mutscore:", err)
	os.Exit(1)
}
