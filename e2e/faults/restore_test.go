//go:build e2e

package faults

import (
	"bytes"
	"context"
	endian "encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/backup"
)

// backupRestore is F11: a backup taken under load, the load kept going,
// then an online restore of that backup, and the load continued in a second
// epoch. The workload is quiesced around the restore, so every operation
// falls into one epoch; the writes of unknown outcome of the first epoch
// are carried into the second as unknown (they may still apply after the
// restore). Checks, besides the usual ones per epoch:
//
//   - the backup is a consistent cut of epoch 0: it is recorded as one read
//     of every W1 key, concurrent with the backup call, in epoch 0's
//     history; every W1 value in it was written in epoch 0; every W2 key
//     acknowledged before the backup started is in it with its value, every
//     W2 key in it was attempted with that value before the backup ended
//     and did not fail for certain; nothing else is in it;
//   - epoch 1's W1 history starts from the backup's W1 values;
//   - W2 at the end: everything in the backup plus everything acknowledged
//     in epoch 1 (check, epoch.restored).
func backupRestore(s *scenarioRun, _ int) {
	c := s.c
	waitFor(3 * time.Second) // load before the backup
	cur := s.epochs[len(s.epochs)-1]
	var (
		file       []byte
		info       *kvpb.BackupInfo
		start, end int64
	)
	err := eventually(leaderTimeout, func() error {
		l, err := c.leader()
		if err != nil {
			return err
		}
		start = s.w.now()
		file, info, err = createBackup(c, l)
		end = s.w.now()
		return err
	})
	if err != nil {
		s.t.Fatalf("F11: backup under load: %v", err)
	}
	content, err := decodeBackup(file)
	if err != nil {
		s.t.Fatalf("F11: decode backup %s: %v", info.GetId(), err)
	}
	s.log.Info("backup taken under load", "backup_id", info.GetId(), "raft_index", info.GetRaftIndex(),
		"key_count", info.GetKeyCount(), "size_bytes", len(file), "took", time.Duration(end-start))
	initial := map[string]string{}
	for k := range numKeys {
		key := fmt.Sprintf("w1/k%02d", k)
		v, ok := content[key]
		if ok {
			initial[key] = v
		}
		cur.extra = append(cur.extra, porcupine.Operation{ClientId: backupClientID, Input: regInput{op: opGet, key: key},
			Call: start, Output: regOutput{found: ok, value: v}, Return: end})
	}
	cur.restored = content

	waitFor(3 * time.Second) // the load keeps going after the backup

	s.newEpoch(initial, func() {
		// Every operation of epoch 0 has returned: its record is complete.
		checkBackupCut(s, content, start, end)
		restoreBackup(s, file)
		// Every node applies the restore before epoch 1 begins, so no
		// read of epoch 1 sees the state before it.
		if _, _, err := c.converge(); err != nil {
			s.t.Fatalf("F11: nodes did not converge after the restore: %v", err)
		}
		s.healed()
	})
	waitFor(5 * time.Second) // epoch 1
}

// backupClientID and initialClientID are the porcupine client ids of the
// operations the checker adds to an epoch: the backup's reads, and the
// writes of its initial values.
const (
	backupClientID  = 100
	initialClientID = 101
)

// createBackup takes a backup on the leader and downloads it.
func createBackup(c *cluster, leader int) ([]byte, *kvpb.BackupInfo, error) {
	bc, err := c.admin.Backup(c.nodes[leader].grpcAddr)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := bc.Create(ctx, &kvpb.BackupCreateRequest{Download: true})
	if err != nil {
		return nil, nil, err
	}
	var file bytes.Buffer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("backup stream ended without its info")
		}
		if err != nil {
			return nil, nil, err
		}
		file.Write(msg.GetChunk())
		if done := msg.GetDone(); done != nil {
			return file.Bytes(), done, nil
		}
	}
}

