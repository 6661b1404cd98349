package delivery

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/herald-notify/herald"
)

// TLS modes of SMTPConfig.TLS.
const (
	// TLSNone never encrypts. For local relays and test sinks only.
	TLSNone = "none"
	// TLSStartTLS upgrades with STARTTLS when the server offers it and carries on in clear when
	// it does not.
	TLSStartTLS = "starttls"
	// TLSRequire insists on STARTTLS and fails when the server does not offer it.
	TLSRequire = "require"
	// TLSImplicit speaks TLS from the first byte (SMTPS, usually port 465).
	TLSImplicit = "implicit"
)

const (
	// defaultSMTPTimeout bounds a whole Send when SMTPConfig.Timeout is zero.
	defaultSMTPTimeout = 30 * time.Second
	// defaultSMTPMaxIdle matches a worker's default concurrency per channel, so that a busy worker
	// finds a connection waiting for each of its sends.
	defaultSMTPMaxIdle = 8
	// defaultSMTPIdleTimeout is well below what relays allow an idle client (Postfix 300s, but
	// 10s when it is under stress; Exim 5m) and long enough to carry a steady trickle of mail.
	defaultSMTPIdleTimeout = 30 * time.Second
	// smtpQuitTimeout bounds the QUIT of a connection that is no longer needed. The messages it
	// carried were accepted already, so a relay slow to say goodbye is simply hung up on.
	smtpQuitTimeout = 2 * time.Second
)

// HeaderNotificationID names the Herald notification a message carries, so that a receiver (or a
// test) can tie a mail back to it without parsing the Message-ID.
const HeaderNotificationID = "X-Herald-Notification-Id"

// SMTPConfig configures the SMTP provider.
type SMTPConfig struct {
	// Name identifies the relay in events, logs and metrics. Empty means "smtp".
	Name string
	Host string
	// Port defaults to 25 for TLSNone, 587 for TLSStartTLS and TLSRequire, 465 for TLSImplicit.
	Port int
	// Username and Password authenticate with the relay; without a Username there is no AUTH.
	// The strongest mechanism the relay offers is used, but over an unencrypted connection only
	// challenge-response ones (SCRAM, CRAM-MD5): a relay that offers only PLAIN or LOGIN needs TLS.
	Username, Password string
	// From is the sender, "addr" or "Name <addr>".
	From string
	// TLS is one of "none", "starttls" (opportunistic: use STARTTLS when offered), "require"
	// (mandatory STARTTLS) or "implicit" (SMTPS). Empty means "starttls".
	TLS string
	// Timeout bounds one Send: connecting, the whole SMTP conversation and QUIT. Zero means 30s.
	Timeout time.Duration
	// MessageIDDomain is the right-hand side of the Message-IDs. Empty means the domain of From.
	MessageIDDomain string
	// MaxIdle bounds the connections kept open between messages for the next ones. Zero means 8,
	// a worker's default concurrency; a connection that would exceed it is closed after its
	// message.
	MaxIdle int
	// IdleTimeout closes a connection that waited this long for a message. Keep it below the
	// relay's own idle limit. Zero means 30s.
	IdleTimeout time.Duration
	// BounceDomain, when set, makes each message's envelope sender (MAIL FROM, the return path)
	// bounces+NOTIFICATION_ID@BounceDomain, so that a bounce names the notification it is about
	// (VERP). The From header does not change. Empty: the envelope sender is From's address.
	BounceDomain string
}

// ReturnPath is the envelope sender of notification id's message with bounces going to domain:
// bounces+ID@DOMAIN. Package bounces reads the id back from it.
func ReturnPath(id, domain string) string { return "bounces+" + id + "@" + domain }

