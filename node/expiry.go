package node

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/fsm/fsmpb"
)

const (
	// defaultExpiryInterval is how often the leader looks for expired keys
	// when Config.ExpiryInterval is zero.
	defaultExpiryInterval = 500 * time.Millisecond
	// expiryBatch and expiryBatchBytes cap one DeleteExpired command, so
	// one entry stays well below raft.SuggestedMaxDataSize (512 KiB) even
	// with long keys, and one apply stays short.
	expiryBatch      = 256
	expiryBatchBytes = 256 << 10
	// expiryRoundMax caps the commands one tick proposes back to back
	// when the backlog is large, so a huge backlog cannot starve the tick's
	// exit on a leadership change for long.
	expiryRoundMax = 64
)

// expireAt converts a TTL in milliseconds into the absolute expiry a put
// carries in the log; 0 stays 0 (no expiry).
func expireAt(ttlMs int64, now time.Time) int64 {
	if ttlMs <= 0 {
		return 0
	}
	return now.UnixMilli() + ttlMs
}

// runExpiry starts the expiry loop whenever this node becomes leader and
// stops it when it steps down (or the node stops). Leadership is watched
// through a raft observer, as runBackups does, plus a periodic check in
// case an observation is dropped.
func (n *Node) runExpiry() {
	defer n.wg.Done()
	obs, unwatch := n.watchLeader()
	defer unwatch()
	check := time.NewTicker(time.Second)
	defer check.Stop()

	var stopLoop func() // non-nil while the loop runs
	defer func() {
		if stopLoop != nil {
			stopLoop()
		}
	}()
	for {
		leader := n.raft.State() == raft.Leader
		switch {
		case leader && stopLoop == nil:
			stopLoop = n.startExpireLoop()
		case !leader && stopLoop != nil:
			stopLoop()
			stopLoop = nil
		}
		select {
		case <-n.stop:
			return
		case <-obs:
		case <-check.C:
		}
	}
}

// startExpireLoop starts expireLoop and returns the function that stops it
// and waits for it to return.
func (n *Node) startExpireLoop() func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		n.expireLoop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// expireLoop runs on the leader only: every interval it reads the expiry
// index and proposes DeleteExpired commands for what is due by this node's
// clock. The FSM re-checks each key's stored expiry against the command's
// time, so keys re-put in between survive. Reads never look at a clock: a
// key is visible until its delete commits.
func (n *Node) expireLoop(ctx context.Context) {
	interval := n.cfg.ExpiryInterval
	if interval <= 0 {
		interval = defaultExpiryInterval
	}
	n.logger.Info("expiry loop started", "interval", interval)
	defer n.logger.Info("expiry loop stopped")
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for round := 0; round < expiryRoundMax && ctx.Err() == nil; round++ {
			full, err := n.expireOnce(ctx, time.Now().UnixMilli())
			if err != nil {
				n.logger.Debug("expire keys", "err", err)
				break
			}
			if !full {
				break
			}
		}
	}
}

// expireOnce proposes one DeleteExpired for up to expiryBatch keys due at
// now and reports whether the batch was full (more may be due).
func (n *Node) expireOnce(ctx context.Context, now int64) (full bool, err error) {
	due, err := n.fsm.Expired(now, expiryBatch)
	if err != nil || len(due) == 0 {
		return false, err
	}
	cmd := &fsmpb.DeleteExpired{NowUnixMs: now, Keys: make([][]byte, 0, len(due))}
	size := 0
	for _, e := range due {
		if size += len(e.Key); size > expiryBatchBytes && len(cmd.Keys) > 0 {
			full = true // the rest goes in the next command
			break
		}
		cmd.Keys = append(cmd.Keys, e.Key)
	}
	actx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	res, err := n.apply(actx, &fsmpb.Command{Op: &fsmpb.Command_DeleteExpired{DeleteExpired: cmd}})
	if err != nil {
		return false, err
	}
	if res.Delete != nil {
		n.metrics.expired.Add(float64(res.Delete.Deleted))
	}
	return full || len(due) == expiryBatch, nil
}
