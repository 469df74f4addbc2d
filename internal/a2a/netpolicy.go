package a2a

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrRefusedAddress is returned when an agent URL or the address it
// resolves to is not one the platform may dial.
var ErrRefusedAddress = errors.New("agent address refused by the agent-URL policy")

// Policy is the agent-URL policy of §6. Cloud-metadata and link-local
// addresses are always refused; loopback and private ranges only pass when
// AllowPrivate (MOLECULE_AGENT_NETWORK=private, the self-hosted default where
// agents live on a Docker network). The check is made on the resolved
// address at connect time, so a hostname that resolves to a forbidden
// address (DNS rebinding included) is refused too.
type Policy struct {
	AllowPrivate bool
}

// PolicyFor maps MOLECULE_AGENT_NETWORK to a Policy.
func PolicyFor(network string) Policy { return Policy{AllowPrivate: network != "public"} }

// metadata holds well-known cloud metadata endpoints outside link-local.
var metadata = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS over IPv6
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// CheckAddr decides one resolved address.
func (p Policy) CheckAddr(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(),
		ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return fmt.Errorf("%w: %s is not dialable", ErrRefusedAddress, ip)
	}
	for _, m := range metadata {
		if m.Contains(ip) {
			return fmt.Errorf("%w: %s is a cloud metadata address", ErrRefusedAddress, ip)
		}
	}
	if ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("%w: broadcast", ErrRefusedAddress)
	}
	if (ip.IsLoopback() || ip.IsPrivate() || cgnat.Contains(ip)) && !p.AllowPrivate {
		return fmt.Errorf("%w: %s is private and MOLECULE_AGENT_NETWORK=public", ErrRefusedAddress, ip)
	}
	return nil
}

// CheckURL validates an agent URL's shape: http(s), a host, no user info;
// an IP-literal host is checked now, a hostname at dial time.
func (p Policy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%w: must be an http(s) URL with a host", ErrRefusedAddress)
	}
	if u.User != nil {
		return fmt.Errorf("%w: must not carry credentials", ErrRefusedAddress)
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(ip)
	}
	if strings.EqualFold(host, "metadata.google.internal") || strings.EqualFold(host, "metadata") {
		return fmt.Errorf("%w: cloud metadata host", ErrRefusedAddress)
	}
	return nil
}

// control runs after name resolution, on the exact address being dialed.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparseable address", ErrRefusedAddress)
	}
	return p.CheckAddr(ap.Addr())
}

// Dialer returns a dialer that enforces the policy on every connection.
func (p Policy) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: p.control}
}

// Transport returns an HTTP transport for calling agents: policy-checked
// dials and a large idle pool, so calls reuse connections under load
// instead of opening new ones.
func (p Policy) Transport() *http.Transport {
	d := p.Dialer()
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		Proxy:                 nil, // never route agent traffic through an env proxy
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the per-call deadline (X-Timeout) governs
		ForceAttemptHTTP2:     false,
	}
}
