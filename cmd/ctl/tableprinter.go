package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/status"

	"github.com/raftkv/raftkv/api/kvpb"
)

// tablePrinter prints human-readable, column-aligned text.
type tablePrinter struct{ w io.Writer }

// table returns a column writer; the caller must Flush it.
func (p *tablePrinter) table() *tabwriter.Writer {
	return tabwriter.NewWriter(p.w, 0, 8, 2, ' ', 0)
}

func (p *tablePrinter) kvs(kvs []*kvpb.KeyValue, keysOnly bool) error {
	tw := p.table()
	// The TTL column appears only when some key has an expiry.
	ttl := slices.ContainsFunc(kvs, func(kv *kvpb.KeyValue) bool { return kv.GetExpireAtUnixMs() != 0 })
	switch {
	case keysOnly:
		fmt.Fprintln(tw, "KEY")
	case ttl:
		fmt.Fprintln(tw, "KEY\tVALUE\tVERSION\tCREATE_REV\tMOD_REV\tTTL")
	default:
		fmt.Fprintln(tw, "KEY\tVALUE\tVERSION\tCREATE_REV\tMOD_REV")
	}
	now := time.Now()
	for _, kv := range kvs {
		if keysOnly {
			fmt.Fprintln(tw, printable(kv.GetKey()))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d", printable(kv.GetKey()), printable(kv.GetValue()),
			kv.GetVersion(), kv.GetCreateRevision(), kv.GetModRevision())
		if ttl {
			fmt.Fprintf(tw, "\t%s", remainingTTL(kv.GetExpireAtUnixMs(), now))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// remainingTTL renders the time left before an expiry: "-" for none,
// "expired" once it passed (the key is visible until the leader's expiry
// delete commits, usually within a second).
func remainingTTL(expireAtMs int64, now time.Time) string {
	if expireAtMs == 0 {
		return "-"
	}
	left := time.UnixMilli(expireAtMs).Sub(now)
	if left <= 0 {
		return "expired"
	}
	if left >= time.Second {
		left = left.Round(100 * time.Millisecond)
	}
	return left.String()
}

func (p *tablePrinter) put(r *kvpb.PutResponse) error {
	fmt.Fprintf(p.w, "OK (revision %d)\n", r.GetHeader().GetRevision())
	if r.GetPrevKv() != nil {
		fmt.Fprintln(p.w, "previous:")
		return p.kvs([]*kvpb.KeyValue{r.GetPrevKv()}, false)
	}
	return nil
}

func (p *tablePrinter) get(r *kvpb.GetResponse) error {
	if !r.GetFound() {
		return nil // main reports the missing key on stderr
	}
	return p.kvs([]*kvpb.KeyValue{r.GetKv()}, false)
}

func (p *tablePrinter) del(r *kvpb.DeleteResponse) error {
	fmt.Fprintln(p.w, r.GetDeleted())
	if len(r.GetPrevKvs()) > 0 {
		return p.kvs(r.GetPrevKvs(), false)
	}
	return nil
}

func (p *tablePrinter) scan(r *kvpb.RangeResponse, v scanView) error {
	if v.countOnly {
		_, err := fmt.Fprintln(p.w, r.GetCount())
		return err
	}
	if err := p.kvs(r.GetKvs(), v.keysOnly); err != nil {
		return err
	}
	if r.GetMore() {
		total := "more"
		if c := r.GetCount(); c > int64(len(r.GetKvs())) {
			total = strconv.FormatInt(c, 10)
		}
		_, err := fmt.Fprintf(p.w, "(%d of %s keys shown; raise --limit to see more)\n", len(r.GetKvs()), total)
		return err
	}
	return nil
}

func (p *tablePrinter) txn(r *kvpb.TxnResponse) error {
	outcome := "FAILED"
	if r.GetSucceeded() {
		outcome = "SUCCEEDED"
	}
	fmt.Fprintf(p.w, "%s (revision %d)\n", outcome, r.GetHeader().GetRevision())
	for _, op := range r.GetResponses() {
		switch o := op.GetResponse().(type) {
		case *kvpb.ResponseOp_ResponseRange:
			if len(o.ResponseRange.GetKvs()) == 0 {
				fmt.Fprintln(p.w, "(no such key)")
				continue
			}
			if err := p.kvs(o.ResponseRange.GetKvs(), false); err != nil {
				return err
			}
		case *kvpb.ResponseOp_ResponseDelete:
			fmt.Fprintf(p.w, "%d deleted\n", o.ResponseDelete.GetDeleted())
		case *kvpb.ResponseOp_ResponsePut:
			// The revision is in the header line.
		}
	}
	return nil
}

func (p *tablePrinter) status(rows []endpointStatus) error {
	tw := p.table()
	fmt.Fprintln(tw, "ENDPOINT\tID\tSTATE\tLEADER\tTERM\tCOMMIT\tAPPLIED\tSTORE_SIZE\tKEYS\tERROR")
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t\t\t\t\t\t\t\t\t%s\n", r.endpoint, errorText(r.err))
			continue
		}
		s := r.resp
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t\n", r.endpoint, s.GetNodeId(), s.GetRaftState(),
			s.GetLeaderId(), s.GetTerm(), s.GetCommitIndex(), s.GetAppliedIndex(),
			byteSize(s.GetStoreSizeBytes()), s.GetKeyCount())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return p.cacheStatus(rows)
}

func (p *tablePrinter) hash(rows []endpointHash) error {
	tw := p.table()
	fmt.Fprintln(tw, "ENDPOINT\tID\tAPPLIED\tKEYS\tSHA256\tERROR")
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t\t\t\t\t%s\n", r.endpoint, errorText(r.err))
			continue
		}
		h := r.resp
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%x\t\n", r.endpoint, h.GetNodeId(), h.GetAppliedIndex(), h.GetKeyCount(), h.GetSha256())
	}
	return tw.Flush()
}

// byteSize formats n bytes with a binary unit: 512 B, 1.5 KiB, 20.0 MiB.
func byteSize(n int64) string {
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

// errorText shortens a gRPC error for a table cell to its code and the
// server's message, dropping the wrapping that repeats the endpoint.
func errorText(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		st := se.GRPCStatus()
		return st.Code().String() + ": " + st.Message()
	}
	return err.Error()
}
