package a2a

import (
	"bytes"
	"testing"
)

// normalizeCases are bodies where the fast path and the decode could
// disagree if the fast path were careless.
var normalizeCases = []string{
	`{"jsonrpc":"2.0","id":"1","method":"message/send","params":{"message":{"role":"user","messageId":"m1","parts":[{"kind":"text","text":"ping"}]}}}`,
	` { "jsonrpc" : "2.0" , "method" : "tasks/get" , "params" : { "id" : "t1" } } `,
	`{"jsonrpc":"2.0","method":"message/send"}`,
	`{"jsonrpc":null,"method":"x"}`,
	`{"jsonrpc":"2.0","method":"a","method":"b"}`,
	`{"jsonrpc":"2.0","METHOD":"b","method":"a"}`,
	`{"jsonrpc":"2.0","method":"a","Method":"b"}`,
	`{"JSONRPC":"2.0","method":"a"}`,
	`{"jsonrpc":"2.0","method":"a\u0062"}`,
	`{"jsonrpc":"2.0","method":"caf` + "\xc3\xa9" + `"}`,
	`{"jsonrpc":"2.0","method":"bad` + "\xff" + `"}`,
	`{"jsonrpc":"2.0","method":42}`,
	`{"jsonrpc":"2.0","method":"m","params":[1,"message"]}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":"text"}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":null}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"messageId":""}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"messageId":7}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"messageId":"a","messageId":""}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"MessageID":"a"}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"Message":{"messageId":"a"},"message":{}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"messageId":"a"},"message":{}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"other":"\"message\"","message":{"messageId":"x\"y"}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"parts":[{"messageId":""}],"messageId":"k"}}}`,
	`{"jsonrpc":"2.0","method":"m","params":{"x":{"message":{}}}}`,
	`{"jsonrpc":"2.0","method":"m","params":"message"}`,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"messageId":"a"}}}` + "\n",
	`{"jsonrpc":"2.0","method":"m","params":{}} x`,
	`{"jsonrpc":"2.0",}`,
	`{"message":{"messageId":"a"}}`,
	`{}`,
	`[]`,
	`"str"`,
	``,
	`{"jsonrpc":"2.0","method":"m","params":{"message":{"messageId":"a"},"k":[1,2,{"a":"}"}]}}`,
}

// TestNormalizeFastAgreesWithDecode: whenever the fast path answers, the
// full decode gives the same body and method.
func TestNormalizeFastAgreesWithDecode(t *testing.T) {
	for _, c := range normalizeCases {
		checkFastAgrees(t, []byte(c))
	}
	// The common shapes do take the fast path.
	for _, c := range normalizeCases[:3] {
		if _, ok := normalizeFast([]byte(c)); !ok {
			t.Errorf("fast path not taken for %s", c)
		}
	}
}

func checkFastAgrees(t *testing.T, body []byte) {
	t.Helper()
	m, ok := normalizeFast(body)
	if !ok {
		return
	}
	out, dm, err := normalizeDecode(body)
	if err != nil || !bytes.Equal(out, body) || dm != m {
		t.Errorf("body %q: fast gives (unchanged, %q); decode gives (%q, %q, %v)", body, m, out, dm, err)
	}
}

func FuzzNormalizeFast(f *testing.F) {
	for _, c := range normalizeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkFastAgrees(t, body) })
}
