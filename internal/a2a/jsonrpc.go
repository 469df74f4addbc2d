package a2a

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/google/uuid"
)

// ErrInvalidJSON means a request body is not a JSON object.
var ErrInvalidJSON = errors.New("request body must be a JSON object")

// DefaultMethod is the A2A method a bare body is sent as.
const DefaultMethod = "message/send"

// Normalize turns a proxy request body into the JSON-RPC 2.0 request sent
// to the agent (§6) and returns it with its method:
//
//   - a body with "jsonrpc" is forwarded as it is, except that
//     params.message.messageId is filled in when the message lacks one;
//   - a body without it is wrapped as {"jsonrpc":"2.0","id":<uuid>,
//     "method":<its method or message/send>,"params":<its params, or the
//     body's other fields>}, with the same messageId fill-in.
//
// The body is returned unchanged (same bytes) when nothing had to change.
func Normalize(body []byte) (out []byte, method string, err error) {
	if m, ok := normalizeFast(body); ok {
		return body, m, nil
	}
	return normalizeDecode(body)
}

// normalizeDecode is Normalize by decoding: small struct decodes decide;
// a map is built only when something must change.
func normalizeDecode(body []byte) (out []byte, method string, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, "", ErrInvalidJSON
	}
	var probe struct {
		JSONRPC json.RawMessage `json:"jsonrpc"`
		Method  json.RawMessage `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, "", ErrInvalidJSON
	}
	if len(probe.Method) > 0 && json.Unmarshal(probe.Method, &method) != nil {
		method = ""
	}
	if probe.JSONRPC != nil {
		params, changed := fillMessageID(probe.Params)
		if !changed {
			return body, method, nil
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, "", ErrInvalidJSON
		}
		top["params"] = params
		out, err := json.Marshal(top)
		return out, method, err
	}
	params := probe.Params
	if params == nil {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(body, &top); err != nil {
			return nil, "", ErrInvalidJSON
		}
		delete(top, "method")
		delete(top, "id")
		if params, err = json.Marshal(top); err != nil {
			return nil, "", err
		}
	}
	params, _ = fillMessageID(params)
	if method == "" {
		method = DefaultMethod
	}
	out, err = json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      string          `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}{"2.0", uuid.NewString(), method, params})
	return out, method, err
}

// fillMessageID sets params.message.messageId when params.message is an
// object without a non-empty one.
func fillMessageID(params json.RawMessage) (json.RawMessage, bool) {
	if len(params) == 0 || !bytes.Contains(params, []byte(`"message"`)) {
		return params, false
	}
	// Cheap check first: a message that has a non-empty messageId.
	var probe struct {
		Message struct {
			MessageID json.RawMessage `json:"messageId"`
		} `json:"message"`
	}
	if json.Unmarshal(params, &probe) != nil {
		return params, false // params or message not an object: leave it
	}
	var have string
	if json.Unmarshal(probe.Message.MessageID, &have) == nil && have != "" {
		return params, false
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return params, false
	}
	var msg map[string]json.RawMessage
	if json.Unmarshal(p["message"], &msg) != nil || msg == nil {
		return params, false
	}
	var id string
	if raw, ok := msg["messageId"]; ok && json.Unmarshal(raw, &id) == nil && id != "" {
		return params, false
	}
	msg["messageId"], _ = json.Marshal(uuid.NewString())
	m, err := json.Marshal(msg)
	if err != nil {
		return params, false
	}
	p["message"] = m
	out, err := json.Marshal(p)
	if err != nil {
		return params, false
	}
	return out, true
}
