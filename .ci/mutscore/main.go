// Command mutscore reads gremlins' JSON reports, sets aside the mutants
// listed as equivalent, prints the survivors and the score per file, and
// fails when the score (killed ÷ killed+lived, timed-out counted as
// killed) is under the threshold.
//
//	go run ./.ci/mutscore -equivalents .ci/mutation-equivalents.txt -threshold 90 report.json...
//
// An equivalents line is
//
//	file:line:column MUTATOR | the source line, trimmed | why no test can tell it apart
//
// and applies only while that line of the file still reads the same: a
// stale entry is reported and ignored, so an edit can never hide a mutant.
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

type equivalent struct{ source, reason string }

func main() {
	equivFile := flag.String("equivalents", "", "file listing equivalent mutants")
	threshold := flag.Float64("threshold", 90, "minimum score, percent")
	root := flag.String("root", ".", "module root the reports' file names are relative to")
	flag.Parse()

	equivs, err := readEquivalents(*equivFile)
	if err != nil {
		fail(err)
	}
	used := map[string]bool{}
	type tally struct{ killed, lived, equiv int }
	perFile := map[string]*tally{}
	var survivors []string
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
			t := perFile[f.FileName]
			if t == nil {
				t = &tally{}
				perFile[f.FileName] = t
			}
			for _, m := range f.Mutations {
				key := fmt.Sprintf("%s:%d:%d %s", f.FileName, m.Line, m.Column, m.Type)
				src := ""
				if m.Line-1 < len(lines) {
					src = strings.TrimSpace(lines[m.Line-1])
				}
				switch m.Status {
				case "KILLED", "TIMED OUT":
					t.killed++
				case "LIVED":
					if e, ok := equivs[key]; ok && e.source == src {
						used[key] = true
						t.equiv++
						continue
					}
					t.lived++
					survivors = append(survivors, fmt.Sprintf("%s | %s", key, src))
				}
			}
		}
	}
	for key, e := range equivs {
		if !used[key] {
			fmt.Printf("stale or unused equivalent (no longer applied): %s | %s\n", key, e.source)
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
		parts := strings.SplitN(line, "|", 3)
		if len(parts) != 3 || strings.TrimSpace(parts[2]) == "" {
			return nil, fmt.Errorf("%s:%d: want \"file:line:col MUTATOR | source | reason\"", path, n)
		}
		out[strings.TrimSpace(parts[0])] = equivalent{strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])}
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
