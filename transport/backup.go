package transport

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/raftkv/raftkv/api/kvpb"
)

var (
	// ErrBackupInvalid marks a backup that is not a raftkv backup, is
	// corrupt or truncated, or has an unsupported format version.
	ErrBackupInvalid = errors.New("invalid backup")
	// ErrClusterMismatch marks a refused restore of another cluster's
	// backup.
	ErrClusterMismatch = errors.New("restore refused")
	// ErrBackupNotFound marks a backup id that names no stored backup.
	ErrBackupNotFound = errors.New("backup not found")
)

// Backups serves the Backup service. Package node implements it. Methods
// are called from gRPC handler goroutines, concurrently with each other and
// with every other service; ctx ends when the caller goes away.
type Backups interface {
	// CreateBackup takes a backup and reports through send: progress
	// messages, the file's chunks when req.Download is set, and the final
	// info last. An error from send (the caller left) must abort it.
	CreateBackup(ctx context.Context, req *kvpb.BackupCreateRequest, send func(*kvpb.BackupCreateResponse) error) error
	// ListBackups lists this node's stored backups.
	ListBackups(ctx context.Context) (*kvpb.BackupListResponse, error)
	// VerifyBackup reads a stored backup completely and checks it.
	VerifyBackup(ctx context.Context, id string) (*kvpb.BackupInfo, error)
	// DeleteBackup deletes a stored backup.
	DeleteBackup(ctx context.Context, id string) error
	// DownloadBackup sends a stored backup through send, the info with the
	// first chunk.
	DownloadBackup(ctx context.Context, id string, send func(*kvpb.BackupChunk) error) error
	// RestoreBackup restores the backup file whose bytes recv returns, in
	// order, until io.EOF. Any other error from recv means the upload was
	// interrupted: nothing may change then.
	RestoreBackup(ctx context.Context, opts *kvpb.BackupRestoreOptions, recv func() ([]byte, error)) (*kvpb.BackupRestoreResponse, error)
}

// RegisterBackups registers the Backup service; call it before Serve.
func (s *Server) RegisterBackups(b Backups) {
	kvpb.RegisterBackupServer(s.grpc, backupServer{b: b})
}

// backupStatus is ToStatus with the backup errors added.
func backupStatus(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrBackupInvalid):
		return withReason(codes.InvalidArgument, err, kvpb.ReasonBackupInvalid, nil)
	case errors.Is(err, ErrClusterMismatch):
		return withReason(codes.FailedPrecondition, err, kvpb.ReasonClusterMismatch, nil)
	case errors.Is(err, ErrBackupNotFound):
		return withReason(codes.NotFound, err, kvpb.ReasonBackupNotFound, nil)
	}
	return ToStatus(err)
}

type backupServer struct {
	kvpb.UnimplementedBackupServer
	b Backups
}

func (h backupServer) Create(req *kvpb.BackupCreateRequest, stream kvpb.Backup_CreateServer) error {
	return backupStatus(h.b.CreateBackup(stream.Context(), req, stream.Send))
}

func (h backupServer) List(ctx context.Context, _ *kvpb.BackupListRequest) (*kvpb.BackupListResponse, error) {
	resp, err := h.b.ListBackups(ctx)
	return resp, backupStatus(err)
}

func (h backupServer) Verify(ctx context.Context, req *kvpb.BackupVerifyRequest) (*kvpb.BackupInfo, error) {
	if req.GetId() == "" {
		return nil, ToStatus(fmtInvalid("backup id is required"))
	}
	resp, err := h.b.VerifyBackup(ctx, req.GetId())
	return resp, backupStatus(err)
}

func (h backupServer) Delete(ctx context.Context, req *kvpb.BackupDeleteRequest) (*kvpb.BackupDeleteResponse, error) {
	if req.GetId() == "" {
		return nil, ToStatus(fmtInvalid("backup id is required"))
	}
	if err := h.b.DeleteBackup(ctx, req.GetId()); err != nil {
		return nil, backupStatus(err)
	}
	return &kvpb.BackupDeleteResponse{}, nil
}

func (h backupServer) Download(req *kvpb.BackupDownloadRequest, stream kvpb.Backup_DownloadServer) error {
	if req.GetId() == "" {
		return ToStatus(fmtInvalid("backup id is required"))
	}
	return backupStatus(h.b.DownloadBackup(stream.Context(), req.GetId(), stream.Send))
}

func (h backupServer) Restore(stream kvpb.Backup_RestoreServer) error {
	first, err := stream.Recv()
	if err != nil {
		return backupStatus(fmt.Errorf("receive restore options: %w", err))
	}
	opts := first.GetOptions()
	if opts == nil {
		return ToStatus(fmtInvalid("the first restore message must carry the options"))
	}
	recv := func() ([]byte, error) {
		msg, err := stream.Recv()
		if err != nil {
			return nil, err // io.EOF: the upload is complete
		}
		if msg.GetOptions() != nil {
			return nil, fmt.Errorf("%w: restore options sent twice", ErrInvalidArgument)
		}
		return msg.GetChunk(), nil
	}
	resp, err := h.b.RestoreBackup(stream.Context(), opts, recv)
	if err != nil {
		return backupStatus(err)
	}
	return stream.SendAndClose(resp)
}
