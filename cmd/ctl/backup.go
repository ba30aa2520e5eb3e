package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
	"github.com/raftkv/raftkv/backup"
)

// Exit codes of the backup commands, on top of main's.
const (
	exitBackupInvalid = 4
	exitRefused       = 5
)

// backupTimeout is the default deadline of the backup commands that move or
// read a whole backup; --timeout overrides it.
const backupTimeout = time.Hour

var backupSpec = commandSpec{
	name:     "backup",
	synopsis: "backup SUBCOMMAND",
	summary:  "create, list, verify, delete and restore backups",
	help: `Backups are consistent copies of the whole replicated state, taken from a
fresh raft snapshot (docs/backup.md describes the file format).

  backup create [--out FILE] [--allow-stale]
      Take a backup on the leader. With --out, stream it here and write FILE
      (verified, then renamed into place; FILE must not exist). Without --out
      the leader keeps it in its --backup-dir and the command prints its id.
      --allow-stale takes it on the first endpoint instead, from its possibly
      stale state. A progress bar is shown when stderr is a terminal.

  backup list
      List the backups in every endpoint's backup dir: id, creation time, raft
      index, keys, size, trigger, status and the node keeping it. Status "ok"
      means header and manifest are intact and the size is right; "verified"
      that a full read found every checksum right.

  backup verify FILE|ID
      Read the whole backup and check the manifest checksum, the payload's
      SHA-256, that the snapshot inside decodes and that its key count is the
      manifest's. A FILE is checked here, offline; an ID by the node keeping
      it. Neither touches the replicated state. Exit 4 if it is not valid.

  backup delete ID
      Delete a stored backup from the backup dir of every endpoint holding it.

  backup restore FILE|ID|- --yes [--force]
      WARNING: replace the whole state of the running cluster by the backup,
      through raft on the leader. Every node ends up with exactly the backup's
      data; every write after the backup is lost. Requires --yes. A backup of
      another cluster is refused (exit 5) unless --force; the cluster keeps its
      own id. "-" reads the file from standard input. The leader receives and
      verifies the whole file before it changes anything, so a bad file (exit
      4) or an interrupted upload changes nothing.

  backup restore FILE --data-dir DIR --id ID --initial-cluster ID=HOST:PORT,...
      Offline: seed the empty data dir of a node of a NEW cluster from FILE,
      for disaster recovery when no quorum is left. Run it for every node of
      the new cluster with the same --initial-cluster, then start them all.
      Touches only files.`,
	new: func(e *env) command { return newBackupCommand(e) },
}

// backupCommand implements `raftkvctl backup SUBCOMMAND`. Its flag set holds
// the flags of every subcommand; run refuses those its subcommand does not
// take.
type backupCommand struct {
	env *env
	fs  *flag.FlagSet

	out        string
	allowStale bool
	yes        bool
	force      bool
	dataDir    string
	id         string
	initial    string
}

// backupFlags says which flags each subcommand takes.
var backupFlags = map[string][]string{
	"create":  {"out", "allow-stale"},
	"list":    {},
	"verify":  {},
	"delete":  {},
	"restore": {"yes", "force", "data-dir", "id", "initial-cluster"},
}

func newBackupCommand(e *env) *backupCommand {
	c := &backupCommand{env: e, fs: newFlagSet("backup")}
	c.fs.StringVar(&c.out, "out", "", "create: write the backup to `FILE` here instead of the leader's backup dir")
	c.fs.BoolVar(&c.allowStale, "allow-stale", false, "create: take the backup on the first endpoint even if it is not the leader")
	c.fs.BoolVar(&c.yes, "yes", false, "restore: confirm that the cluster's current state is to be replaced and later writes lost")
	c.fs.BoolVar(&c.force, "force", false, "restore: restore a backup of another cluster")
	c.fs.StringVar(&c.dataDir, "data-dir", "", "restore offline: the new node's empty data `DIR`")
	c.fs.StringVar(&c.id, "id", "", "restore offline: the new node's `ID`")
	c.fs.StringVar(&c.initial, "initial-cluster", "", "restore offline: the new cluster's servers, `ID=HOST:PORT,...` (raft addresses)")
	return c
}

func (c *backupCommand) flags() *flag.FlagSet { return c.fs }