// SMTP sends email through an SMTP relay. Connections (TCP, EHLO, STARTTLS, AUTH) are reused: a
// Send takes one that is waiting, or opens one, and after a success puts it back to wait for the
// next, up to MaxIdle of them and for IdleTimeout each. A connection carries one Send at a time.
type SMTP struct {
	name        string
	host        string
	port        int
	username    string
	password    string
	from        *netmail.Address
	tls         string
	timeout     time.Duration
	domain      string
	maxIdle     int
	idleTimeout time.Duration
	bounceTo    string

	mu sync.Mutex
	// idle holds the connections waiting for a message, most recently used last: taking from the
	// end keeps the fewest connections busy and lets the others expire when traffic drops.
	idle []*smtpConn
	// closed is set by Close: connections are hung up after their message from then on.
	closed bool
}

// smtpConn is an SMTP connection that has greeted the relay (and upgraded and authenticated as
// configured) and is between mail transactions.
type smtpConn struct {
	client  *gomail.Client
	session *smtp.Client
	// conn is the TCP socket under session, under TLS if any. Closing it ends whatever the
	// session is doing, which is how ctx stops a conversation: go-mail consults ctx only while
	// dialling.
	conn net.Conn
	// expiry hangs up on the connection when it has waited IdleTimeout in the pool. Whoever stops
	// it owns the connection; when it has fired, its function does.
	expiry *time.Timer
}

var _ Provider = (*SMTP)(nil)

// NewSMTP validates cfg and returns a provider for it. It does not connect: a relay that is down
// at start-up is a transient failure of the first Send, not a reason to refuse to start.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	var problems []string
	if cfg.Host == "" {
		problems = append(problems, "host is required")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		problems = append(problems, fmt.Sprintf("port %d is out of range 1-65535", cfg.Port))
	}
	if cfg.Password != "" && cfg.Username == "" {
		problems = append(problems, "password is set but username is empty")
	}
	if cfg.Timeout < 0 {
		problems = append(problems, fmt.Sprintf("timeout %s is negative", cfg.Timeout))
	}
	if cfg.MaxIdle < 0 {
		problems = append(problems, fmt.Sprintf("max idle %d is negative", cfg.MaxIdle))
	}
	if cfg.IdleTimeout < 0 {
		problems = append(problems, fmt.Sprintf("idle timeout %s is negative", cfg.IdleTimeout))
	}

	var from *netmail.Address
	if cfg.From == "" {
		problems = append(problems, "from is required")
	} else if a, err := netmail.ParseAddress(cfg.From); err != nil {
		problems = append(problems, fmt.Sprintf("from %q is not an email address: %v", cfg.From, err))
	} else {
		from = a
	}

	mode := cfg.TLS
	if mode == "" {
		mode = TLSStartTLS
	}
	defaultPort := 0
	switch mode {
	case TLSNone:
		defaultPort = 25
	case TLSStartTLS, TLSRequire:
		defaultPort = 587
	case TLSImplicit:
		defaultPort = 465
	default:
		problems = append(problems, fmt.Sprintf("unknown tls mode %q: want none, starttls, require or implicit", cfg.TLS))
	}

	domain := cfg.MessageIDDomain
	if domain == "" && from != nil {
		domain = from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	}
	if domain != "" && !isDotAtom(domain) {
		problems = append(problems, fmt.Sprintf("message-id domain %q is not a plain domain name; set MessageIDDomain", domain))
	}

	if cfg.BounceDomain != "" && !isDotAtom(cfg.BounceDomain) {
		problems = append(problems, fmt.Sprintf("bounce domain %q is not a plain domain name", cfg.BounceDomain))
	}

	if len(problems) > 0 {
		return nil, fmt.Errorf("smtp config: %s", strings.Join(problems, "; "))
	}

	return &SMTP{
		name:        cmp.Or(cfg.Name, "smtp"),
		host:        cfg.Host,
		port:        cmp.Or(cfg.Port, defaultPort),
		username:    cfg.Username,
		password:    cfg.Password,
		from:        from,
		tls:         mode,
		timeout:     cmp.Or(cfg.Timeout, defaultSMTPTimeout),
		domain:      domain,
		maxIdle:     cmp.Or(cfg.MaxIdle, defaultSMTPMaxIdle),
		idleTimeout: cmp.Or(cfg.IdleTimeout, defaultSMTPIdleTimeout),
		bounceTo:    cfg.BounceDomain,
	}, nil
}

