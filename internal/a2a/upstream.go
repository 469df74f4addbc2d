package a2a

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"
)

// ErrAnswerTooLarge is returned when an agent's answer exceeds the cap
// given to Upstream.Post.
var ErrAnswerTooLarge = errors.New("agent answer exceeds the size limit")

// Target is a parsed agent URL, ready to be called many times.
type Target struct {
	TLS        bool   // https: the call goes through the fallback client
	Raw        string // the URL as stored
	Addr       string // host:port to dial
	Host       string // Host header
	RequestURI string // path and query
}

// ParseTarget parses an http(s) agent URL. It checks the shape only; the
// policy is applied by Policy.CheckURL and, on the resolved address, by
// the dialer.
func ParseTarget(raw string) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return Target{}, fmt.Errorf("%w: must be an http(s) URL with a host", ErrRefusedAddress)
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return Target{TLS: u.Scheme == "https", Raw: raw, Addr: net.JoinHostPort(u.Hostname(), port),
		Host: u.Host, RequestURI: u.RequestURI()}, nil
}

// Answer is an agent's answer: status, content type and the whole body.
type Answer struct {
	Status      int
	ContentType string
	Body        []byte
}

// Upstream calls agents. Plain-http calls run entirely on the calling
// goroutine over a pool of idle keep-alive connections per host:port:
// net/http's Transport hands every call between a reader and a writer
// goroutine per connection, which costs more than the call itself for a
// fast agent on the same host. Connections are dialed with Policy.Dialer,
// so the agent-URL policy is enforced on the resolved address of every new
// connection. https calls go through Fallback.
//
// Upstream is safe for concurrent use. The zero value is not usable: build
// it with NewUpstream.
type Upstream struct {
	dialer      *net.Dialer
	fallback    *http.Client
	maxIdle     int // per host:port
	idleTimeout time.Duration
	now         func() time.Time

	mu     sync.Mutex
	idle   map[string][]*upConn // LIFO: the most recently used last
	sweep  *time.Timer
	closed bool
}

// UpstreamOptions tunes an Upstream; zero fields take the defaults.
type UpstreamOptions struct {
	MaxIdlePerHost int           // default 64
	IdleTimeout    time.Duration // default 90 s
}

// NewUpstream returns a client that dials under p and uses fallback for
// https agents. The fallback must not follow redirects.
func NewUpstream(p Policy, fallback *http.Client, o UpstreamOptions) *Upstream {
	if o.MaxIdlePerHost <= 0 {
		o.MaxIdlePerHost = 64
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 90 * time.Second
	}
	return &Upstream{dialer: p.Dialer(), fallback: fallback, maxIdle: o.MaxIdlePerHost,
		idleTimeout: o.IdleTimeout, now: time.Now, idle: map[string][]*upConn{}}
}

// upConn is one agent connection with its buffered reader.
type upConn struct {
	net.Conn
	br     *bufio.Reader
	idleAt time.Time
}

// Post sends body to the agent at t with the given headers (Content-Length
// and Host are set here) and returns its answer, read whole, at most max
// bytes (ErrAnswerTooLarge beyond). ctx bounds the whole call: its
// deadline becomes the connection's, and its end closes the connection.
// Redirects are answers, never followed.
func (u *Upstream) Post(ctx context.Context, t Target, header http.Header, body []byte, max int64) (*Answer, error) {
	if t.TLS {
		return u.postFallback(ctx, t, header, body, max)
	}
	head, err := requestHead(t, header, len(body))
	if err != nil {
		return nil, err
	}
	// get never hands out a pooled connection the agent has already
	// closed, so a call is sent exactly once: a failure after the request
	// was written is the agent's (it may have acted on the call), and a
	// JSON-RPC message must not be delivered twice.
	pc := u.get(t.Addr)
	if pc == nil {
		c, err := u.dialer.DialContext(ctx, "tcp", t.Addr)
		if err != nil {
			return nil, err
		}
		pc = &upConn{Conn: c, br: bufio.NewReaderSize(c, 4096)}
	}
	ans, keep, err := u.roundTrip(ctx, pc, head, body, max)
	if err != nil {
		pc.Close()
		return nil, err
	}
	if keep {
		u.put(t.Addr, pc)
	} else {
		pc.Close()
	}
	return ans, nil
}

