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
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return nil, "", ErrInvalidJSON
	}
	if m, ok := top["method"]; ok {
		if json.Unmarshal(m, &method) != nil {
			method = ""
		}
	}
	if _, ok := top["jsonrpc"]; ok {
		params, changed := fillMessageID(top["params"])
		if !changed {
			return body, method, nil
		}
		top["params"] = params
		out, err := json.Marshal(top)
		return out, method, err
	}
	params, ok := top["params"]
	if !ok {
		rest := make(map[string]json.RawMessage, len(top))
		for k, v := range top {
			if k != "method" && k != "id" {
				rest[k] = v
			}
		}
		if params, err = json.Marshal(rest); err != nil {
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
