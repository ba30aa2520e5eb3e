package client

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
)

func TestClassify(t *testing.T) {
	hint := map[string]string{kvpb.MetadataLeaderAddr: "10.0.0.1:7001"}
	tests := []struct {
		name     string
		err      error
		write    bool
		wantAct  action
		wantHint string
	}{
		{"not leader hint", reasonErr(codes.FailedPrecondition, kvpb.ReasonNotLeader, hint), true, actRedirect, "10.0.0.1:7001"},
		{"plain failed precondition", status.Error(codes.FailedPrecondition, "x"), true, actReturn, ""},
		{"dial failure write", status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), true, actNext, ""},
		{"resolver failure write", status.Error(codes.Unavailable, "name resolver error: produced zero addresses"), true, actNext, ""},
		{"deadline write", status.Error(codes.DeadlineExceeded, "x"), true, actUnknown, ""},
		{"deadline read", status.Error(codes.DeadlineExceeded, "x"), false, actReturn, ""},
		{"canceled write", status.Error(codes.Canceled, "x"), true, actUnknown, ""},
		{"foreign domain is ignored", func() error {
			st, _ := status.New(codes.Internal, "x").WithDetails(&errdetails.ErrorInfo{Domain: "other", Reason: kvpb.ReasonNoLeader})
			return st.Err()
		}(), false, actReturn, ""},
		{"not a status", errors.New("x"), true, actReturn, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			act, h := classify(tt.err, tt.write)
			if act != tt.wantAct || h != tt.wantHint {
				t.Errorf("classify(%v, write=%v) = %v, %q; want %v, %q", tt.err, tt.write, act, h, tt.wantAct, tt.wantHint)
			}
		})
	}
}

