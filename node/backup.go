package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/backup"
	"github.com/raftkv/raftkv/fsm"
	"github.com/raftkv/raftkv/transport"
)

// backupChunkSize is the size of the file chunks a backup stream carries:
// well under the server's request limit (transport.Limits.MaxRequestBytes)
// so a restore upload is never refused for its message size.
const backupChunkSize = 256 << 10

// backupState is the node's backup machinery: where backups are kept, what
// this process has verified, and the scheduler's last outcome.
type backupState struct {
	dir *backup.Dir

	mu        sync.Mutex
	verified  map[string]string // id -> "" (verified) or why verification failed
	lastOK    time.Time
	lastErr   string
	lastErrAt time.Time

	restoring atomic.Bool
}

// startBackups opens the backup directory and registers the Backup service.
// Call it before the gRPC server serves.
func (n *Node) startBackups() error {
	path := n.cfg.BackupDir
	if path == "" {
		path = filepath.Join(n.cfg.DataDir, "backups")
	}
	d, err := backup.OpenDir(path, fileSafe(n.cfg.ID))
	if err != nil {
		return fmt.Errorf("open backup dir: %w", err)
	}
	n.backups = &backupState{dir: d, verified: map[string]string{}}
	n.grpc.RegisterBackups(n)
	return nil
}

// fileSafe maps a node id to the characters a backup temp file name may
// hold.
func fileSafe(id string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '_'
	}, strings.TrimLeft(id, "."))
}

// backupErr gives a backup package error the transport meaning clients act
// on.
func backupErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, backup.ErrNotFound):
		return fmt.Errorf("%w: %w", transport.ErrBackupNotFound, err)
	case errors.Is(err, backup.ErrClusterMismatch):
		return fmt.Errorf("%w: %w", transport.ErrClusterMismatch, err)
	case errors.Is(err, backup.ErrInvalidID):
		return fmt.Errorf("%w: %w", transport.ErrInvalidArgument, err)
	case errors.Is(err, backup.ErrCorrupt), errors.Is(err, backup.ErrNotBackup), errors.Is(err, backup.ErrUnsupportedVersion):
		return fmt.Errorf("%w: %w", transport.ErrBackupInvalid, err)
	}
	return err
}

func (n *Node) notLeader() error {
	id, addr := n.leaderGRPC()
	return &transport.NotLeaderError{LeaderID: id, LeaderAddr: addr}
}

// backupInfo converts a manifest for the wire.
func (n *Node) backupInfo(m backup.Manifest, fileSize int64, status string) *kvpb.BackupInfo {
	return &kvpb.BackupInfo{
		Id:               m.ID,
		ClusterId:        m.ClusterID,
		NodeId:           m.NodeID,
		RaftIndex:        m.RaftIndex,
		RaftTerm:         m.RaftTerm,
		AppliedIndex:     m.AppliedIndex,
		CreatedUnixMs:    m.Created.UnixMilli(),
		Trigger:          m.Trigger,
		KeyCount:         m.KeyCount,
		UncompressedSize: m.UncompressedSize,
		CompressedSize:   m.CompressedSize,
		FileSize:         fileSize,
		Sha256:           m.SHA256,
		FormatVersion:    m.FormatVersion,
		Status:           status,
		StoredOn:         n.cfg.ID,
	}
}

// ctxReader fails reads once ctx is done, so a long copy stops when its
// caller goes away.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// prepareBackup takes a fresh raft snapshot (raft.Snapshot, then Open) and
// compresses it into a backup whose payload is checked on the way.
func (n *Node) prepareBackup(ctx context.Context, trigger string, progress func(done, total int64)) (*backup.Prepared, error) {
	start := time.Now()
	fut := n.raft.Snapshot()
	if err := fut.Error(); err != nil {
		return nil, fmt.Errorf("take raft snapshot: %w", err)
	}
	meta, rc, err := fut.Open()
	if err != nil {
		return nil, fmt.Errorf("open raft snapshot: %w", err)
	}
	defer rc.Close()
	var report func(int64)
	if progress != nil {
		report = func(done int64) { progress(done, meta.Size) }
	}
	p, err := backup.Prepare(ctxReader{ctx, rc}, backup.Info{
		ID:            backup.NewID(start, meta.Index),
		NodeID:        n.cfg.ID,
		RaftIndex:     meta.Index,
		RaftTerm:      meta.Term,
		Created:       start,
		Trigger:       trigger,
		RaftkvVersion: Version,
	}, n.backups.dir.TempDir(), report)
	if err != nil {
		return nil, fmt.Errorf("prepare backup of snapshot %s: %w", meta.ID, err)
	}
	return p, nil
}

