package events

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"
)

// encoding holds an event's wire forms, built once on first use.
type encoding struct {
	sseOnce  sync.Once
	sse      []byte
	jsonOnce sync.Once
	json     []byte
}

// SSE returns the event as one Server-Sent Events frame carrying the AG-UI
// envelope of §10:
//
//	id: <id>                      (stored events only)
//	data: {"type":"<EVENT>","timestamp":<unix ms>,"data":<payload>}
//	<blank line>
//
// The result is shared between subscribers and must not be modified.
func (e Event) SSE() []byte {
	if e.enc == nil {
		return e.buildSSE()
	}
	e.enc.sseOnce.Do(func() { e.enc.sse = e.buildSSE() })
	return e.enc.sse
}

// JSON returns the §10 envelope {event, workspace_id, timestamp, payload}
// (plus id for stored events) as sent on the WebSocket. Shared; read only.
func (e Event) JSON() []byte {
	if e.enc == nil {
		return e.buildJSON()
	}
	e.enc.jsonOnce.Do(func() { e.enc.json = e.buildJSON() })
	return e.enc.json
}

func (e Event) buildJSON() []byte {
	data, err := json.Marshal(e)
	if err != nil {
		// Only an invalid payload can fail; send the envelope without it.
		e.Payload = json.RawMessage(`{}`)
		data, _ = json.Marshal(e)
	}
	return data
}

func (e Event) buildSSE() []byte {
	payload := []byte(e.Payload)
	if len(payload) == 0 {
		payload = []byte(`{}`)
	}
	// A data line ends at a newline, so the payload must be one line.
	if bytes.ContainsAny(payload, "\r\n") {
		var buf bytes.Buffer
		if err := json.Compact(&buf, payload); err == nil {
			payload = buf.Bytes()
		} else {
			payload = []byte(`{}`)
		}
	}
	typ, _ := json.Marshal(e.Type)
	out := make([]byte, 0, len(payload)+len(typ)+64)
	if e.ID > 0 {
		out = append(out, "id: "...)
		out = strconv.AppendInt(out, e.ID, 10)
		out = append(out, '\n')
	}
	out = append(out, `data: {"type":`...)
	out = append(out, typ...)
	out = append(out, `,"timestamp":`...)
	out = strconv.AppendInt(out, e.Timestamp.UnixMilli(), 10)
	out = append(out, `,"data":`...)
	out = append(out, payload...)
	out = append(out, "}\n\n"...)
	return out
}
