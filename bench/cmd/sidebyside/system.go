package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/raftkv/raftkv/loadgen"
)

// system is a 3-node cluster of one of the compared stores, each node its
// own OS process.
type system interface {
	// Name is "raftkv" or "etcd".
	Name() string
	// Start starts every node and returns once all of them answer a status
	// call and agree on a leader.
	Start(ctx context.Context) error
	// Stop stops every node (SIGTERM, then SIGKILL after a grace period).
	Stop()
	// Leader returns the client endpoint of the current leader.
	Leader(ctx context.Context) (string, error)
	// Dialer connects the load generator to eps.
	Dialer(eps []string) loadgen.Dialer
	// Nodes are the node processes, Endpoint(i) and DataDir(i) node i's
	// client address and data directory.
	Nodes() []*proc
	Endpoint(i int) string
	DataDir(i int) string
	// Serve waits until node i answers a serializable read.
	Serve(ctx context.Context, i int) error
	// Snapshot writes a snapshot of the whole store, taken through the
	// leader, to path.
	Snapshot(ctx context.Context, path string) error
}

const (
	// readyTimeout bounds how long a cluster or a restarted node may take
	// to serve.
	readyTimeout = 2 * time.Minute
	// pollInterval paces the status calls that wait for readiness.
	pollInterval = 50 * time.Millisecond
	// stopGrace is how long a node gets to exit after SIGTERM.
	stopGrace = 15 * time.Second
)

// waitFor calls cond until it returns nil, ctx ends or readyTimeout passes.
func waitFor(ctx context.Context, what string, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		err := cond(cctx)
		ccancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %w)", what, ctx.Err(), err)
		case <-t.C:
		}
	}
}

// stopAll stops the processes in parallel.
func stopAll(ps []*proc) {
	done := make(chan struct{}, len(ps))
	for _, p := range ps {
		go func() { p.stop(syscall.SIGTERM, stopGrace); done <- struct{}{} }()
	}
	for range ps {
		<-done
	}
}

// restart kills node i with SIGKILL (a crash: no clean shutdown, the next
// start replays its log), starts it again and returns how long it took
// from the new start until it served a serializable read.
func restart(ctx context.Context, s system, i int) (time.Duration, error) {
	p := s.Nodes()[i]
	p.stop(syscall.SIGKILL, stopGrace)
	start := time.Now()
	if err := p.start(); err != nil {
		return 0, err
	}
	if err := s.Serve(ctx, i); err != nil {
		return 0, fmt.Errorf("%s node %d after restart: %w", s.Name(), i+1, err)
	}
	return time.Since(start), nil
}

// follower returns a node that is not the leader.
func follower(ctx context.Context, s system) (int, error) {
	leader, err := s.Leader(ctx)
	if err != nil {
		return 0, err
	}
	for i := range s.Nodes() {
		if s.Endpoint(i) != leader {
			return i, nil
		}
	}
	return 0, errors.New("every node is the leader")
}

// nodeDirs lays out a system's directories under parent: parent/NAME/nodeN
// for data, parent/NAME/nodeN.log for output.
func nodeDirs(parent, name string, i int) (data, log string) {
	base := filepath.Join(parent, name, fmt.Sprintf("node%d", i+1))
	return base, base + ".log"
}

// withConn runs f on a fresh connection to ep. Its calls fail fast while
// the server is down (no wait-for-ready, no reconnect backoff), which is
// what readiness polling needs.
func withConn(ep string, f func(*grpc.ClientConn) error) error {
	cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", ep, err)
	}
	defer cc.Close()
	return f(cc)
}