// storeBackup writes p into the backup directory, then reads it back
// completely to verify it. A backup that fails verification is deleted:
// List never shows a bad file as good.
func (n *Node) storeBackup(ctx context.Context, p *backup.Prepared) (*kvpb.BackupInfo, error) {
	m := p.Manifest()
	err := n.backups.dir.Put(ctx, m.ID, func(w io.Writer) error {
		_, err := p.WriteTo(w)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store backup %s: %w", m.ID, err)
	}
	info, err := n.verifyStored(ctx, m.ID)
	if err != nil {
		if derr := n.backups.dir.Delete(context.WithoutCancel(ctx), m.ID); derr != nil {
			n.logger.Error("delete backup that failed verification", "backup_id", m.ID, "err", derr)
		}
		return nil, fmt.Errorf("verify stored backup %s: %w", m.ID, err)
	}
	return info, nil
}

// CreateBackup implements transport.Backups.
func (n *Node) CreateBackup(ctx context.Context, req *kvpb.BackupCreateRequest, send func(*kvpb.BackupCreateResponse) error) (err error) {
	if !req.GetAllowStale() && n.raft.State() != raft.Leader {
		return n.notLeader()
	}
	start := time.Now()
	var size int64
	defer func() {
		n.metrics.recordBackup(backupResult{Start: start, Duration: time.Since(start), SizeBytes: size, Err: err})
	}()
	progress := func(phase string, done, total int64) error {
		return send(&kvpb.BackupCreateResponse{Msg: &kvpb.BackupCreateResponse_Progress{
			Progress: &kvpb.BackupProgress{Phase: phase, DoneBytes: done, TotalBytes: total}}})
	}
	p, err := n.prepareBackup(ctx, backup.TriggerManual, func(done, total int64) {
		_ = progress("snapshot", done, total) // a gone caller cancels ctx
	})
	if err != nil {
		return err
	}
	defer p.Close()
	m := p.Manifest()
	size = p.Size()

	var info *kvpb.BackupInfo
	if req.GetDownload() {
		if err := progress("transfer", 0, size); err != nil {
			return err
		}
		cw := &chunkWriter{send: func(b []byte) error {
			return send(&kvpb.BackupCreateResponse{Msg: &kvpb.BackupCreateResponse_Chunk{Chunk: b}})
		}}
		if _, err := p.WriteTo(cw); err != nil {
			return fmt.Errorf("send backup %s: %w", m.ID, err)
		}
		if err := cw.flush(); err != nil {
			return fmt.Errorf("send backup %s: %w", m.ID, err)
		}
		// The payload was checked while it was compressed; the caller
		// verifies the file it received.
		info = n.backupInfo(m, size, "ok")
		info.StoredOn = ""
	} else {
		if err := progress("verify", 0, size); err != nil {
			return err
		}
		if info, err = n.storeBackup(ctx, p); err != nil {
			return err
		}
	}
	n.logger.Info("backup created", "backup_id", m.ID, "raft_index", m.RaftIndex, "term", m.RaftTerm,
		"key_count", m.KeyCount, "size_bytes", size, "download", req.GetDownload(), "duration", time.Since(start))
	return send(&kvpb.BackupCreateResponse{Msg: &kvpb.BackupCreateResponse_Done{Done: info}})
}

// chunkWriter cuts a byte stream into backupChunkSize messages.
type chunkWriter struct {
	buf  []byte
	send func([]byte) error
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if c.buf == nil {
			c.buf = make([]byte, 0, backupChunkSize)
		}
		k := min(len(p), backupChunkSize-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == backupChunkSize {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	b := c.buf
	c.buf = nil // the message keeps b; the next chunk gets a new buffer
	return c.send(b)
}

// ListBackups implements transport.Backups. It reads only each backup's
// header and manifest: status "ok" means they are intact and the file has
// the size they promise; "verified" means a full read in this process
// found every checksum right.
func (n *Node) ListBackups(ctx context.Context) (*kvpb.BackupListResponse, error) {
	bs := n.backups
	entries, err := bs.dir.List(ctx)
	if err != nil {
		return nil, err
	}
	resp := &kvpb.BackupListResponse{NodeId: n.cfg.ID, ClusterId: n.ClusterID(), BackupDir: bs.dir.Path()}
	for _, e := range entries {
		m, err := n.readManifest(ctx, e.ID)
		info := n.backupInfo(m, e.Size, "ok")
		info.Id = e.ID
		switch {
		case err != nil:
			info.Status = "corrupt: " + err.Error()
		case m.ID != e.ID:
			info.Status = fmt.Sprintf("corrupt: the manifest names backup %s", m.ID)
		case e.Size != m.FileSize():
			info.Status = fmt.Sprintf("corrupt: file is %d bytes, the manifest says %d", e.Size, m.FileSize())
		default:
			bs.mu.Lock()
			v, ok := bs.verified[e.ID]
			bs.mu.Unlock()
			if ok && v == "" {
				info.Status = "verified"
			} else if ok {
				info.Status = "corrupt: " + v
			}
		}
		resp.Backups = append(resp.Backups, info)
	}
	bs.mu.Lock()
	if !bs.lastOK.IsZero() {
		resp.LastSuccessUnixMs = bs.lastOK.UnixMilli()
	}
	if bs.lastErr != "" {
		resp.LastError, resp.LastErrorUnixMs = bs.lastErr, bs.lastErrAt.UnixMilli()
	}
	bs.mu.Unlock()
	return resp, nil
}

func (n *Node) readManifest(ctx context.Context, id string) (backup.Manifest, error) {
	rc, _, err := n.backups.dir.Open(ctx, id)
	if err != nil {
		return backup.Manifest{}, err
	}
	defer rc.Close()
	return backup.ReadManifest(rc)
}

// VerifyBackup implements transport.Backups.
func (n *Node) VerifyBackup(ctx context.Context, id string) (*kvpb.BackupInfo, error) {
	info, err := n.verifyStored(ctx, id)
	return info, backupErr(err)
}

// verifyStored reads the stored backup id completely and records the
// outcome for List.
func (n *Node) verifyStored(ctx context.Context, id string) (*kvpb.BackupInfo, error) {
	rc, size, err := n.backups.dir.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	r, err := backup.NewReader(ctxReader{ctx, rc})
	if err == nil {
		err = r.Verify()
	}
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("verify backup %s: %w", id, ctx.Err())
	}
	n.backups.mu.Lock()
	if err != nil {
		n.backups.verified[id] = err.Error()
	} else {
		n.backups.verified[id] = ""
	}
	n.backups.mu.Unlock()
	if err != nil {
		n.logger.Error("backup failed verification", "backup_id", id, "err", err)
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	return n.backupInfo(r.Manifest(), size, "verified"), nil
}

// DeleteBackup implements transport.Backups.
func (n *Node) DeleteBackup(ctx context.Context, id string) error {
	if err := n.backups.dir.Delete(ctx, id); err != nil {
		return backupErr(err)
	}
	n.backups.mu.Lock()
	delete(n.backups.verified, id)
	n.backups.mu.Unlock()
	n.logger.Info("backup deleted", "backup_id", id)
	return nil
}

// DownloadBackup implements transport.Backups.
func (n *Node) DownloadBackup(ctx context.Context, id string, send func(*kvpb.BackupChunk) error) error {
	m, err := n.readManifest(ctx, id)
	if err != nil {
		return backupErr(err)
	}
	rc, size, err := n.backups.dir.Open(ctx, id)
	if err != nil {
		return backupErr(err)
	}
	defer rc.Close()
	info := n.backupInfo(m, size, "ok")
	first := true
	cw := &chunkWriter{send: func(b []byte) error {
		msg := &kvpb.BackupChunk{Data: b}
		if first {
			msg.Info, first = info, false
		}
		return send(msg)
	}}
	if _, err := io.Copy(cw, ctxReader{ctx, rc}); err != nil {
		return fmt.Errorf("send backup %s: %w", id, err)
	}
	return cw.flush()
}

// RestoreBackup implements transport.Backups: the online, disaster-recovery
// restore through raft.Restore.
//
// WARNING: it replaces the whole replicated state on every node by the
// backup's; every write after the backup is lost. raft.Restore also has the
// leader commit ahead of its followers for a while (see its WARNING in
// hashicorp/raft api.go): use it to recover, not as a routine operation.
//
// The upload is written to a temporary file and the backup is verified
// completely (and, for a foreign backup under force, rewritten to this
// cluster's id) before raft is asked for anything, so an interrupted upload
// or a bad file changes nothing.
func (n *Node) RestoreBackup(ctx context.Context, opts *kvpb.BackupRestoreOptions, recv func() ([]byte, error)) (*kvpb.BackupRestoreResponse, error) {
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	bs := n.backups
	if !bs.restoring.CompareAndSwap(false, true) {
		return nil, fmt.Errorf("%w: another restore is in progress on this node", transport.ErrInvalidArgument)
	}
	defer bs.restoring.Store(false)
	start := time.Now()
	log := n.logger.With("source", opts.GetSource())

	upload, err := bs.dir.CreateTemp()
	if err != nil {
		return nil, fmt.Errorf("create upload file: %w", err)
	}
	defer removeTemp(upload)
	var received int64
	for {
		b, err := recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Warn("restore upload interrupted; nothing changed", "received_bytes", received, "err", err)
			return nil, fmt.Errorf("restore upload interrupted after %d bytes, nothing changed: %w", received, err)
		}
		if _, err := upload.Write(b); err != nil {
			return nil, fmt.Errorf("write upload file: %w", err)
		}
		received += int64(len(b))
	}
	log.Info("restore upload received", "size_bytes", received, "duration", time.Since(start))

	stream, m, err := n.prepareRestore(ctx, upload, opts.GetForce())
	if err != nil {
		log.Warn("restore refused; nothing changed", "err", err)
		return nil, err
	}
	defer removeTemp(stream)
	fi, err := stream.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat snapshot file: %w", err)
	}
	if _, err := stream.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewind snapshot file: %w", err)
	}

	if n.raft.State() != raft.Leader {
		return nil, n.notLeader()
	}
	log.Warn("restoring backup through raft: the state of every node is replaced, writes after the backup are lost",
		"backup_id", m.ID, "raft_index", m.RaftIndex, "key_count", m.KeyCount)
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Index: m.RaftIndex, Term: m.RaftTerm, Size: fi.Size()}
	if err := n.raft.Restore(meta, stream, timeoutFrom(ctx, 0)); err != nil {
		return nil, fmt.Errorf("raft restore of backup %s: %w", m.ID, err)
	}
	// The restored FSM's applied index is the backup's, below the raft
	// index the restore created. One FSM entry brings every node's applied
	// index to the new log position (so linearizable reads, which wait for
	// it, don't stall until the next write) and gives the cluster an id if
	// the backup had none.
	id := n.ClusterID()
	if id == "" {
		id = newClusterID()
	}
	res, err := n.apply(ctx, clusterIDCommand(id))
	if err != nil {
		return nil, fmt.Errorf("backup %s restored, but the entry after it failed: %w", m.ID, err)
	}
	log.Warn("restored backup", "backup_id", m.ID, "raft_index", res.Index, "key_count", m.KeyCount,
		"cluster_id", n.ClusterID(), "duration", time.Since(start))
	return &kvpb.BackupRestoreResponse{
		Backup:    n.backupInfo(m, received, "verified"),
		RaftIndex: res.Index,
		ClusterId: n.ClusterID(),
	}, nil
}