// Name returns SMTPConfig.Name: "smtp" unless set.
func (s *SMTP) Name() string { return s.name }

// SMTPName is the primary SMTP provider's name, in events and as the key of its rate limit.
const SMTPName = "smtp"

// Send delivers m as a plain-text UTF-8 mail and returns its Message-ID without angle brackets:
// NOTIFICATION_ID@DOMAIN. The id does not change between attempts, so a receiver that got an
// attempt we believe failed can drop the duplicate.
//
// A 5xx reply and a recipient that is not an email address are permanent; 4xx replies, refused
// connections, timeouts, TLS failures and ctx ending are transient.
//
// Send uses a connection left open by an earlier one when there is one. The relay may have closed
// it meanwhile; when it turns out to be dead before the relay saw any of m (MAIL FROM, the first
// command said on it since, gets no answer or a 421), Send tries once more on a new connection,
// within the same ctx and Timeout. It never does when the relay may have the message.
func (s *SMTP) Send(ctx context.Context, m Message) (string, error) {
	msg, messageID, err := s.build(m)
	if err != nil {
		return "", Unsent(fmt.Errorf("smtp send %s: %w", m.NotificationID, err))
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.deliver(ctx, msg); err != nil {
		err = fmt.Errorf("smtp send %s via %s: %w", m.NotificationID, net.JoinHostPort(s.host, strconv.Itoa(s.port)), err)
		if code := smtpReplyCode(err); code >= 500 && code <= 599 {
			return "", Permanent(err)
		}
		return "", err
	}
	return messageID, nil
}

// build turns m into the MIME message to send and returns it with its Message-ID; a message of
// another channel is refused.
func (s *SMTP) build(m Message) (*gomail.Msg, string, error) {
	if m.Channel != "" && m.Channel != herald.ChannelEmail {
		return nil, "", fmt.Errorf("channel %q is not %q", m.Channel, herald.ChannelEmail)
	}
	// The id becomes the left half of the Message-ID, which must be a dot-atom; rejecting what
	// does not fit beats sending a header receivers will mangle or refuse.
	if !isDotAtom(m.NotificationID) {
		return nil, "", fmt.Errorf("notification id %q cannot form a Message-ID", m.NotificationID)
	}
	to, err := netmail.ParseAddress(m.Recipient)
	if err != nil {
		return nil, "", fmt.Errorf("recipient %q is not an email address: %w", m.Recipient, err)
	}

	msg := gomail.NewMsg()
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(to)
	msg.Subject(m.Subject)
	// With HTML the body is multipart/alternative: the text first, the HTML last, as readers
	// show the last part they can display. go-mail writes both as UTF-8, quoted-printable.
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	// Attachments make the message multipart/mixed around that body, each file a part of its
	// own with the name and type it was sent with, base64.
	for _, a := range m.Attachments {
		if err := msg.AttachReader(a.Filename, bytes.NewReader(a.Data), gomail.WithFileContentType(gomail.ContentType(a.ContentType)),
			gomail.WithFileEncoding(gomail.EncodingB64)); err != nil {
			return nil, "", fmt.Errorf("attach %q: %w", a.Filename, err)
		}
	}
	messageID := m.NotificationID + "@" + s.domain
	msg.SetMessageIDWithValue(messageID)
	msg.SetGenHeader(gomail.Header(HeaderNotificationID), m.NotificationID)
	msg.SetDate()
	if s.bounceTo != "" {
		if err := msg.EnvelopeFrom(ReturnPath(m.NotificationID, s.bounceTo)); err != nil {
			return nil, "", fmt.Errorf("return path: %w", err)
		}
	}
	return msg, messageID, nil
}

// deliver sends msg on a waiting connection or a new one. A waiting connection may have been
// closed by the relay meanwhile, which shows only when it is used: when it fails before the relay
// took any part of the message, msg is sent once more, on a new connection.
func (s *SMTP) deliver(ctx context.Context, msg *gomail.Msg) error {
	pc := s.takeIdle()
	if pc != nil {
		stale, err := s.send(ctx, pc, msg, true)
		if !stale {
			return err
		}
	}
	pc, err := s.connect(ctx)
	if err != nil {
		return withContextCause(ctx, fmt.Errorf("connect: %w", err))
	}
	_, err = s.send(ctx, pc, msg, false)
	return err
}

// send runs one mail transaction for msg on pc, which it then owns: after a success pc waits in
// the pool for the next message, after an error it is closed. stale reports an error that a
// connection the relay hung up on while it was idle would cause, before the relay saw any of msg:
// retrying on another connection cannot duplicate it.
//
// It does what go-mail's DialAndSendWithContext does after dialling, with two differences that
// matter for retries: ctx is honoured for the whole conversation, and a failure after the relay
// accepted the message (closing the connection, say) is not an error, so it cannot cause a
// duplicate.
func (s *SMTP) send(ctx context.Context, pc *smtpConn, msg *gomail.Msg, reused bool) (stale bool, err error) {
	stopWatch := context.AfterFunc(ctx, func() { _ = pc.conn.Close() })
	// A reused connection is clean: only a transaction that succeeded puts it back in the pool.
	// Nothing is said on it before MAIL FROM (no RSET, no NOOP), which is where a relay that hung
	// up meanwhile shows it: each command less is a round trip less for every message.
	err = pc.client.SendWithSMTPClient(pc.session, msg)
	if !stopWatch() {
		// ctx ended and the connection is closed, or closing: nothing more is said on it.
		if msg.IsDelivered() {
			return false, nil
		}
		if err == nil {
			err = errors.New("connection closed")
		}
		return false, withContextCause(ctx, err)
	}
	if err != nil {
		_ = pc.conn.Close()
		if msg.IsDelivered() {
			// Nothing after the message's acceptance can undo it.
			return false, nil
		}
		return reused && beforeTransaction(err), withContextCause(ctx, err)
	}
	if !s.putIdle(pc) {
		s.hangUp(ctx, pc, time.Now().Add(smtpQuitTimeout))
	}
	return false, nil
}

// beforeTransaction reports whether err, from a conversation on a reused connection, happened
// before the relay accepted a MAIL FROM, in a way that means the connection is gone rather than
// that the relay refuses the message: go-mail found the connection closed before it began, or
// MAIL FROM got no reply or a 421 (the relay is closing the connection).
func beforeTransaction(err error) bool {
	var sendErr *gomail.SendError
	if !errors.As(err, &sendErr) {
		// go-mail's SendWithSMTPClient reports its errors as SendErrors.
		return false
	}
	switch sendErr.Reason {
	case gomail.ErrConnCheck:
		return true
	case gomail.ErrSMTPMailFrom:
		code := sendErr.ErrorCode()
		return code == 0 || code == 421
	}
	return false
}

// connect opens a connection and greets the relay, upgrading to TLS and authenticating as
// configured. ctx bounds all of it.
func (s *SMTP) connect(ctx context.Context) (*smtpConn, error) {
	pc := &smtpConn{}
	stopWatch := func() bool { return true }
	dial := func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		c, raw, err := s.dial(dialCtx, network, addr)
		if err != nil {
			return nil, err
		}
		pc.conn = raw
		stopWatch = context.AfterFunc(ctx, func() { _ = raw.Close() })
		return c, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithDialContextFunc(dial),
		// No NOOP before a message nor RSET after it: a dead connection shows at MAIL FROM
		// (see send), a transaction that succeeded leaves nothing behind, and one that failed
		// closes its connection.
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
	}
	switch s.tls {
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSRequire:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSImplicit:
		// Our dialer already speaks TLS. go-mail's own SSL mode would skip reading the TLS state
		// of a custom dialer's connection and then treat it as unencrypted when choosing an AUTH
		// mechanism; the opportunistic policy reads it and finds the handshake complete.
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.username != "" {
		// Discovery picks the strongest mechanism the server offers and, on an unencrypted
		// connection, only challenge-response ones: a password never crosses the wire in clear.
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.username),
			gomail.WithPassword(s.password))
	}
	client, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("configure client: %w", err)
	}
	session, err := client.DialToSMTPClientWithContext(ctx)
	if !stopWatch() && err == nil {
		err = errors.New("connection closed")
	}
	if err != nil {
		if pc.conn != nil {
			_ = pc.conn.Close()
		}
		return nil, err
	}
	pc.client, pc.session = client, session
	return pc, nil
}