func TestRetryPolicy(t *testing.T) {
	// Each server's reply gets the addresses of all servers, so it can hint
	// at another one. A nil reply always succeeds; dead servers refuse
	// connections.
	type server struct {
		dead  bool
		reply func(n int64, addrs []string) error
	}
	ok := server{}
	dead := server{dead: true}
	always := func(err error) server {
		return server{reply: func(int64, []string) error { return err }}
	}
	notLeaderHint := func(to int) server {
		return server{reply: func(_ int64, addrs []string) error {
			return reasonErr(codes.FailedPrecondition, kvpb.ReasonNotLeader,
				map[string]string{kvpb.MetadataLeaderID: "n", kvpb.MetadataLeaderAddr: addrs[to]})
		}}
	}
	noLeaderUntil := func(n int64) server {
		return server{reply: func(i int64, _ []string) error {
			if i < n {
				return reasonErr(codes.Unavailable, kvpb.ReasonNoLeader, nil)
			}
			return nil
		}}
	}

	tests := []struct {
		name      string
		servers   []server
		endpoints []int // servers in Config.Endpoints; others are reachable only by hint
		ops       []string
		// Either the response comes from server wantServedBy, or the error
		// has code wantCode and wraps ErrOutcomeUnknown iff wantUnknown.
		wantServedBy int
		wantCode     codes.Code
		wantUnknown  bool
		wantCalls    []int64 // calls each server saw
		wantPool     int     // len(Endpoints()) afterwards
	}{
		{
			name:    "not leader with hint redirects to an unknown leader",
			servers: []server{notLeaderHint(1), ok}, endpoints: []int{0},
			ops:          append(slices.Clone(readOps), writeOps...),
			wantServedBy: 1, wantCalls: []int64{1, 1}, wantPool: 2,
		},
		{
			name:    "not leader without hint tries the next endpoint",
			servers: []server{always(reasonErr(codes.FailedPrecondition, kvpb.ReasonNotLeader, nil)), ok}, endpoints: []int{0, 1},
			ops:          writeOps,
			wantServedBy: 1, wantCalls: []int64{1, 1}, wantPool: 2,
		},
		{
			name:    "no leader is retried until success",
			servers: []server{noLeaderUntil(4)}, endpoints: []int{0},
			ops:          append(slices.Clone(readOps), writeOps...),
			wantServedBy: 0, wantCalls: []int64{4}, wantPool: 1,
		},
		{
			name:    "outcome unknown write is not retried",
			servers: []server{always(reasonErr(codes.Unavailable, kvpb.ReasonOutcomeUnknown, nil)), ok}, endpoints: []int{0, 1},
			ops:      writeOps,
			wantCode: codes.Unavailable, wantUnknown: true, wantCalls: []int64{1, 0}, wantPool: 2,
		},
		{
			name:    "unavailable without reason is an unknown outcome for a write",
			servers: []server{always(status.Error(codes.Unavailable, "transport is closing")), ok}, endpoints: []int{0, 1},
			ops:      writeOps,
			wantCode: codes.Unavailable, wantUnknown: true, wantCalls: []int64{1, 0}, wantPool: 2,
		},
		{
			name:    "unavailable read is retried on the next endpoint",
			servers: []server{always(status.Error(codes.Unavailable, "transport is closing")), ok}, endpoints: []int{0, 1},
			ops:          readOps,
			wantServedBy: 1, wantCalls: []int64{1, 1}, wantPool: 2,
		},
		{
			name:    "dead first endpoint is skipped",
			servers: []server{dead, ok}, endpoints: []int{0, 1},
			ops:          append(slices.Clone(readOps), writeOps...),
			wantServedBy: 1, wantCalls: []int64{0, 1}, wantPool: 2,
		},
		{
			name:    "invalid argument is returned at once",
			servers: []server{always(reasonErr(codes.InvalidArgument, kvpb.ReasonInvalidArgument, nil)), ok}, endpoints: []int{0, 1},
			ops:      append(slices.Clone(readOps), writeOps...),
			wantCode: codes.InvalidArgument, wantCalls: []int64{1, 0}, wantPool: 2,
		},
		{
			name:    "resource exhausted is returned at once",
			servers: []server{always(status.Error(codes.ResourceExhausted, "too big")), ok}, endpoints: []int{0, 1},
			ops:      append(slices.Clone(readOps), writeOps...),
			wantCode: codes.ResourceExhausted, wantCalls: []int64{1, 0}, wantPool: 2,
		},
	}
	for _, tt := range tests {
		for _, op := range tt.ops {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				addrs := make([]string, len(tt.servers))
				fakes := make([]*fakeServer, len(tt.servers))
				for i, s := range tt.servers {
					if s.dead {
						addrs[i] = deadAddr(t)
						continue
					}
					var reply func(context.Context, int64) error
					if s.reply != nil {
						reply = func(_ context.Context, n int64) error { return s.reply(n, addrs) }
					}
					fakes[i] = startFake(t, reply)
					addrs[i] = fakes[i].addr
				}
				var eps []string
				for _, i := range tt.endpoints {
					eps = append(eps, addrs[i])
				}
				c := newTestClient(t, testConfig(eps...))
				ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
				defer cancel()

				h, err := call(ctx, c, op)
				if tt.wantCode == codes.OK {
					if err != nil {
						t.Fatalf("%s = %v, want success from server %d", op, err, tt.wantServedBy)
					}
					if got, want := h.GetNodeId(), addrs[tt.wantServedBy]; got != want {
						t.Errorf("%s answered by %s, want server %d (%s)", op, got, tt.wantServedBy, want)
					}
				} else {
					if got := status.Code(err); got != tt.wantCode {
						t.Errorf("%s error code = %v (%v), want %v", op, got, err, tt.wantCode)
					}
					if got := errors.Is(err, ErrOutcomeUnknown); got != tt.wantUnknown {
						t.Errorf("errors.Is(%v, ErrOutcomeUnknown) = %v, want %v", err, got, tt.wantUnknown)
					}
				}
				for i, want := range tt.wantCalls {
					if fakes[i] == nil {
						continue
					}
					if got := fakes[i].calls.Load(); got != want {
						t.Errorf("server %d saw %d calls, want %d", i, got, want)
					}
				}
				if got := len(c.Endpoints()); got != tt.wantPool {
					t.Errorf("len(Endpoints()) = %d (%v), want %d", got, c.Endpoints(), tt.wantPool)
				}
			})
		}
	}
}

