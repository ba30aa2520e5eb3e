package transport

import (
	"context"

	"github.com/raftkv/raftkv/api/kvpb"
)

// Exporter serves KV.Export. Package node implements it; a KV without it
// answers Unimplemented. Export is called on the stream's handler
// goroutine, with the stream's context; it calls send once per page, in
// order, and must stop (and release what it holds) as soon as send fails or
// ctx is done.
type Exporter interface {
	Export(ctx context.Context, req *kvpb.ExportRequest, send func(*kvpb.ExportResponse) error) error
}

func (h kvServer) Export(req *kvpb.ExportRequest, stream kvpb.KV_ExportServer) error {
	exp, ok := h.s.kv.(Exporter)
	if !ok {
		return h.UnimplementedKVServer.Export(req, stream)
	}
	if err := h.s.cfg.Limits.ValidateRange(&kvpb.RangeRequest{Key: req.GetKey(), RangeEnd: req.GetRangeEnd(), Prefix: req.GetPrefix()}); err != nil {
		return ToStatus(err)
	}
	return ToStatus(exp.Export(stream.Context(), req, stream.Send))
}
