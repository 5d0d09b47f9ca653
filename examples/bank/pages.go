package main

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// pages holds one template set per page, each with the shared layout.
type pages struct {
	byName map[string]*template.Template
}

var pageFuncs = template.FuncMap{
	"money":    money,
	"verified": verifiedPhrase,
	"clock":    clockTime,
}

// clockTime is the time of day the pages show.
func clockTime(t time.Time) string { return t.Format("15:04:05") }

func loadPages() (*pages, error) {
	names, err := fs.Glob(assetFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	p := &pages{byName: map[string]*template.Template{}}
	for _, name := range names {
		base := path.Base(name)
		if base == "layout.html" {
			continue
		}
		t, err := template.New(base).Funcs(pageFuncs).ParseFS(assetFS, "templates/layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("bank: template %s: %w", base, err)
		}
		p.byName[base] = t
	}
	return p, nil
}

// render executes a page into a buffer first, so that a template error
// never leaves half a page behind.
func (p *pages) render(w http.ResponseWriter, status int, name string, d pageData) {
	t := p.byName[name]
	var buf bytes.Buffer
	if t == nil {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		http.Error(w, "page error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}
