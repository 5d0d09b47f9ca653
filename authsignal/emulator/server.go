package emulator

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Server is an Emulator listening on a loopback port, like httptest.Server.
type Server struct {
	*Emulator
	URL string // "http://127.0.0.1:port", no trailing slash

	srv       *http.Server
	done      chan struct{}
	closeOnce sync.Once
}

// New starts an Emulator on 127.0.0.1 at a free port. Config.PublicURL
// defaults to the server's URL. Call Close when done.
func New(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), done: make(chan struct{})}
	if cfg.PublicURL == "" {
		cfg.PublicURL = s.URL
	}
	if s.Emulator, err = NewHandler(cfg); err != nil {
		ln.Close()
		return nil, err
	}
	s.srv = &http.Server{
		Handler:           s.Emulator,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // dropped connections are on purpose
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logf("emulator: serve: %v", err)
		}
	}()
	return s, nil
}

// APIURL is the base URL of the API, URL + "/v1": what the client's base
// URL option takes.
func (s *Server) APIURL() string { return s.URL + "/v1" }

// Close stops the server, closing open connections. It is safe to call more
// than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.srv.Close()
		<-s.done
	})
}