// roundTrip runs one exchange on pc. keep says pc may be pooled again.
func (u *Upstream) roundTrip(ctx context.Context, pc *upConn, head, body []byte, max int64) (ans *Answer, keep bool, err error) {
	deadline, hasDeadline := ctx.Deadline()
	if err := pc.SetDeadline(deadline); err != nil { // zero: none
		return nil, false, err
	}
	// The caller going away (or the deadline) closes the connection, which
	// unblocks any read or write at once.
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer func() {
		if !stop() {
			keep = false // closed under us: never pool it
		}
		if err != nil && ctx.Err() == nil && hasDeadline && isTimeout(err) && !u.now().Before(deadline) {
			// The connection's deadline fired a hair before the context's
			// timer: report the context's verdict.
			<-ctx.Done()
		}
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}()
	bufs := net.Buffers{head, body}
	if _, err := bufs.WriteTo(pc.Conn); err != nil {
		return nil, false, err
	}
	req := &http.Request{Method: http.MethodPost}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(pc.br, req)
		if err != nil {
			return nil, false, err
		}
		// Interim answers (100 Continue, 103 Early Hints) precede the real
		// one.
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue
		}
		break
	}
	if resp.ContentLength > max {
		return nil, false, ErrAnswerTooLarge
	}
	b, err := readBody(resp.Body, resp.ContentLength, max)
	if err != nil {
		return nil, false, err
	}
	framed := resp.ContentLength >= 0 || (len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked")
	keep = framed && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols && pc.br.Buffered() == 0
	return &Answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, keep, nil
}

// readBody reads a body to its end, at most max bytes.
func readBody(r io.Reader, length, max int64) ([]byte, error) {
	if length >= 0 {
		b := make([]byte, length)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		var one [1]byte
		if n, err := r.Read(one[:]); n != 0 || err != io.EOF {
			return nil, fmt.Errorf("agent answer longer than its Content-Length")
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, ErrAnswerTooLarge
	}
	return b, nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// requestHead writes the request line and headers of an HTTP/1.1 POST.
// Header names and values holding CR, LF or NUL are refused, so nothing a
// caller passes can split the request.
func requestHead(t Target, header http.Header, n int) ([]byte, error) {
	b := make([]byte, 0, 256+len(t.RequestURI))
	b = append(b, "POST "...)
	b = append(b, t.RequestURI...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, t.Host...)
	// identity: the answer is passed back byte for byte with only its
	// Content-Type, so it must not arrive compressed.
	b = append(b, "\r\nUser-Agent: molecule-a2a\r\nAccept-Encoding: identity\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\n"...)
	for k, vs := range header {
		switch http.CanonicalHeaderKey(k) {
		case "Host", "Content-Length", "Transfer-Encoding", "Connection", "Accept-Encoding":
			continue // framing is ours
		}
		if !validHeaderText(k) || k == "" {
			return nil, fmt.Errorf("invalid header name %q", k)
		}
		for _, v := range vs {
			if !validHeaderText(v) {
				return nil, fmt.Errorf("invalid value for header %s", k)
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...), nil
}

func validHeaderText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}

// postFallback makes an https call through the fallback client.
func (u *Upstream) postFallback(ctx context.Context, t Target, header http.Header, body []byte, max int64) (*Answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.Raw, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := u.fallback.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.ContentLength > max {
		return nil, ErrAnswerTooLarge
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, ErrAnswerTooLarge
	}
	return &Answer{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b}, nil
}
