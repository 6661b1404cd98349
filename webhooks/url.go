package webhooks

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/herald-notify/herald"
)

// MaxURLLength caps a webhook URL. Longer URLs are refused at registration: they are never needed
// to reach an endpoint and only swell logs and rows.
const MaxURLLength = 2048

// Policy says which webhook destinations Herald may reach. The zero value is the safe one, for a
// service on a network with things worth protecting: HTTPS only, public addresses only.
type Policy struct {
	// AllowPrivate lets webhooks reach loopback, private, link-local, unspecified, multicast and
	// cloud-metadata addresses. It is the setting HERALD_WEBHOOK_ALLOW_PRIVATE, meant for local
	// development and tests; in production it hands every API client a way into the network.
	AllowPrivate bool
	// AllowHTTP lets webhooks use plain http, whose payloads and signatures anyone on the path can
	// read. It is the setting HERALD_WEBHOOK_ALLOW_HTTP.
	AllowHTTP bool
}

// ValidateURL checks a webhook URL when an endpoint is registered and returns it parsed. It
// refuses what can never be a proper destination: not absolute http(s), plain http unless
// p.AllowHTTP, credentials in the URL (they would end up in logs), no host, a bad port, an
// overlong URL, a literal IP address that p refuses, and a host written as an IPv4 address in a
// form only some resolvers read ("127.1", "2130706433"). Host names are only resolved when a
// webhook is sent, where the Client checks the address it actually dials. The error is an
// herald.EINVALID whose message names what is wrong and never repeats the URL, which may hold a
// password.
func ValidateURL(raw string, p Policy) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, invalidURL("is longer than %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL, password included: keep only its reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, invalidURL("cannot be parsed: %v", err)
	}
	if err := checkURL(u, p); err != nil {
		return nil, err
	}
	return u, nil
}

// checkURL applies ValidateURL's rules to a parsed URL, one part at a time.
func checkURL(u *url.URL, p Policy) error {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return invalidURL("must use https (plain http only where HERALD_WEBHOOK_ALLOW_HTTP=true)")
	case u.Scheme == "":
		return invalidURL("must be absolute (https://host/path)")
	default:
		return invalidURL("has scheme %q; only https is allowed", u.Scheme)
	}
	if u.User != nil {
		return invalidURL("must not contain a user name or password")
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return invalidURL("has no host")
	}
	if err := checkPort(u.Port()); err != nil {
		return err
	}
	return checkHost(u.Hostname(), p)
}

// checkPort refuses a port outside 1–65535. url.Parse already keeps it to digits.
func checkPort(port string) error {
	if port == "" {
		return nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return invalidURL("has port %s, outside 1-65535", port)
	}
	return nil
}

// checkHost refuses a literal IP address the policy refuses, and a host that only looks like a
// name but that some resolvers read as an IPv4 address ("127.1", "0x7f.0.0.1", "2130706433"): its
// meaning depends on the resolver, so it cannot be checked here.
func checkHost(host string, p Policy) error {
	if addr, err := netip.ParseAddr(host); err == nil {
		if reason := refusal(addr, p); reason != "" {
			return invalidURL("points at %s, %s (allowed only where HERALD_WEBHOOK_ALLOW_PRIVATE=true)", addr.WithZone(""), reason)
		}
		return nil
	}
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if looksNumeric(labels[len(labels)-1]) {
		return invalidURL("has host %q, which is neither a domain name nor a plain IP address", host)
	}
	return nil
}

// looksNumeric reports whether a DNS label is a number in decimal, octal or hex. No top-level
// domain is numeric, so a host ending in one is an address in disguise.
func looksNumeric(label string) bool {
	l := strings.ToLower(label)
	if strings.HasPrefix(l, "0x") {
		l = l[2:]
		return l == "" || strings.Trim(l, "0123456789abcdef") == ""
	}
	return l != "" && strings.Trim(l, "0123456789") == ""
}

// invalidURL builds the EINVALID error ValidateURL returns.
func invalidURL(format string, args ...any) error {
	return herald.Invalid("webhook URL "+fmt.Sprintf(format, args...), nil)
}

// metadataAddrs are the cloud instance-metadata services (AWS, GCP, Azure, OpenStack on
// 169.254.169.254; AWS over IPv6; Alibaba), which hand out credentials to whoever asks from inside.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

var (
	thisNetwork   = netip.MustParsePrefix("0.0.0.0/8")     // "this host on this network"
	sharedSpace   = netip.MustParsePrefix("100.64.0.0/10") // carrier-grade NAT, inside providers
	ipv4Broadcast = netip.MustParseAddr("255.255.255.255")
	nat64         = netip.MustParsePrefix("64:ff9b::/96") // RFC 6052: an IPv4 address in the low 32 bits
)

// refusal says why p refuses to send to addr, or "" when it may. IPv4-mapped IPv6 addresses
// (::ffff:127.0.0.1) and NAT64 ones (64:ff9b::7f00:1) are judged as the IPv4 address they reach.
func refusal(addr netip.Addr, p Policy) string {
	if p.AllowPrivate {
		return ""
	}
	a := addr.Unmap().WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	switch {
	case slices.Contains(metadataAddrs, a):
		return "a cloud metadata address"
	case a.IsUnspecified() || thisNetwork.Contains(a):
		return "an unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		return "a private address"
	case sharedSpace.Contains(a):
		return "a shared (carrier-grade NAT) address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsMulticast() || a == ipv4Broadcast:
		return "a multicast or broadcast address"
	}
	return ""
}

// RefusedAddressError is why Client.Post did not connect: the host name resolved to an address
// the Policy refuses. It is checked on the address actually dialled, so a name that points inside,
// or whose DNS answer changed since the endpoint was registered, is caught too.
type RefusedAddressError struct {
	Addr   netip.Addr
	Reason string // e.g. "a loopback address"
}

func (e *RefusedAddressError) Error() string {
	return fmt.Sprintf("connection to %s refused by webhook policy: %s", e.Addr, e.Reason)
}
