package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

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

// defaultSMTPTimeout bounds a whole Send when SMTPConfig.Timeout is zero.
const defaultSMTPTimeout = 30 * time.Second

// HeaderNotificationID names the Herald notification a message carries, so that a receiver (or a
// test) can tie a mail back to it without parsing the Message-ID.
const HeaderNotificationID = "X-Herald-Notification-Id"

// SMTPConfig configures the SMTP provider.
type SMTPConfig struct {
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
}

// SMTP sends email through an SMTP relay, one connection per message.
type SMTP struct {
	host     string
	port     int
	username string
	password string
	from     *netmail.Address
	tls      string
	timeout  time.Duration
	domain   string
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

	if len(problems) > 0 {
		return nil, fmt.Errorf("smtp config: %s", strings.Join(problems, "; "))
	}

	port := cfg.Port
	if port == 0 {
		port = defaultPort
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = defaultSMTPTimeout
	}
	return &SMTP{
		host:     cfg.Host,
		port:     port,
		username: cfg.Username,
		password: cfg.Password,
		from:     from,
		tls:      mode,
		timeout:  timeout,
		domain:   domain,
	}, nil
}

// Name returns "smtp".
func (s *SMTP) Name() string { return "smtp" }

// Send delivers m as a plain-text UTF-8 mail and returns its Message-ID without angle brackets:
// NOTIFICATION_ID@DOMAIN. The id does not change between attempts, so a receiver that got an
// attempt we believe failed can drop the duplicate.
//
// A 5xx reply and a recipient that is not an email address are permanent; 4xx replies, refused
// connections, timeouts, TLS failures and ctx ending are transient.
func (s *SMTP) Send(ctx context.Context, m Message) (string, error) {
	msg, messageID, err := s.build(m)
	if err != nil {
		return "", Permanent(fmt.Errorf("smtp send %s: %w", m.NotificationID, err))
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
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	messageID := m.NotificationID + "@" + s.domain
	msg.SetMessageIDWithValue(messageID)
	msg.SetGenHeader(gomail.Header(HeaderNotificationID), m.NotificationID)
	msg.SetDate()
	return msg, messageID, nil
}

// deliver runs one SMTP conversation for msg. It does what go-mail's DialAndSendWithContext does,
// with two differences that matter for retries: ctx is honoured for the whole conversation, not
// only while dialling, and a failed QUIT after the relay accepted the message is not an error, so
// it cannot cause a duplicate.
func (s *SMTP) deliver(ctx context.Context, msg *gomail.Msg) error {
	var (
		conn      net.Conn
		stopWatch = func() bool { return false }
	)
	defer func() {
		stopWatch()
		if conn != nil {
			_ = conn.Close()
		}
	}()
	dial := func(dialCtx context.Context, network, addr string) (net.Conn, error) {
		c, err := s.dial(dialCtx, network, addr)
		if err != nil {
			return nil, err
		}
		conn = c
		// go-mail bounds each command with its own deadline and consults ctx only while dialling;
		// closing the connection is what stops a conversation the caller no longer waits for.
		stopWatch = context.AfterFunc(ctx, func() { _ = c.Close() })
		return c, nil
	}

	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithDialContextFunc(dial),
		// One message per fresh connection: NOOP before it and RSET after it are wasted round trips,
		// and a failing RSET would report a delivered message as failed.
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
		return fmt.Errorf("configure client: %w", err)
	}

	session, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return withContextCause(ctx, fmt.Errorf("connect: %w", err))
	}
	if err := client.SendWithSMTPClient(session, msg); err != nil && !msg.IsDelivered() {
		return withContextCause(ctx, err)
	}
	_ = client.CloseWithSMTPClient(session)
	return nil
}

func (s *SMTP) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{}
	if s.tls == TLSImplicit {
		td := &tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}}
		return td.DialContext(ctx, network, addr)
	}
	return d.DialContext(ctx, network, addr)
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