// prepareRestore verifies the uploaded backup completely and returns a
// temporary file holding the FSM snapshot stream to restore, rewritten to
// this cluster's id when a foreign backup is restored with force.
func (n *Node) prepareRestore(ctx context.Context, upload *os.File, force bool) (*os.File, backup.Manifest, error) {
	if _, err := upload.Seek(0, io.SeekStart); err != nil {
		return nil, backup.Manifest{}, fmt.Errorf("rewind upload file: %w", err)
	}
	r, err := backup.NewReader(ctxReader{ctx, upload})
	if err != nil {
		return nil, backup.Manifest{}, backupErr(err)
	}
	m := r.Manifest()
	ours := n.ClusterID()
	if err := backup.CheckCluster(m, ours, force); err != nil {
		return nil, m, backupErr(err)
	}
	stream, err := n.backups.dir.CreateTemp()
	if err != nil {
		return nil, m, fmt.Errorf("create snapshot file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			removeTemp(stream)
		}
	}()
	if err := r.Extract(stream); err != nil {
		return nil, m, backupErr(fmt.Errorf("backup %s: %w", m.ID, err))
	}
	if ours != "" && m.ClusterID != "" && m.ClusterID != ours {
		// Keep this cluster's identity: a forced restore imports data, it
		// does not make this cluster the other one.
		rewritten, err := n.backups.dir.CreateTemp()
		if err != nil {
			return nil, m, fmt.Errorf("create snapshot file: %w", err)
		}
		if _, err := stream.Seek(0, io.SeekStart); err != nil {
			removeTemp(rewritten)
			return nil, m, fmt.Errorf("rewind snapshot file: %w", err)
		}
		if _, err := fsm.RewriteClusterID(rewritten, ctxReader{ctx, stream}, ours); err != nil {
			removeTemp(rewritten)
			return nil, m, fmt.Errorf("rewrite the backup's cluster id: %w", err)
		}
		removeTemp(stream)
		stream = rewritten
	}
	if err := stream.Sync(); err != nil {
		return nil, m, fmt.Errorf("sync snapshot file: %w", err)
	}
	ok = true
	return stream, m, nil
}

