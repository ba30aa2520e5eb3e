package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealthURL(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"0.0.0.0:7003", "http://127.0.0.1:7003/readyz"},
		{"[::]:7003", "http://127.0.0.1:7003/readyz"},
		{":7003", "http://127.0.0.1:7003/readyz"},
		{"10.1.2.3:8080", "http://10.1.2.3:8080/readyz"},
		{"node1:7003", "http://node1:7003/readyz"},
	}
	for _, tt := range tests {
		got, err := healthURL(tt.addr, "/readyz")
		if err != nil || got != tt.want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
	if _, err := healthURL("no-port", "/readyz"); err == nil {
		t.Errorf("healthURL(no-port): want an error")
	}
}

// TestHealthcheckCommand: `raftkvd healthcheck` exits 0 on 200 and 1 on
// 503, printing the /readyz reason.
func TestHealthcheckCommand(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":"not ready","reason":"no leader known"}`))
			return
		}
		w.Write([]byte(`{"status":"ready"}`))
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	var stderr bytes.Buffer
	if code := run([]string{"healthcheck", "--http-addr", addr}, &stderr); code != exitOK {
		t.Errorf("ready: exit %d, want %d (stderr %q)", code, exitOK, stderr.String())
	}
	ready.Store(false)
	stderr.Reset()
	if code := run([]string{"healthcheck", "--http-addr", addr}, &stderr); code != exitError {
		t.Errorf("not ready: exit %d, want %d", code, exitError)
	}
	if !strings.Contains(stderr.String(), "no leader known") {
		t.Errorf("not ready: stderr %q, want the reason", stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"healthcheck", "--path", "/nope", "--http-addr", addr}, &stderr); code != exitError {
		t.Errorf("404: exit %d, want %d", code, exitError)
	}
	if code := run([]string{"healthcheck", "--bogus"}, &stderr); code != exitUsage {
		t.Errorf("bad flag: exit %d, want %d", code, exitUsage)
	}
}
