package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Defaults for ClientOptions' zero fields.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultTimeout        = 15 * time.Second
	DefaultMaxAnswerBytes = 1024
)

// drainBytes is how much of an answer past MaxAnswerBytes Post reads, so that the connection of a
// slightly longer answer can still be reused. A longer answer closes the connection instead of
// being read to its end.
const drainBytes = 4096

// ClientOptions bound what one webhook POST may cost. Zero fields take the defaults above.
type ClientOptions struct {
	// ConnectTimeout bounds the TCP connect and the TLS handshake.
	ConnectTimeout time.Duration
	// Timeout bounds the whole request, from dialling to the end of the kept answer.
	Timeout time.Duration
	// MaxAnswerBytes is how much of the answer's body is kept, for the delivery's record.
	MaxAnswerBytes int
}

// withDefaults fills the zero fields of o.
func (o ClientOptions) withDefaults() ClientOptions {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxAnswerBytes <= 0 {
		o.MaxAnswerBytes = DefaultMaxAnswerBytes
	}
	return o
}

// Answer is what an endpoint answered to one webhook POST. Any status is an Answer, 3xx included
// (redirects are not followed); whether it counts as delivered is the caller's decision.
type Answer struct {
	Status   int
	Duration time.Duration // from the start of the POST to the end of the kept body
	Body     []byte        // the first MaxAnswerBytes of the body
}

// Client sends webhook POSTs to URLs that API clients chose, which makes it a way into Herald's
// network unless it refuses to go there. It checks every address it dials against its Policy,
// follows no redirects and ignores proxies from the environment. It is safe for concurrent use
// and keeps connections alive between POSTs.
type Client struct {
	policy    Policy
	http      *http.Client
	maxAnswer int
}

// NewClient returns a Client that sends only where p allows, bounded by o.
func NewClient(p Policy, o ClientOptions) *Client {
	o = o.withDefaults()
	dialer := &net.Dialer{
		Timeout:        o.ConnectTimeout,
		KeepAlive:      30 * time.Second,
		ControlContext: policyControl(p),
	}
	transport := &http.Transport{
		// No proxy: a proxy would dial the endpoint itself, past the address check.
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   o.ConnectTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Headers are not kept; an endpoint must not make Herald hold a megabyte of them.
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &Client{
		policy: p,
		http: &http.Client{
			Transport: transport,
			Timeout:   o.Timeout,
			// A redirect could lead anywhere, and the endpoint was registered where it is.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		maxAnswer: o.MaxAnswerBytes,
	}
}

// CloseIdleConnections closes the connections kept alive for later POSTs, for a dispatcher that
// stops or whose endpoints are gone. The Client stays usable.
func (c *Client) CloseIdleConnections() {
	c.http.CloseIdleConnections()
}

// policyControl returns the dialer hook that refuses a connection to an address p refuses. It
// runs after name resolution, on the very address about to be connected, so no DNS trick gets
// past it.
func policyControl(p Policy) func(ctx context.Context, network, address string, c syscall.RawConn) error {
	return func(_ context.Context, network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("webhook dial %s %s: not an IP address and port: %w", network, address, err)
		}
		if reason := refusal(ap.Addr(), p); reason != "" {
			return &RefusedAddressError{Addr: ap.Addr().WithZone(""), Reason: reason}
		}
		return nil
	}
}

// Post sends body to rawURL with the given header and returns the endpoint's answer. The URL is
// checked with ValidateURL first, and each address dialled is checked again at connect time. An
// error means no answer was had: the URL or address was refused, the connection failed, or a
// timeout passed. The error names the URL without its password.
func (c *Client) Post(ctx context.Context, rawURL string, header http.Header, body []byte) (Answer, error) {
	u, err := ValidateURL(rawURL, c.policy)
	if err != nil {
		return Answer{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Answer{}, fmt.Errorf("webhook post %s: %w", u.Redacted(), err)
	}
	for k, vs := range header {
		req.Header[k] = append([]string(nil), vs...)
	}

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		// The *url.Error from Do repeats the URL; ValidateURL refused any with credentials.
		return Answer{}, fmt.Errorf("webhook post: %w", err)
	}
	kept, err := readPrefix(resp.Body, c.maxAnswer)
	if err != nil {
		return Answer{}, fmt.Errorf("webhook post %s: read answer: %w", u.Redacted(), err)
	}
	return Answer{Status: resp.StatusCode, Duration: time.Since(start), Body: kept}, nil
}

// readPrefix keeps the first max bytes of an answer's body and closes it, reading at most
// drainBytes more so that a short answer leaves its connection reusable. A longer answer is
// never read to its end: an endpoint must not be able to make Herald read gigabytes.
func readPrefix(body io.ReadCloser, max int) ([]byte, error) {
	defer body.Close()
	kept, err := io.ReadAll(io.LimitReader(body, int64(max)))
	if err != nil {
		return nil, err
	}
	// Errors past the kept prefix do not matter: the answer is already had.
	_, _ = io.Copy(io.Discard, io.LimitReader(body, drainBytes))
	return kept, nil
}