// dial opens the connection go-mail talks over, c, and returns the TCP socket under it too: with
// implicit TLS, c is the TLS connection on raw. Closing raw cuts any read or write at once, where
// closing a TLS connection first tries to send it a close_notify.
func (s *SMTP) dial(ctx context.Context, network, addr string) (c, raw net.Conn, err error) {
	raw, err = (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil || s.tls != TLSImplicit {
		return raw, raw, err
	}
	tc := tls.Client(raw, &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, nil, err
	}
	return tc, raw, nil
}

// takeIdle returns the most recently used waiting connection, or nil when none waits.
func (s *SMTP) takeIdle() *smtpConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.idle) > 0 {
		pc := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if pc.expiry.Stop() {
			return pc
		}
		// Its expiry fired and is waiting for s.mu to hang up on it.
	}
	return nil
}

// putIdle makes pc wait for the next message, unless MaxIdle connections wait already or Close
// was called. It reports whether pc was taken.
func (s *SMTP) putIdle(pc *smtpConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.idle) >= s.maxIdle {
		return false
	}
	if pc.expiry == nil {
		pc.expiry = time.AfterFunc(s.idleTimeout, func() { s.expire(pc) })
	} else {
		pc.expiry.Reset(s.idleTimeout)
	}
	s.idle = append(s.idle, pc)
	return true
}