// TestDeadEndpointNeverSent pins the grpc-go wording neverSent relies on: a
// write to a refused connection must classify as "never sent".
func TestDeadEndpointNeverSent(t *testing.T) {
	addr := deadAddr(t)
	c := newTestClient(t, testConfig(addr))
	cc, err := c.conn(addr)
	if err != nil {
		t.Fatalf("conn(%s) = %v", addr, err)
	}
	_, err = kvpb.NewKVClient(cc).Put(t.Context(), &kvpb.PutRequest{Key: []byte("k")})
	if act, _ := classify(err, true); act != actNext {
		t.Errorf("classify(%v, write) = %v, want actNext (%v): grpc-go changed its dial error text", err, act, actNext)
	}
}

func TestDeadlineRespected(t *testing.T) {
	const deadline = 300 * time.Millisecond
	// slack absorbs scheduling under -race on two shared cores.
	const slack = 700 * time.Millisecond
	noLeader := func(context.Context, int64) error { return reasonErr(codes.Unavailable, kvpb.ReasonNoLeader, nil) }
	hang := func(ctx context.Context, _ int64) error {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	const (
		never = iota
		always
		either // the last try of a write may or may not be in flight when the deadline hits
	)
	tests := []struct {
		name    string
		reply   func(context.Context, int64) error
		op      string
		unknown int
	}{
		{"no leader forever, write", noLeader, "put", either},
		{"no leader forever, read", noLeader, "get", never},
		{"hung server, write", hang, "put", always},
		{"hung server, read", hang, "get", never},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, tt.reply)
			c := newTestClient(t, testConfig(f.addr))
			ctx, cancel := context.WithTimeout(t.Context(), deadline)
			defer cancel()
			start := time.Now()
			_, err := call(ctx, c, tt.op)
			if elapsed := time.Since(start); elapsed > deadline+slack {
				t.Errorf("%s returned after %v, want by the %v deadline", tt.op, elapsed, deadline)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false, want true", err)
			}
			if got := errors.Is(err, ErrOutcomeUnknown); tt.unknown != either && got != (tt.unknown == always) {
				t.Errorf("errors.Is(%v, ErrOutcomeUnknown) = %v, want %v", err, got, tt.unknown == always)
			}
		})
	}
}

// TestBrokenConnection stops a server while a request is in flight on it.
func TestBrokenConnection(t *testing.T) {
	tests := []struct {
		op          string
		wantUnknown bool // else the request is retried on the second server
	}{
		{"put", true},
		{"txn", true},
		{"get", false},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			entered := make(chan struct{})
			first := startFake(t, func(ctx context.Context, _ int64) error {
				close(entered)
				<-ctx.Done()
				return ctx.Err()
			})
			second := startFake(t, nil)
			c := newTestClient(t, testConfig(first.addr, second.addr))
			go func() {
				<-entered
				first.srv.Stop()
			}()
			_, err := call(t.Context(), c, tt.op)
			t.Logf("%s over a broken connection: %v", tt.op, err)
			if tt.wantUnknown {
				if !errors.Is(err, ErrOutcomeUnknown) {
					t.Errorf("%s over a broken connection = %v, want ErrOutcomeUnknown", tt.op, err)
				}
				if got := second.calls.Load(); got != 0 {
					t.Errorf("second server saw %d calls, want 0: the write was retried", got)
				}
				return
			}
			if err != nil {
				t.Errorf("%s over a broken connection = %v, want success on the second server", tt.op, err)
			}
		})
	}
}
