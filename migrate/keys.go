package migrate

import (
	"strconv"
	"unicode"
	"unicode/utf8"
)

// prefixEnd returns the smallest key greater than every key starting with
// prefix, or nil when there is none (prefix empty or all 0xff): then the
// range has no upper bound.
func prefixEnd(prefix []byte) []byte {
	end := make([]byte, len(prefix))
	copy(end, prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// keyAfter returns the smallest key greater than k.
func keyAfter(k []byte) []byte {
	out := make([]byte, len(k)+1)
	copy(out, k)
	return out
}

// KeyString renders a key for messages: as it is when it is printable
// UTF-8, else quoted with Go escapes, so non-UTF-8 keys stay readable and
// unambiguous.
func KeyString(k []byte) string {
	if len(k) == 0 || k[0] == '"' || !utf8.Valid(k) {
		return strconv.Quote(string(k))
	}
	for _, r := range string(k) {
		if !unicode.IsPrint(r) {
			return strconv.Quote(string(k))
		}
	}
	return string(k)
}
