package node

import (
	"context"
	"fmt"

	"github.com/raftkv/raftkv/api/kvpb"
)

const (
	// exportPageKeys is the default and largest page of an Export stream.
	exportPageKeys = 1000
	// exportPageBytes caps the keys and values of one page, well below the
	// client's default 4 MiB receive limit (a single larger value still
	// goes out alone).
	exportPageBytes = 2 << 20
)

// Export implements transport.Exporter: a linearizable read barrier, then
// the whole range from one store read transaction, in pages. The first
// page's header carries the applied index of that cut. The read
// transaction ends when the stream does, including when the client goes
// away (send fails or ctx is cancelled).
func (n *Node) Export(ctx context.Context, req *kvpb.ExportRequest, send func(*kvpb.ExportResponse) error) error {
	if err := n.readBarrier(ctx, kvpb.Consistency_CONSISTENCY_LINEARIZABLE); err != nil {
		return err
	}
	cut, err := n.fsm.BeginCut()
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer cut.Close()

	pageKeys := int(req.GetPageSize())
	if pageKeys <= 0 || pageKeys > exportPageKeys {
		pageKeys = exportPageKeys
	}
	start := req.GetKey()
	end := rangeEnd(req.GetKey(), req.GetRangeEnd(), req.GetPrefix())
	switch {
	case len(end) == 0: // one key: [key, key\x00)
		end = append(append([]byte(nil), start...), 0)
	case len(end) == 1 && end[0] == 0: // to the end of the keyspace
		end = nil
	}
	header := n.header(cut.Index())
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		kvs, next, err := cut.Page(start, end, pageKeys, exportPageBytes)
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		if len(kvs) > 0 || header != nil {
			if err := send(&kvpb.ExportResponse{Header: header, Kvs: kvsToAPI(kvs)}); err != nil {
				return fmt.Errorf("export: send: %w", err)
			}
			header = nil
		}
		if next == nil {
			return nil
		}
		start = next
	}
}
