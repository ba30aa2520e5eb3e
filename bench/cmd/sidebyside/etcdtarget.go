package main

import (
	"context"
	"fmt"
	"math"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/raftkv/raftkv/loadgen"
	"github.com/raftkv/raftkv/loadgen/kvtarget"
)

// etcdTarget is a loadgen.Target over one gRPC connection to an etcd
// member, calling the generated etcdserverpb stubs directly: like
// kvtarget.Target for raftkv, without the retrying clientv3 wrapper, so
// both systems are driven by the same kind of client.
type etcdTarget struct {
	cc *grpc.ClientConn
	kv pb.KVClient
}

// etcdDialer places connection i on endpoints[i mod len(endpoints)] and
// waits until it is ready.
func etcdDialer(endpoints []string) loadgen.Dialer {
	return func(ctx context.Context, i int) (loadgen.Target, error) {
		ep := endpoints[i%len(endpoints)]
		cc, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial etcd %s: %w", ep, err)
		}
		if err := kvtarget.WaitReady(ctx, cc); err != nil {
			_ = cc.Close()
			return nil, fmt.Errorf("connect to etcd %s: %w", ep, err)
		}
		return &etcdTarget{cc: cc, kv: pb.NewKVClient(cc)}, nil
	}
}

func (t *etcdTarget) Put(ctx context.Context, key, value []byte) error {
	_, err := t.kv.Put(ctx, &pb.PutRequest{Key: key, Value: value})
	return err
}

func (t *etcdTarget) Get(ctx context.Context, key []byte, c loadgen.Consistency) error {
	_, err := t.kv.Range(ctx, &pb.RangeRequest{Key: key, Serializable: c == loadgen.Serializable})
	return err
}

// Txn is the same compare-and-put as kvtarget.Target.Txn: put if the key's
// mod revision is below MaxInt64, else read it.
func (t *etcdTarget) Txn(ctx context.Context, key, value []byte) error {
	_, err := t.kv.Txn(ctx, &pb.TxnRequest{
		Compare: []*pb.Compare{{
			Key: key, Target: pb.Compare_MOD, Result: pb.Compare_LESS,
			TargetUnion: &pb.Compare_ModRevision{ModRevision: math.MaxInt64},
		}},
		Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: key, Value: value}}}},
		Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: key}}}},
	})
	return err
}

// Ping is the same health check as kvtarget.Target.Ping; etcd registers
// the standard health service on its client port.
func (t *etcdTarget) Ping(ctx context.Context) error { return kvtarget.Ping(ctx, t.cc) }

func (t *etcdTarget) Close() error { return t.cc.Close() }

// ErrorKind names err by its gRPC code, as for raftkv.
func (t *etcdTarget) ErrorKind(err error) string { return kvtarget.ErrorKind(err) }