func removeTemp(f *os.File) {
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// runBackups is the node's backup loop: it keeps the cluster id set (on the
// leader) and, with a backup interval, takes scheduled backups on the
// leader.
//
// Scheduled backups fall on multiples of the interval (wall clock, UTC):
// whichever node leads at a boundary takes that one, so leadership moving
// between boundaries neither skips nor repeats one. Clock skew, or
// leadership moving right at a boundary, can still cause one extra or one
// missed backup.
func (n *Node) runBackups() {
	defer n.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()

	obs, unwatch := n.watchLeader()
	defer unwatch()
	check := time.NewTicker(2 * time.Second)
	defer check.Stop()

	interval := n.cfg.BackupInterval
	var slot <-chan time.Time // nil, so never ready, without an interval
	var timer *time.Timer
	if interval > 0 {
		timer = time.NewTimer(time.Until(nextSlot(time.Now(), interval)))
		defer timer.Stop()
		slot = timer.C
		n.logger.Info("scheduled backups on", "interval", interval, "retain", n.cfg.BackupRetain, "backup_dir", n.backups.dir.Path())
	}
	for {
		n.clusterIDTick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-obs:
		case <-check.C:
		case now := <-slot:
			if n.raft.State() == raft.Leader {
				n.scheduledBackup(ctx, now)
			}
			timer.Reset(time.Until(nextSlot(time.Now(), interval)))
		}
	}
}

