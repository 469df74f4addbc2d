package a2a

import (
	"bytes"
	"encoding/json"
	"strings"
)

// normalizeFast decides the common case, a JSON-RPC request forwarded
// unchanged (its params.message already has a messageId, or it has no
// message), with one validity scan and no decoding. ok is false for
// anything else, including shapes where encoding/json's rules (keys
// matched case-insensitively, the last duplicate winning, escapes,
// invalid UTF-8 replaced) could matter: Normalize then decides with the
// full decode, so both paths give the same answer.
func normalizeFast(body []byte) (method string, ok bool) {
	if !json.Valid(body) {
		return "", false
	}
	i := skipWS(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", false
	}
	var seenRPC, seenMethod, seenParams bool
	var params []byte
	ok = walkObject(body, i, func(key, v []byte) bool {
		switch string(key) {
		case "jsonrpc":
			if seenRPC {
				return false
			}
			seenRPC = true
		case "method":
			if seenMethod || !plainString(v) {
				return false
			}
			seenMethod, method = true, string(v[1:len(v)-1])
		case "params":
			if seenParams {
				return false
			}
			seenParams, params = true, v
		default:
			return !foldsTo(key, "jsonrpc", "method", "params")
		}
		return true
	})
	if !ok || !seenRPC {
		return "", false
	}
	if params == nil || !bytes.Contains(params, []byte(`"message"`)) {
		return method, true
	}
	if params[0] != '{' {
		return "", false
	}
	var msg []byte
	if !walkObject(params, 0, func(key, v []byte) bool {
		switch {
		case string(key) == "message":
			if msg != nil {
				return false
			}
			msg = v
		case foldsTo(key, "message"):
			return false
		}
		return true
	}) || msg == nil || msg[0] != '{' {
		return "", false
	}
	var haveID bool
	if !walkObject(msg, 0, func(key, v []byte) bool {
		switch {
		case string(key) == "messageId":
			if haveID || !plainString(v) || len(v) == 2 {
				return false
			}
			haveID = true
		case foldsTo(key, "messageId"):
			return false
		}
		return true
	}) || !haveID {
		return "", false
	}
	return method, true
}

// walkObject calls fn with each key and raw value of the valid JSON object
// starting at b[i]. It stops with false when fn does, or when a key is not
// plain ASCII without escapes (encoding/json's folding rules then apply).
func walkObject(b []byte, i int, fn func(key, v []byte) bool) bool {
	i = skipWS(b, i+1)
	for i < len(b) && b[i] != '}' {
		end := skipValue(b, i)
		k := b[i:end]
		if !plainString(k) {
			return false
		}
		i = skipWS(b, end)
		i = skipWS(b, i+1) // ':'
		vend := skipValue(b, i)
		if !fn(k[1:len(k)-1], b[i:vend]) {
			return false
		}
		i = skipWS(b, vend)
		if i < len(b) && b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	return true
}

// plainString reports a JSON string of printable ASCII without escapes.
func plainString(v []byte) bool {
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	for _, c := range v[1 : len(v)-1] {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// foldsTo reports key matching one of names case-insensitively, which
// encoding/json would treat as that field.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if len(key) == len(n) && bytes.EqualFold(key, []byte(n)) {
			return true
		}
	}
	return false
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the end of the valid JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
			i++
		}
		return i
	}
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}
