package client

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// Backoff bounds the exponential backoff between two tries of a request.
// The n-th wait is drawn uniformly from [d/2, d] with d = min(Max, Initial*2^n).
type Backoff struct {
	// Initial is the upper bound of the first wait.
	Initial time.Duration
	// Max caps every wait.
	Max time.Duration
}

// Config configures a Client. Build it from DefaultConfig and set Endpoints.
type Config struct {
	// Endpoints are the gRPC addresses (host:port) of cluster nodes. Leader
	// addresses learned from NOT_LEADER hints are added to this pool.
	Endpoints []string
	// DialTimeout bounds one connection attempt to one endpoint, so that a
	// black-holed node is given up on and the next endpoint is tried while
	// the caller's deadline still allows it.
	DialTimeout time.Duration
	// RetryBackoff is the wait between tries of one request.
	RetryBackoff Backoff
	// DialOptions are appended after the client's own dial options
	// (insecure transport credentials, connect backoff and timeout), so they
	// can override them, for instance with TLS credentials.
	DialOptions []grpc.DialOption
}

// DefaultConfig returns a Config for the local three-node cluster with a 2s
// dial timeout and retries backing off from 50ms to 1s.
func DefaultConfig() Config {
	return Config{
		Endpoints:    []string{"127.0.0.1:7001", "127.0.0.1:7011", "127.0.0.1:7021"},
		DialTimeout:  2 * time.Second,
		RetryBackoff: Backoff{Initial: 50 * time.Millisecond, Max: time.Second},
	}
}

// Validate checks each field and how the fields relate.
func (c Config) Validate() error {
	if len(c.Endpoints) == 0 {
		return errors.New("no endpoints")
	}
	seen := make(map[string]bool, len(c.Endpoints))
	for _, ep := range c.Endpoints {
		if strings.TrimSpace(ep) == "" {
			return errors.New("empty endpoint")
		}
		if seen[ep] {
			return fmt.Errorf("duplicate endpoint %q", ep)
		}
		seen[ep] = true
	}
	switch {
	case c.DialTimeout <= 0:
		return fmt.Errorf("dial timeout %v must be positive", c.DialTimeout)
	case c.RetryBackoff.Initial <= 0:
		return fmt.Errorf("initial retry backoff %v must be positive", c.RetryBackoff.Initial)
	case c.RetryBackoff.Max < c.RetryBackoff.Initial:
		return fmt.Errorf("max retry backoff %v is below the initial backoff %v", c.RetryBackoff.Max, c.RetryBackoff.Initial)
	}
	return nil
}
