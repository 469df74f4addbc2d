package a2a

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	cases := []struct {
		ip              string
		private, public bool // allowed under each policy
	}{
		{"169.254.169.254", false, false}, // cloud metadata (link-local)
		{"169.254.1.1", false, false},
		{"fe80::1", false, false},
		{"100.100.100.200", false, false},
		{"fd00:ec2::254", false, false},
		{"0.0.0.0", false, false},
		{"::", false, false},
		{"224.0.0.1", false, false},
		{"255.255.255.255", false, false},
		{"::ffff:169.254.169.254", false, false}, // v4-mapped metadata
		{"127.0.0.1", true, false},
		{"::1", true, false},
		{"10.1.2.3", true, false},
		{"172.20.0.5", true, false},
		{"192.168.1.9", true, false},
		{"fd12::1", true, false},
		{"100.64.0.1", true, false},
		{"93.184.216.34", true, true},
		{"2606:4700::1111", true, true},
	}
	for _, c := range cases {
		ip := netip.MustParseAddr(c.ip)
		if got := (Policy{AllowPrivate: true}).CheckAddr(ip) == nil; got != c.private {
			t.Errorf("private policy, %s: allowed=%v want %v", c.ip, got, c.private)
		}
		if got := (Policy{AllowPrivate: false}).CheckAddr(ip) == nil; got != c.public {
			t.Errorf("public policy, %s: allowed=%v want %v", c.ip, got, c.public)
		}
	}
}

func TestCheckURL(t *testing.T) {
	p := Policy{AllowPrivate: true}
	bad := []string{"", "ftp://agent:8000", "agent:8000", "http://", "http://user:pw@agent:8000",
		"http://169.254.169.254/latest", "http://[fe80::1]:80/", "http://metadata.google.internal/",
		"file:///etc/passwd", "://x"}
	for _, u := range bad {
		if err := p.CheckURL(u); !errors.Is(err, ErrRefusedAddress) {
			t.Errorf("CheckURL(%q) = %v, want refused", u, err)
		}
	}
	good := []string{"http://ws-abc:8000", "https://agent.example.com/a2a", "http://127.0.0.1:9000"}
	for _, u := range good {
		if err := p.CheckURL(u); err != nil {
			t.Errorf("CheckURL(%q) = %v, want ok", u, err)
		}
	}
	if err := (Policy{}).CheckURL("http://10.0.0.1:8000"); err == nil {
		t.Error("public policy must refuse a private literal")
	}
}

// A hostname that resolves to a refused address is stopped at dial time:
// "localhost" resolves to loopback, which the public policy refuses.
func TestDialTimeCheckOnResolvedAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	url := "http://localhost:" + port + "/"

	public := &http.Client{Transport: Policy{AllowPrivate: false}.Transport()}
	if err := (Policy{}).CheckURL(url); err != nil {
		t.Fatalf("a hostname passes the shape check (it is checked at dial): %v", err)
	}
	_, err := public.Get(url)
	if !errors.Is(err, ErrRefusedAddress) {
		t.Fatalf("public policy dialing localhost: got %v, want ErrRefusedAddress", err)
	}
	private := &http.Client{Transport: Policy{AllowPrivate: true}.Transport()}
	resp, err := private.Get(url)
	if err != nil {
		t.Fatalf("private policy dialing localhost: %v", err)
	}
	resp.Body.Close()
	// The dialer refuses before connecting, whatever the context.
	if _, err := (Policy{}).Dialer().DialContext(context.Background(), "tcp", "169.254.169.254:80"); !errors.Is(err, ErrRefusedAddress) {
		t.Fatalf("metadata dial: got %v", err)
	}
}