func (n *Node) clusterIDTick(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.ensureClusterID(cctx); err != nil {
		n.logger.Debug("ensure cluster id", "err", err)
	}
}

// nextSlot returns the first multiple of interval after now.
func nextSlot(now time.Time, interval time.Duration) time.Time {
	return now.Truncate(interval).Add(interval)
}

// scheduledBackup takes, stores, verifies and then prunes one scheduled
// backup, recording the outcome for List and the metrics.
func (n *Node) scheduledBackup(ctx context.Context, slot time.Time) {
	start := time.Now()
	var size int64
	info, err := func() (*kvpb.BackupInfo, error) {
		p, err := n.prepareBackup(ctx, backup.TriggerScheduled, nil)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		size = p.Size()
		return n.storeBackup(ctx, p)
	}()
	n.metrics.recordBackup(backupResult{Start: start, Duration: time.Since(start), SizeBytes: size, Err: err})
	bs := n.backups
	bs.mu.Lock()
	if err != nil {
		bs.lastErr, bs.lastErrAt = err.Error(), time.Now()
	} else {
		bs.lastOK = time.Now()
	}
	bs.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			n.logger.Error("scheduled backup failed", "slot", slot.UTC(), "err", err)
		}
		return
	}
	n.logger.Info("scheduled backup done", "backup_id", info.GetId(), "raft_index", info.GetRaftIndex(),
		"key_count", info.GetKeyCount(), "size_bytes", info.GetFileSize(), "duration", time.Since(start))
	if err := n.pruneScheduled(ctx); err != nil {
		n.logger.Warn("prune scheduled backups", "err", err)
	}
}

// pruneScheduled deletes all but the newest BackupRetain scheduled backups
// in the backup directory (of any node, if several share it). Manual
// backups and files whose manifest cannot be read are left alone.
func (n *Node) pruneScheduled(ctx context.Context) error {
	keep := n.cfg.BackupRetain
	if keep <= 0 {
		return nil
	}
	entries, err := n.backups.dir.List(ctx)
	if err != nil {
		return err
	}
	var scheduled []backup.Manifest
	for _, e := range entries {
		m, err := n.readManifest(ctx, e.ID)
		if err != nil || m.Trigger != backup.TriggerScheduled || m.ID != e.ID {
			continue
		}
		scheduled = append(scheduled, m)
	}
	slices.SortFunc(scheduled, func(a, b backup.Manifest) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	var errs []error
	for len(scheduled) > keep {
		id := scheduled[0].ID
		scheduled = scheduled[1:]
		if err := n.DeleteBackup(ctx, id); err != nil && !errors.Is(err, transport.ErrBackupNotFound) {
			errs = append(errs, err)
			continue
		}
		n.logger.Info("pruned scheduled backup", "backup_id", id, "retain", keep)
	}
	return errors.Join(errs...)
}
