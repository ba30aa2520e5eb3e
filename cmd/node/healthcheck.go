package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry returns the node's Prometheus registry with the Go runtime
// and process collectors added (node.New adds the raftkv_ metrics).
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// runHealthcheck implements `raftkvd healthcheck`: GET /readyz (or
// --path) from a node's HTTP port and exit 0 on 200, 1 otherwise. It is the
// container image's HEALTHCHECK, which has no shell or curl to run.
func runHealthcheck(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("raftkvd healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: raftkvd healthcheck [flags]\n\nExits 0 if the node's HTTP endpoint answers 200, 1 otherwise (the container health check).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	addr := os.Getenv("RAFTKV_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:7003"
	}
	fs.StringVar(&addr, "http-addr", addr, "the node's --http-addr; an unspecified host (0.0.0.0, ::) means loopback (default: $RAFTKV_HTTP_ADDR or 127.0.0.1:7003)")
	path := fs.String("path", "/readyz", "endpoint to check: /readyz (ready to serve) or /healthz (process alive)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	url, err := healthURL(addr, *path)
	if err != nil {
		fmt.Fprintf(stderr, "raftkvd healthcheck: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := checkHealth(ctx, url); err != nil {
		fmt.Fprintf(stderr, "raftkvd healthcheck: %v\n", err)
		return exitError
	}
	return exitOK
}

// healthURL turns a listen address into a URL this host can reach.
func healthURL(addr, path string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--http-addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

func checkHealth(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var body struct {
		Reason string `json:"reason"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if json.Unmarshal(b, &body) == nil && body.Reason != "" {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, body.Reason)
	}
	return fmt.Errorf("%s: %s", url, resp.Status)
}
