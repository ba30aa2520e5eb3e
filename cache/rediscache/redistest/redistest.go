// Package redistest starts a throwaway redis-server for tests: its own
// port on 127.0.0.1, its own directory, no persistence (--save "",
// --appendonly no), killed in t.Cleanup. Only tests import it.
//
// Without a redis-server binary the tests that need one are skipped, except
// under CI (CI=true), where that is a failure: .ci/run installs it.
package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one running redis-server.
type Server struct {
	// Addr is host:port; URL is redis://Addr/0.
	Addr string
	URL  string

	t      testing.TB
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{}
	once   sync.Once
}

// Start starts a redis-server or skips (fails under CI) when none is
// installed. It is stopped in t.Cleanup.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found in PATH (%v): CI must install it (.ci/run installs the redis-server package)", err)
		}
		t.Skipf("redis-server not installed (apt-get install -y redis-server): %v", err)
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := start(t, bin)
		if err == nil {
			return s
		}
		last = err // most likely the port was taken between pick and bind
	}
	t.Fatalf("start redis-server: %v", last)
	return nil
}

func start(t testing.TB, bin string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &Server{
		t:      t,
		Addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		out:    &bytes.Buffer{},
		exited: make(chan struct{}),
	}
	s.URL = "redis://" + s.Addr + "/0"
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", t.TempDir(), "--protected-mode", "no")
	s.cmd.Stdout, s.cmd.Stderr = &syncWriter{buf: s.out}, &syncWriter{buf: s.out}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := s.Ping(); err == nil {
			t.Cleanup(s.Kill)
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("redis-server exited early: %s", s.Output())
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, fmt.Errorf("redis-server on %s not answering PING after 10s: %s", s.Addr, s.Output())
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// Ping sends PING and returns nil on +PONG.
func (s *Server) Ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING: got %q", line)
	}
	return nil
}

// Kill stops the server with SIGKILL (as a crash would) and waits for it
// to exit. Calling it again does nothing.
func (s *Server) Kill() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// Output returns what the server printed so far.
func (s *Server) Output() string {
	return (&syncWriter{buf: s.out}).String()
}

var outMu sync.Mutex

type syncWriter struct{ buf *bytes.Buffer }

func (w *syncWriter) Write(p []byte) (int, error) {
	outMu.Lock()
	defer outMu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	outMu.Lock()
	defer outMu.Unlock()
	return w.buf.String()
}
