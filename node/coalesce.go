package node

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/fsm/fsmpb"
	"github.com/raftkv/raftkv/transport"
)

// Write coalescing: on the leader, Puts that arrive while earlier ones are
// being committed share one raft log entry (a PutBatch command), so one
// entry's costs (its raft future, log encoding, bbolt key, AppendEntries
// slot and FSM decode) are paid once for the batch, not once per client.
//
// At most Config.CoalesceInflight entries of Puts are in raft at a time. A
// Put that finds a free slot is proposed at once, alone, as a plain Put: an
// idle cluster adds no latency and writes the same log as without
// coalescing. A Put that finds every slot taken waits in the queue; the next
// free slot takes everything queued (up to CoalesceMaxPuts Puts and
// coalesceMaxBytes) into one entry. So batches grow with load, by
// themselves, without a timer.
//
// PutBatch is new in v0.4.0: while any voter advertises an older release,
// a batch is proposed as one entry per Put (versiongate.go).
//
// Every write of a batch gets the entry's index as its revision, as the
// writes of one Txn do. To keep a key's mod_revision naming exactly one
// write, a batch never holds the same key twice: a repeat waits for the
// next batch. Each Put keeps its own outcome: one that fails validation in
// the FSM fails alone.

// putBatchVersion is the first release whose FSM applies PutBatch: the
// leader coalesces only while every voter runs it (versiongate.go).
const putBatchVersion = "0.4.0"

// coalesceMaxBytes caps the keys and values of one PutBatch entry; a single
// larger Put still goes alone.
const coalesceMaxBytes = 1 << 20

// putCoalescer is the queue and the in-flight slots of write coalescing.
type putCoalescer struct {
	queue    chan *queuedPut
	slots    chan struct{} // one token per entry of Puts in raft
	maxPuts  int
	maxBytes int
}

// queuedPut is one client's Put waiting to be proposed.
type queuedPut struct {
	ctx  context.Context
	put  *fsmpb.Put
	done chan putOutcome // buffered: the sender never blocks
}

type putOutcome struct {
	res *fsm.Result
	err error
}

func newPutCoalescer(maxPuts, inflight int) *putCoalescer {
	if maxPuts <= 1 || inflight <= 0 {
		return nil
	}
	return &putCoalescer{
		queue:    make(chan *queuedPut, 4*maxPuts),
		slots:    make(chan struct{}, inflight),
		maxPuts:  maxPuts,
		maxBytes: coalesceMaxBytes,
	}
}

// applyWrite applies cmd through raft on the leader: a Put through the
// coalescer when coalescing is on, anything else as its own entry.
func (n *Node) applyWrite(ctx context.Context, cmd *fsmpb.Command) (*fsm.Result, error) {
	put := cmd.GetPut()
	if put == nil || n.coalescer == nil {
		return n.apply(ctx, cmd)
	}
	q := &queuedPut{ctx: ctx, put: put, done: make(chan putOutcome, 1)}
	select {
	case n.coalescer.queue <- q:
	case <-ctx.Done():
		return nil, fmt.Errorf("queue put: %w", ctx.Err())
	case <-n.stop:
		// Never proposed: as safe to retry as a write raft refused.
		return nil, fmt.Errorf("queue put: %w", raft.ErrNotLeader)
	}
	select {
	case o := <-q.done:
		return o.res, o.err
	case <-n.stop:
		return nil, fmt.Errorf("apply: %w: %w", transport.ErrOutcomeUnknown, raft.ErrRaftShutdown)
	}
}

// runCoalescer forms batches from the queue, one per free slot, until the
// node stops.
func (n *Node) runCoalescer() {
	defer n.wg.Done()
	c := n.coalescer
	var next *queuedPut // a Put the previous batch could not take
	for {
		if next == nil {
			select {
			case next = <-c.queue:
			case <-n.stop:
				return
			}
		}
		select {
		case c.slots <- struct{}{}:
		case <-n.stop:
			return
		}
		var batch []*queuedPut
		batch, next = c.take(next)
		if len(batch) == 0 {
			<-c.slots
			continue
		}
		n.wg.Add(1)
		go n.commitPuts(batch)
	}
}

// take returns first and the queued Puts behind it that fit one batch, and
// the first queued Put that did not fit (or nil). Puts whose client gave up
// are answered and dropped: they were never proposed.
func (c *putCoalescer) take(first *queuedPut) (batch []*queuedPut, next *queuedPut) {
	keys := make(map[string]struct{})
	size := 0
	for q := first; ; {
		if q.ctx.Err() != nil {
			q.done <- putOutcome{err: fmt.Errorf("queue put: %w", q.ctx.Err())}
		} else {
			qsize := len(q.put.GetKey()) + len(q.put.GetValue())
			_, dup := keys[string(q.put.GetKey())]
			if dup || (len(batch) > 0 && size+qsize > c.maxBytes) {
				return batch, q
			}
			keys[string(q.put.GetKey())] = struct{}{}
			batch = append(batch, q)
			size += qsize
		}
		if len(batch) == c.maxPuts {
			return batch, nil
		}
		select {
		case q = <-c.queue:
		default:
			return batch, nil
		}
	}
}

// commitPuts proposes one batch, alone as a Put or together as a PutBatch,
// and hands each Put its outcome; then it frees the batch's slot.
func (n *Node) commitPuts(batch []*queuedPut) {
	defer n.wg.Done()
	defer func() { <-n.coalescer.slots }()
	applyAlone := func(q *queuedPut) {
		n.metrics.coalescedPuts.Observe(1)
		res, err := n.apply(q.ctx, &fsmpb.Command{Op: &fsmpb.Command_Put{Put: q.put}})
		q.done <- putOutcome{res: res, err: err}
	}
	if len(batch) == 1 {
		applyAlone(batch[0])
		return
	}
	if !n.votersAtLeast(putBatchVersion) {
		// Some voter runs a release without PutBatch: one entry per Put,
		// all proposed at once.
		var wg sync.WaitGroup
		for _, q := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				applyAlone(q)
			}()
		}
		wg.Wait()
		return
	}
	n.metrics.coalescedPuts.Observe(float64(len(batch)))
	puts := make([]*fsmpb.Put, len(batch))
	for i, q := range batch {
		puts[i] = q.put
	}
	res, err := n.apply(context.Background(), &fsmpb.Command{Op: &fsmpb.Command_PutBatch{PutBatch: &fsmpb.PutBatch{Puts: puts}}})
	if err == nil && len(res.Batch) != len(batch) {
		err = fmt.Errorf("apply: %w: put batch of %d returned %d results", transport.ErrOutcomeUnknown, len(batch), len(res.Batch))
	}
	for i, q := range batch {
		if err != nil {
			q.done <- putOutcome{err: err}
			continue
		}
		r := res.Batch[i]
		if r.Err != nil {
			q.done <- putOutcome{err: fmt.Errorf("%w: %w", transport.ErrInvalidArgument, r.Err)}
			continue
		}
		q.done <- putOutcome{res: r}
	}
}