// restoreBackup restores file online through the leader. A refusal before
// the upload (not the leader) is retried on the new leader; nothing changed.
func restoreBackup(s *scenarioRun, file []byte) {
	c := s.c
	var resp *kvpb.BackupRestoreResponse
	err := eventually(leaderTimeout, func() error {
		l, err := c.leader()
		if err != nil {
			return err
		}
		bc, err := c.admin.Backup(c.nodes[l].grpcAddr)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		stream, err := bc.Restore(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(&kvpb.BackupRestoreRequest{Msg: &kvpb.BackupRestoreRequest_Options{Options: &kvpb.BackupRestoreOptions{
			Size: int64(len(file)), Source: "e2e/faults F11"}}}); err != nil {
			return err
		}
		for b := file; len(b) > 0; {
			n := min(len(b), 512<<10)
			if err := stream.Send(&kvpb.BackupRestoreRequest{Msg: &kvpb.BackupRestoreRequest_Chunk{Chunk: b[:n]}}); err != nil {
				break // CloseAndRecv returns the reason
			}
			b = b[n:]
		}
		resp, err = stream.CloseAndRecv()
		return err
	})
	if err != nil {
		s.t.Fatalf("F11: online restore: %v", err)
	}
	s.log.Info("restored the backup online", "backup_id", resp.GetBackup().GetId(), "raft_index", resp.GetRaftIndex())
}

// decodeBackup reads a backup file with package backup's reader, which
// verifies it completely, and decodes the FSM snapshot inside (the format
// is described in fsm/snapshot.go) into its keys and values.
func decodeBackup(file []byte) (map[string]string, error) {
	r, err := backup.NewReader(bytes.NewReader(file))
	if err != nil {
		return nil, err
	}
	var snap bytes.Buffer
	if err := r.Extract(&snap); err != nil {
		return nil, err
	}
	b := snap.Bytes()
	const header = 8 + 4 + 8 + 8 // magic, version, applied index, applied term
	if len(b) < header || string(b[:8]) != "RKVSNAP\x00" {
		return nil, errors.New("not an FSM snapshot")
	}
	b = b[header:]
	kvs := map[string]string{}
	for {
		if len(b) < 4 {
			return nil, errors.New("snapshot ends inside a record length")
		}
		n := int(endian.BigEndian.Uint32(b))
		b = b[4:]
		if n == 0 {
			return kvs, nil // the trailer; Extract checked it
		}
		if len(b) < n {
			return nil, errors.New("snapshot ends inside a record")
		}
		rec := b[:n]
		b = b[n:]
		if rec[0] != 1 { // members and the cluster id
			continue
		}
		body := rec[1:]
		if len(body) < 4 {
			return nil, errors.New("short kv record")
		}
		kl := int(endian.BigEndian.Uint32(body))
		if len(body) < 4+kl+24 {
			return nil, errors.New("kv record key overruns the record")
		}
		key := body[4 : 4+kl]
		value := body[4+kl+24:] // after create, mod revision and version
		kvs[string(key)] = string(value)
	}
}

// checkBackupCut checks that the backup taken between start and end is a
// consistent cut of what the current epoch (stopped) did, from the state it
// began with; see backupRestore. (With RAFTKV_FAULT_DURATION F11 repeats,
// and an epoch after the first begins with the backup restored before it.)
func checkBackupCut(s *scenarioRun, content map[string]string, start, end int64) {
	cur := s.epochs[len(s.epochs)-1]
	history, attempts, _ := cur.w.results()
	written := writesOf(history)
	for k, v := range cur.initial {
		written[k+"\x00"+v] = true
	}
	for kv := range writesOf(cur.carried) {
		written[kv] = true
	}
	// The W2 keys the epoch began with must be in the backup too, and may
	// be: they were attempted in an earlier epoch.
	var required []w2Attempt
	tried := map[string]w2Attempt{}
	for _, e := range s.epochs[:len(s.epochs)-1] {
		_, earlier, _ := e.w.results()
		for _, a := range earlier {
			tried[a.key] = a
		}
		if e == s.epochs[len(s.epochs)-2] {
			for k, v := range e.restored {
				if strings.HasPrefix(k, w2Prefix) {
					required = append(required, w2Attempt{key: k, value: v, outcome: w2Acked})
				}
			}
		}
	}
	for _, a := range attempts {
		if a.outcome == w2Acked && a.ret < start {
			required = append(required, a)
		}
	}
	var bad []string
	w1, w2 := 0, 0
	for k, v := range content {
		switch {
		case strings.HasPrefix(k, "w1/"):
			w1++
			if !written[k+"\x00"+v] {
				bad = append(bad, fmt.Sprintf("W1 %s = %q was never written", k, v))
			}
		case strings.HasPrefix(k, w2Prefix):
			w2++
		case strings.HasPrefix(k, "probe/"):
		default:
			bad = append(bad, fmt.Sprintf("key %q was never written by anyone", k))
		}
	}
	for _, a := range attempts {
		tried[a.key] = a
	}
	for _, a := range required {
		if v, ok := content[a.key]; !ok || v != a.value {
			bad = append(bad, fmt.Sprintf("W2 %s acknowledged before the backup started, but the backup has %q (present %v), want %q", a.key, v, ok, a.value))
		}
	}
	for k, v := range content {
		if !strings.HasPrefix(k, w2Prefix) {
			continue
		}
		a, ok := tried[k]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("W2 %s is in the backup but was never attempted", k))
		case a.call > end:
			bad = append(bad, fmt.Sprintf("W2 %s is in the backup but was attempted only after it ended", k))
		case a.value != v:
			bad = append(bad, fmt.Sprintf("W2 %s is in the backup as %q, attempted as %q", k, v, a.value))
		case a.outcome == w2Failed:
			bad = append(bad, fmt.Sprintf("W2 %s is in the backup but its write failed for certain", k))
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		s.t.Errorf("F11: the backup is not a consistent cut of epoch %d (%d problems):\n  %s", len(s.epochs)-1, len(bad), strings.Join(bad, "\n  "))
		return
	}
	s.log.Info("backup is a consistent cut of its epoch", "epoch", len(s.epochs)-1, "w1_keys", w1, "w2_keys", w2)
}