// expire hangs up on pc, which waited IdleTimeout for a message.
func (s *SMTP) expire(pc *smtpConn) {
	s.mu.Lock()
	if i := slices.Index(s.idle, pc); i >= 0 {
		s.idle = slices.Delete(s.idle, i, i+1)
	}
	s.mu.Unlock()
	s.hangUp(context.Background(), pc, time.Now().Add(smtpQuitTimeout))
}

// hangUp says QUIT on pc and closes it, giving up at deadline or when ctx ends.
func (s *SMTP) hangUp(ctx context.Context, pc *smtpConn, deadline time.Time) {
	stopWatch := context.AfterFunc(ctx, func() { _ = pc.conn.Close() })
	defer stopWatch()
	if err := pc.conn.SetDeadline(deadline); err == nil {
		_ = pc.session.Quit()
	}
	_ = pc.conn.Close()
}

// Close hangs up on the connections waiting for a message and stops keeping any: a Send under
// way, or one made later, closes its connection when it is done. It waits at most a couple of
// seconds for the relay's goodbyes and always returns nil. Sends are not refused after Close.
func (s *SMTP) Close() error {
	s.mu.Lock()
	s.closed = true
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()

	deadline := time.Now().Add(smtpQuitTimeout)
	for _, pc := range idle {
		if pc.expiry.Stop() {
			s.hangUp(context.Background(), pc, deadline)
		}
	}
	return nil
}

// withContextCause adds ctx's error to err when ctx ended, because closing the connection turns a
// deadline or a cancellation into "use of closed network connection", which hides the reason.
func withContextCause(ctx context.Context, err error) error {
	if cause := ctx.Err(); cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// smtpReplyCode returns the SMTP reply code behind err, or 0 when the server never answered with
// an error. go-mail's SendError keeps the reply in an unexported list, so its code has to be asked
// for; errors from connecting (greeting, EHLO, STARTTLS, AUTH) surface as *textproto.Error.
func smtpReplyCode(err error) int {
	var sendErr *gomail.SendError
	if errors.As(err, &sendErr) && sendErr.ErrorCode() != 0 {
		return sendErr.ErrorCode()
	}
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		return protoErr.Code
	}
	return 0
}

// isDotAtom reports whether s is an RFC 5322 dot-atom-text: atext runs separated by single dots.
func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		default:
			return false
		}
	}
	return true
}
