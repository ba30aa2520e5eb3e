package client

import (
	"context"
	"io"

	"google.golang.org/grpc"

	"github.com/raftkv/raftkv/api/kvpb"
)

// ExportStream is an open KV.Export stream: every page comes from one
// point-in-time cut of the answering node, at Revision.
type ExportStream struct {
	rev     int64
	pending *kvpb.ExportResponse // the first page, until Recv returns it
	stream  kvpb.KV_ExportClient
	cancel  context.CancelFunc
}

// Export opens an export of a key range (see KV.Export). Opening waits for
// the first page, so an unreachable or failing node is retried on the next
// endpoint like any read; after that the stream is bound to one node, and
// an error ends it. The caller must call Close (reading to io.EOF is not
// enough to release the stream's context).
func (c *Client) Export(ctx context.Context, req *kvpb.ExportRequest) (*ExportStream, error) {
	return invoke(ctx, c, "export", false, func(ctx context.Context, cc *grpc.ClientConn) (*ExportStream, error) {
		sctx, cancel := context.WithCancel(ctx)
		s, err := kvpb.NewKVClient(cc).Export(sctx, req)
		if err != nil {
			cancel()
			return nil, err
		}
		first, err := s.Recv()
		if err != nil {
			cancel()
			return nil, err
		}
		return &ExportStream{rev: first.GetHeader().GetRevision(), pending: first, stream: s, cancel: cancel}, nil
	})
}

// Revision is the applied index of the cut the stream reads.
func (e *ExportStream) Revision() int64 { return e.rev }

// Recv returns the next page, or io.EOF after the last one.
func (e *ExportStream) Recv() (*kvpb.ExportResponse, error) {
	if p := e.pending; p != nil {
		e.pending = nil
		return p, nil
	}
	resp, err := e.stream.Recv()
	if err != nil && err != io.EOF {
		return nil, err
	}
	return resp, err
}

// Close ends the stream; the server then releases its cut. It is safe to
// call more than once.
func (e *ExportStream) Close() { e.cancel() }
