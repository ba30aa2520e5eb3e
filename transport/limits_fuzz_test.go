package transport

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/raftkv/raftkv/api/kvpb"
)

// FuzzValidateRequest decodes arbitrary bytes as a request of the kind
// selected by kind and validates it: validation must never panic, must
// reject only with ErrInvalidArgument (which ToStatus maps to
// InvalidArgument), and a request it accepts must really be within the
// limits. The committed corpus is in testdata/fuzz/FuzzValidateRequest;
// `make fuzz` runs it for longer.
func FuzzValidateRequest(f *testing.F) {
	seeds := []proto.Message{
		&kvpb.PutRequest{Key: []byte("k"), Value: []byte("v")},
		&kvpb.GetRequest{Key: []byte("k"), Consistency: kvpb.Consistency_CONSISTENCY_SERIALIZABLE},
		&kvpb.DeleteRequest{Key: []byte("a"), RangeEnd: []byte("b")},
		&kvpb.RangeRequest{Key: []byte("p"), Prefix: true, Limit: 3},
		&kvpb.TxnRequest{
			Compare: []*kvpb.Compare{{Key: []byte("k"), Result: kvpb.Compare_EQUAL, Target: kvpb.Compare_VALUE, TargetUnion: &kvpb.Compare_Value{Value: []byte("v")}}},
			Success: []*kvpb.RequestOp{{Request: &kvpb.RequestOp_RequestPut{RequestPut: &kvpb.PutRequest{Key: []byte("k"), Value: []byte("w")}}}},
			Failure: []*kvpb.RequestOp{{Request: &kvpb.RequestOp_RequestRange{RequestRange: &kvpb.RangeRequest{Key: []byte("k")}}}},
		},
	}
	for i, m := range seeds {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(i), b)
	}
	// Tiny limits, so the fuzzer reaches the boundaries with small inputs.
	l := Limits{MaxKeyBytes: 8, MaxValueBytes: 16, MaxRequestBytes: 64, MaxTxnOps: 3}
	f.Fuzz(func(t *testing.T, kind byte, data []byte) {
		var err error
		switch kind % 5 {
		case 0:
			var r kvpb.PutRequest
			if proto.Unmarshal(data, &r) != nil {
				return
			}
			if err = l.ValidatePut(&r); err == nil {
				checkPut(t, l, &r)
			}
		case 1:
			var r kvpb.GetRequest
			if proto.Unmarshal(data, &r) != nil {
				return
			}
			if err = l.ValidateGet(&r); err == nil && (len(r.GetKey()) == 0 || len(r.GetKey()) > l.MaxKeyBytes) {
				t.Fatalf("ValidateGet accepted key of %d bytes", len(r.GetKey()))
			}
		case 2:
			var r kvpb.DeleteRequest
			if proto.Unmarshal(data, &r) != nil {
				return
			}
			if err = l.ValidateDelete(&r); err == nil && (len(r.GetKey()) == 0 || r.GetPrefix() && len(r.GetRangeEnd()) > 0) {
				t.Fatalf("ValidateDelete accepted %v", &r)
			}
		case 3:
			var r kvpb.RangeRequest
			if proto.Unmarshal(data, &r) != nil {
				return
			}
			if err = l.ValidateRange(&r); err == nil && (r.GetLimit() < 0 || len(r.GetKey()) > l.MaxKeyBytes) {
				t.Fatalf("ValidateRange accepted %v", &r)
			}
		case 4:
			var r kvpb.TxnRequest
			if proto.Unmarshal(data, &r) != nil {
				return
			}
			if err = l.ValidateTxn(&r); err == nil {
				checkTxn(t, l, &r)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("validation error %v does not wrap ErrInvalidArgument", err)
			}
			if st, _ := status.FromError(ToStatus(err)); st.Code() != codes.InvalidArgument {
				t.Fatalf("ToStatus(%v) = %v, want InvalidArgument", err, st.Code())
			}
		}
	})
}

func checkPut(t *testing.T, l Limits, r *kvpb.PutRequest) {
	t.Helper()
	if len(r.GetKey()) == 0 || len(r.GetKey()) > l.MaxKeyBytes || len(r.GetValue()) > l.MaxValueBytes {
		t.Fatalf("ValidatePut accepted key %d bytes, value %d bytes", len(r.GetKey()), len(r.GetValue()))
	}
}

func checkTxn(t *testing.T, l Limits, r *kvpb.TxnRequest) {
	t.Helper()
	if len(r.GetCompare()) > l.MaxTxnOps || len(r.GetSuccess()) > l.MaxTxnOps || len(r.GetFailure()) > l.MaxTxnOps {
		t.Fatalf("ValidateTxn accepted %d compares, %d/%d ops", len(r.GetCompare()), len(r.GetSuccess()), len(r.GetFailure()))
	}
	for _, c := range r.GetCompare() {
		if len(c.GetKey()) == 0 || c.GetTargetUnion() == nil || c.GetResult() == kvpb.Compare_RESULT_UNKNOWN {
			t.Fatalf("ValidateTxn accepted compare %v", c)
		}
	}
	for _, op := range append(r.GetSuccess(), r.GetFailure()...) {
		if op.GetRequest() == nil {
			t.Fatal("ValidateTxn accepted an empty op")
		}
		if p := op.GetRequestPut(); p != nil {
			checkPut(t, l, p)
		}
	}
}