// longRunning is a command whose default deadline is not the global
// --timeout default (main uses it when --timeout is not given).
type longRunning interface {
	defaultTimeout(args []string) time.Duration
}

// flagSet reports whether the flag name was set on fs's command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// exitCoder is an error that carries its own exit code.
type exitCoder interface {
	error
	exitCode() int
}

// codedError attaches an exit code to an error.
type codedError struct {
	err  error
	code int
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }
func (e *codedError) exitCode() int { return e.code }

func (c *backupCommand) defaultTimeout(args []string) time.Duration {
	if len(args) > 0 && (args[0] == "list" || args[0] == "delete") {
		return 30 * time.Second
	}
	return backupTimeout
}

func (c *backupCommand) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageErrorf("missing subcommand: create, list, verify, delete or restore")
	}
	sub, args := args[0], args[1:]
	allowed, ok := backupFlags[sub]
	if !ok {
		return usageErrorf("unknown subcommand %q (want create, list, verify, delete or restore)", sub)
	}
	var bad []string
	c.fs.Visit(func(f *flag.Flag) {
		if !slices.Contains(allowed, f.Name) {
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return usageErrorf("backup %s does not take %s", sub, strings.Join(bad, ", "))
	}
	switch sub {
	case "create":
		if err := wantArgs(args, 0, 0, "no arguments (use --out FILE)"); err != nil {
			return err
		}
		return c.create(ctx)
	case "list":
		if err := wantArgs(args, 0, 0, "no arguments"); err != nil {
			return err
		}
		return c.list(ctx)
	case "verify":
		if err := wantArgs(args, 1, 1, "FILE or ID"); err != nil {
			return err
		}
		return c.verify(ctx, args[0])
	case "delete":
		if err := wantArgs(args, 1, 1, "ID"); err != nil {
			return err
		}
		return c.delete(ctx, args[0])
	default: // restore
		if err := wantArgs(args, 1, 1, "FILE, ID or -"); err != nil {
			return err
		}
		if c.dataDir != "" || c.id != "" || c.initial != "" {
			return c.restoreOffline(args[0])
		}
		return c.restore(ctx, args[0])
	}
}

// backupError turns a failed backup call into an error with the exit code
// its reason calls for.
func backupError(err error) error {
	if err == nil {
		return nil
	}
	switch grpcReason(err) {
	case kvpb.ReasonBackupInvalid:
		return &codedError{err: err, code: exitBackupInvalid}
	case kvpb.ReasonClusterMismatch:
		return &codedError{err: err, code: exitRefused}
	case kvpb.ReasonBackupNotFound:
		return &codedError{err: err, code: exitNotFound}
	}
	if errors.Is(err, backup.ErrCorrupt) || errors.Is(err, backup.ErrNotBackup) || errors.Is(err, backup.ErrUnsupportedVersion) {
		return &codedError{err: err, code: exitBackupInvalid}
	}
	return err
}

// grpcReason returns the raftkv ErrorInfo reason of a gRPC status error.
func grpcReason(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return ""
	}
	for _, d := range se.GRPCStatus().Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == kvpb.ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

// backupTarget returns the endpoint a backup is taken on: the leader, or
// with --allow-stale the first endpoint.
func (c *backupCommand) backupTarget(ctx context.Context) (string, error) {
	if c.allowStale {
		return c.env.globals.endpointList()[0], nil
	}
	cli, err := c.env.client()
	if err != nil {
		return "", err
	}
	return cli.Leader(ctx)
}

func (c *backupCommand) create(ctx context.Context) error {
	if c.out != "" {
		if _, err := os.Lstat(c.out); err == nil {
			return fmt.Errorf("%s already exists; remove it or choose another --out", c.out)
		}
	}
	ep, err := c.backupTarget(ctx)
	if err != nil {
		return err
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	bc, err := cli.Backup(ep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := bc.Create(ctx, &kvpb.BackupCreateRequest{Download: c.out != "", AllowStale: c.allowStale})
	if err != nil {
		return fmt.Errorf("backup create at %s: %w", ep, err)
	}
	bar := newProgressBar(c.env.stderr)
	defer bar.finish()

	var tmp *os.File
	if c.out != "" {
		tmp, err = os.CreateTemp(filepath.Dir(c.out), "."+filepath.Base(c.out)+".tmp-*")
		if err != nil {
			return fmt.Errorf("create temp file next to %s: %w", c.out, err)
		}
		defer func() {
			if tmp != nil {
				tmp.Close()
				os.Remove(tmp.Name())
			}
		}()
	}
	var written, total int64
	var info *kvpb.BackupInfo
	for info == nil {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("backup create at %s: stream ended without a result", ep)
		}
		if err != nil {
			return fmt.Errorf("backup create at %s: %w", ep, err)
		}
		switch m := msg.GetMsg().(type) {
		case *kvpb.BackupCreateResponse_Progress:
			total = m.Progress.GetTotalBytes()
			bar.update(m.Progress.GetPhase(), m.Progress.GetDoneBytes(), total)
		case *kvpb.BackupCreateResponse_Chunk:
			if tmp == nil {
				return fmt.Errorf("backup create at %s: got file data without asking for it", ep)
			}
			if _, err := tmp.Write(m.Chunk); err != nil {
				return fmt.Errorf("write %s: %w", tmp.Name(), err)
			}
			written += int64(len(m.Chunk))
			bar.update("transfer", written, total)
		case *kvpb.BackupCreateResponse_Done:
			info = m.Done
		}
	}
	if tmp != nil {
		bar.update("verify", 0, 0)
		if err := c.finishDownload(tmp, info); err != nil {
			return err
		}
		tmp = nil
	}
	bar.finish()
	return c.printInfo(info, c.out)
}

// finishDownload syncs the received backup, checks it and renames it to
// --out. The leader decoded and checked the snapshot while compressing it
// and hashed what it compressed, so checking the manifest and the payload's
// size and SHA-256 proves the file intact without decompressing it again
// (`backup verify FILE` does the complete check).
func (c *backupCommand) finishDownload(tmp *os.File, info *kvpb.BackupInfo) error {
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Sync(); err != nil {
		return fail(fmt.Errorf("sync %s: %w", tmp.Name(), err))
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return fail(fmt.Errorf("rewind %s: %w", tmp.Name(), err))
	}
	r, err := backup.NewReader(tmp)
	if err == nil {
		err = r.VerifyChecksum()
	}
	if err != nil {
		return fail(backupError(fmt.Errorf("received backup %s is damaged: %w", info.GetId(), err)))
	}
	if m := r.Manifest(); m.ID != info.GetId() || m.SHA256 != info.GetSha256() {
		return fail(fmt.Errorf("received backup is %s, the server announced %s", m.ID, info.GetId()))
	}
	if err := tmp.Close(); err != nil {
		return fail(fmt.Errorf("close %s: %w", tmp.Name(), err))
	}
	if err := os.Rename(tmp.Name(), c.out); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rename backup into place: %w", err)
	}
	info.Status = "ok (sha256 checked)"
	return nil
}

// printInfo prints one backup's description: where it went and what it
// holds.
func (c *backupCommand) printInfo(info *kvpb.BackupInfo, file string) error {
	if c.env.globals.output == "json" {
		p := &jsonPrinter{w: c.env.stdout}
		if file == "" {
			return p.message(info)
		}
		b, err := protoJSON.Marshal(info)
		if err != nil {
			return fmt.Errorf("encode backup info as json: %w", err)
		}
		return p.write([]byte(fmt.Sprintf(`{"file":%q,"backup":%s}`, file, b)))
	}
	w := c.env.stdout
	if file != "" {
		fmt.Fprintf(w, "backup %s written to %s\n", info.GetId(), file)
	} else if info.GetStoredOn() != "" {
		fmt.Fprintf(w, "backup %s stored on %s\n", info.GetId(), info.GetStoredOn())
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "  id\t%s\n", info.GetId())
	fmt.Fprintf(tw, "  cluster\t%s\n", info.GetClusterId())
	fmt.Fprintf(tw, "  taken on\t%s\n", info.GetNodeId())
	fmt.Fprintf(tw, "  created\t%s\n", time.UnixMilli(info.GetCreatedUnixMs()).UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(tw, "  raft index / term\t%d / %d\n", info.GetRaftIndex(), info.GetRaftTerm())
	fmt.Fprintf(tw, "  applied index\t%d\n", info.GetAppliedIndex())
	fmt.Fprintf(tw, "  keys\t%d\n", info.GetKeyCount())
	fmt.Fprintf(tw, "  size\t%s (snapshot %s, file %s)\n", humanBytes(info.GetCompressedSize()), humanBytes(info.GetUncompressedSize()), humanBytes(info.GetFileSize()))
	fmt.Fprintf(tw, "  sha256\t%s\n", info.GetSha256())
	fmt.Fprintf(tw, "  status\t%s\n", info.GetStatus())
	return tw.Flush()
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// listing is what one endpoint said to List: resp or err is set.
type listing = endpointAnswer[*kvpb.BackupListResponse]

// listAll asks every endpoint for its backups, concurrently.
func (c *backupCommand) listAll(ctx context.Context) ([]listing, error) {
	cli, err := c.env.client()
	if err != nil {
		return nil, err
	}
	out := askEach(ctx, c.env.globals.endpointList(), func(ctx context.Context, ep string) (*kvpb.BackupListResponse, error) {
		bc, err := cli.Backup(ep)
		if err != nil {
			return nil, fmt.Errorf("backup list at %s: %w", ep, err)
		}
		resp, err := bc.List(ctx, &kvpb.BackupListRequest{})
		if err != nil {
			return nil, fmt.Errorf("backup list at %s: %w", ep, err)
		}
		return resp, nil
	})
	return out, allFailed(out)
}

// holders returns the endpoints whose backup dir holds id, with its info.
func holders(ls []listing, id string) (eps []string, info *kvpb.BackupInfo) {
	for _, l := range ls {
		if l.err != nil {
			continue
		}
		for _, b := range l.resp.GetBackups() {
			if b.GetId() == id {
				eps = append(eps, l.endpoint)
				info = b
			}
		}
	}
	return eps, info
}

func notFoundError(id string, ls []listing) error {
	var unreachable []string
	for _, l := range ls {
		if l.err != nil {
			unreachable = append(unreachable, l.endpoint)
		}
	}
	msg := fmt.Sprintf("backup %s not found on any endpoint", id)
	if len(unreachable) > 0 {
		msg += fmt.Sprintf(" (unreachable: %s)", strings.Join(unreachable, ", "))
	}
	return &codedError{err: errors.New(msg), code: exitNotFound}
}

func (c *backupCommand) list(ctx context.Context) error {
	ls, err := c.listAll(ctx)
	if err != nil {
		return err
	}
	// Nodes sharing one backup dir list the same files: show each once.
	byID := map[string]*kvpb.BackupInfo{}
	for _, l := range ls {
		if l.err != nil {
			continue
		}
		for _, b := range l.resp.GetBackups() {
			if prev, ok := byID[b.GetId()]; ok {
				if !strings.Contains(","+prev.GetStoredOn()+",", ","+b.GetStoredOn()+",") {
					prev.StoredOn += "," + b.GetStoredOn()
				}
				if b.GetStatus() == "verified" {
					prev.Status = b.GetStatus()
				}
				continue
			}
			byID[b.GetId()] = b
		}
	}
	ids := make([]string, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if c.env.globals.output == "json" {
		var parts []string
		for _, id := range ids {
			b, err := protoJSON.Marshal(byID[id])
			if err != nil {
				return fmt.Errorf("encode backup %s as json: %w", id, err)
			}
			parts = append(parts, string(b))
		}
		var nodes []string
		for _, l := range ls {
			if l.err != nil {
				nodes = append(nodes, fmt.Sprintf(`{"endpoint":%q,"error":%q}`, l.endpoint, l.err.Error()))
				continue
			}
			r := &kvpb.BackupListResponse{NodeId: l.resp.GetNodeId(), ClusterId: l.resp.GetClusterId(), BackupDir: l.resp.GetBackupDir(),
				LastSuccessUnixMs: l.resp.GetLastSuccessUnixMs(), LastError: l.resp.GetLastError(), LastErrorUnixMs: l.resp.GetLastErrorUnixMs()}
			b, err := protoJSON.Marshal(r)
			if err != nil {
				return fmt.Errorf("encode node listing as json: %w", err)
			}
			nodes = append(nodes, fmt.Sprintf(`{"endpoint":%q,"node":%s}`, l.endpoint, b))
		}
		return (&jsonPrinter{w: c.env.stdout}).write([]byte(`{"backups":[` + strings.Join(parts, ",") + `],"nodes":[` + strings.Join(nodes, ",") + `]}`))
	}
	tw := tabwriter.NewWriter(c.env.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCREATED\tRAFT_INDEX\tKEYS\tSIZE\tTRIGGER\tSTORED_ON\tSTATUS")
	for _, id := range ids {
		b := byID[id]
		created := "-"
		if b.GetCreatedUnixMs() > 0 {
			created = time.UnixMilli(b.GetCreatedUnixMs()).UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", id, created, b.GetRaftIndex(), b.GetKeyCount(),
			humanBytes(b.GetFileSize()), b.GetTrigger(), b.GetStoredOn(), b.GetStatus())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range ls {
		switch {
		case l.err != nil:
			fmt.Fprintf(c.env.stdout, "# %s: %s\n", l.endpoint, errorText(l.err))
		case l.resp.GetLastError() != "":
			fmt.Fprintf(c.env.stdout, "# %s: last scheduled backup failed at %s: %s\n", l.resp.GetNodeId(),
				time.UnixMilli(l.resp.GetLastErrorUnixMs()).UTC().Format(time.RFC3339), l.resp.GetLastError())
		}
	}
	return nil
}

func (c *backupCommand) verify(ctx context.Context, arg string) error {
	if fi, err := os.Stat(arg); err == nil && fi.Mode().IsRegular() {
		return c.verifyFile(arg)
	}
	if err := backup.ValidateID(arg); err != nil {
		return &codedError{err: fmt.Errorf("%s is neither a file nor a backup id", arg), code: exitNotFound}
	}
	ls, err := c.listAll(ctx)
	if err != nil {
		return err
	}
	eps, _ := holders(ls, arg)
	if len(eps) == 0 {
		return notFoundError(arg, ls)
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	bc, err := cli.Backup(eps[0])
	if err != nil {
		return err
	}
	info, err := bc.Verify(ctx, &kvpb.BackupVerifyRequest{Id: arg})
	if err != nil {
		return backupError(fmt.Errorf("backup verify %s at %s: %w", arg, eps[0], err))
	}
	return c.printInfo(info, "")
}

func (c *backupCommand) delete(ctx context.Context, id string) error {
	if err := backup.ValidateID(id); err != nil {
		return usageErrorf("%w", err)
	}
	ls, err := c.listAll(ctx)
	if err != nil {
		return err
	}
	eps, _ := holders(ls, id)
	if len(eps) == 0 {
		return notFoundError(id, ls)
	}
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	var errs []error
	deleted := 0
	for _, ep := range eps {
		bc, err := cli.Backup(ep)
		if err == nil {
			_, err = bc.Delete(ctx, &kvpb.BackupDeleteRequest{Id: id})
		}
		switch {
		case err == nil:
			deleted++
		case grpcReason(err) == kvpb.ReasonBackupNotFound && deleted > 0:
			// A shared backup dir: another node deleted the same file.
		default:
			errs = append(errs, fmt.Errorf("backup delete %s at %s: %w", id, ep, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return backupError(err)
	}
	fmt.Fprintf(c.env.stdout, "deleted backup %s\n", id)
	return nil
}

// restoreWarning is printed before an online restore.
const restoreWarning = `WARNING: restoring replaces the whole state of the running cluster, on every
node, by the backup's. Every write acknowledged after the backup was taken
is lost. Clients keep working against the restored state once it is done.`

func (c *backupCommand) restore(ctx context.Context, arg string) error {
	cli, err := c.env.client()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// src yields the backup file; describe says what it is.
	var src io.Reader
	var size int64
	var describe string
	var manifest *backup.Manifest
	switch fi, statErr := os.Stat(arg); {
	case arg == "-":
		src, describe = c.env.stdin, "standard input"
	case statErr == nil && fi.Mode().IsRegular():
		f, err := os.Open(arg)
		if err != nil {
			return err
		}
		defer f.Close()
		m, err := backup.ReadManifest(f)
		if err != nil {
			return backupError(fmt.Errorf("%s: %w", arg, err))
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		manifest = &m
		src, size, describe = f, fi.Size(), arg
	default:
		if err := backup.ValidateID(arg); err != nil {
			return &codedError{err: fmt.Errorf("%s is neither a file nor a backup id", arg), code: exitNotFound}
		}
		ls, err := c.listAll(ctx)
		if err != nil {
			return err
		}
		eps, info := holders(ls, arg)
		if len(eps) == 0 {
			return notFoundError(arg, ls)
		}
		bc, err := cli.Backup(eps[0])
		if err != nil {
			return err
		}
		dl, err := bc.Download(ctx, &kvpb.BackupDownloadRequest{Id: arg})
		if err != nil {
			return fmt.Errorf("download backup %s from %s: %w", arg, eps[0], err)
		}
		src, size, describe = &downloadReader{stream: dl}, info.GetFileSize(), fmt.Sprintf("backup %s on %s", arg, info.GetStoredOn())
		m := backup.Manifest{ID: info.GetId(), ClusterID: info.GetClusterId(), RaftIndex: info.GetRaftIndex(),
			KeyCount: info.GetKeyCount(), Created: time.UnixMilli(info.GetCreatedUnixMs())}
		manifest = &m
	}
	summary := "restore " + describe
	if manifest != nil {
		summary = fmt.Sprintf("restore %s: backup %s of cluster %s, raft index %d, %d keys, taken %s",
			describe, manifest.ID, manifest.ClusterID, manifest.RaftIndex, manifest.KeyCount, manifest.Created.UTC().Format(time.RFC3339))
	}
	if !c.yes {
		fmt.Fprintf(c.env.stderr, "%s\n\n%s\n\n", restoreWarning, summary)
		return usageErrorf("refusing to restore without --yes")
	}
	fmt.Fprintf(c.env.stderr, "%s\n%s\n", restoreWarning, summary)

	leader, err := cli.Leader(ctx)
	if err != nil {
		return err
	}
	bc, err := cli.Backup(leader)
	if err != nil {
		return err
	}
	up, err := bc.Restore(ctx)
	if err != nil {
		return fmt.Errorf("backup restore at %s: %w", leader, err)
	}
	opts := &kvpb.BackupRestoreOptions{Force: c.force, Size: size, Source: describe}
	if err := up.Send(&kvpb.BackupRestoreRequest{Msg: &kvpb.BackupRestoreRequest_Options{Options: opts}}); err != nil {
		return c.restoreFailed(up, leader, err)
	}
	bar := newProgressBar(c.env.stderr)
	defer bar.finish()
	buf := make([]byte, 256<<10)
	var sent int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			// The message is encoded before Send returns, so buf can be
			// reused.
			if err := up.Send(&kvpb.BackupRestoreRequest{Msg: &kvpb.BackupRestoreRequest_Chunk{Chunk: buf[:n]}}); err != nil {
				return c.restoreFailed(up, leader, err)
			}
			sent += int64(n)
			bar.update("upload", sent, size)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			// Cancel, never CloseSend: the leader must see an interrupted
			// upload, not a complete one.
			cancel()
			return fmt.Errorf("read %s after %d bytes (the restore was abandoned, nothing changed): %w", describe, sent, rerr)
		}
	}
	bar.update("restore", 0, 0)
	resp, err := up.CloseAndRecv()
	bar.finish()
	if err != nil {
		return backupError(fmt.Errorf("backup restore at %s: %w", leader, err))
	}
	b := resp.GetBackup()
	if c.env.globals.output == "json" {
		return (&jsonPrinter{w: c.env.stdout}).message(resp)
	}
	fmt.Fprintf(c.env.stdout, "restored backup %s (%d keys, taken at raft index %d) into cluster %s; the cluster continues at raft index %d\n",
		b.GetId(), b.GetKeyCount(), b.GetRaftIndex(), resp.GetClusterId(), resp.GetRaftIndex())
	return nil
}

// restoreFailed reports a failed Send: the server's own error, which
// explains it, comes from CloseAndRecv.
func (c *backupCommand) restoreFailed(up kvpb.Backup_RestoreClient, leader string, sendErr error) error {
	if _, err := up.CloseAndRecv(); err != nil {
		return backupError(fmt.Errorf("backup restore at %s: %w", leader, err))
	}
	return fmt.Errorf("backup restore at %s: %w", leader, sendErr)
}

// downloadReader reads a Download stream as a byte stream.
type downloadReader struct {
	stream kvpb.Backup_DownloadClient
	buf    []byte
}

func (d *downloadReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		msg, err := d.stream.Recv()
		if err != nil {
			return 0, err // io.EOF at the end
		}
		d.buf = msg.GetData()
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}
