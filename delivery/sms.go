package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/herald-notify/herald"
)

const (
	// defaultSMSTimeout bounds a whole Send when SMSConfig.Timeout is zero.
	defaultSMSTimeout = 30 * time.Second
	// maxSMSResponse caps how much of a gateway's answer is read: a sid or an error fits in far
	// less, and a misbehaving gateway must not make us buffer without limit.
	maxSMSResponse = 64 << 10
	// maxErrorSnippet caps how much of an unrecognised error body goes into the error message,
	// which ends up in events and logs.
	maxErrorSnippet = 512
)

// SMSConfig configures the HTTP SMS provider for a Twilio-style gateway.
type SMSConfig struct {
	// Name identifies the gateway in events, logs and metrics. Empty means HTTPSMSName.
	Name string
	// URL is the gateway's base URL, e.g. https://api.twilio.com.
	URL        string
	AccountSID string
	AuthToken  string
	// From is the sender number or id.
	From string
	// StatusCallback, if set, is the URL the gateway posts each message's status reports to
	// (Twilio's StatusCallback): where Herald takes in delivery receipts. It must be an absolute
	// http or https URL. Each message asks for its reports at this URL with the notification's
	// id added to the query (CallbackNotificationParam, see StatusCallbackFor), so that a report
	// names its notification even before Herald has recorded the gateway's message id.
	StatusCallback string
	// Timeout bounds one Send, including reading the answer. Zero means 30s.
	Timeout time.Duration
	// Client sends the requests; nil means a client of its own. Its own Timeout, if any, also applies.
	Client *http.Client
}

// HTTPSMS sends SMS through a Twilio-style HTTP gateway.
type HTTPSMS struct {
	name       string
	endpoint   string
	accountSID string
	authToken  string
	from       string
	callback   string
	timeout    time.Duration
	client     *http.Client
}

var _ Provider = (*HTTPSMS)(nil)

// NewHTTPSMS validates cfg and returns a provider for it. It does not contact the gateway.
func NewHTTPSMS(cfg SMSConfig) (*HTTPSMS, error) {
	var problems []string
	base, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		problems = append(problems, "url is required")
	case err != nil:
		problems = append(problems, fmt.Sprintf("url %q does not parse: %v", cfg.URL, err))
	case base.Scheme != "http" && base.Scheme != "https":
		problems = append(problems, fmt.Sprintf("url %q: scheme must be http or https", cfg.URL))
	case base.Host == "":
		problems = append(problems, fmt.Sprintf("url %q has no host", cfg.URL))
	}
	if cfg.AccountSID == "" {
		problems = append(problems, "account sid is required")
	}
	if cfg.AuthToken == "" {
		problems = append(problems, "auth token is required")
	}
	if cfg.From == "" {
		problems = append(problems, "from is required")
	}
	if cfg.StatusCallback != "" {
		cb, err := url.Parse(cfg.StatusCallback)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("status callback %q does not parse: %v", cfg.StatusCallback, err))
		case cb.Scheme != "http" && cb.Scheme != "https":
			problems = append(problems, fmt.Sprintf("status callback %q: scheme must be http or https", cfg.StatusCallback))
		case cb.Host == "":
			problems = append(problems, fmt.Sprintf("status callback %q has no host", cfg.StatusCallback))
		}
	}
	if cfg.Timeout < 0 {
		problems = append(problems, fmt.Sprintf("timeout %s is negative", cfg.Timeout))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("sms config: %s", strings.Join(problems, "; "))
	}

	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = defaultSMSTimeout
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
	}
	name := cfg.Name
	if name == "" {
		name = HTTPSMSName
	}
	return &HTTPSMS{
		name:       name,
		endpoint:   strings.TrimSuffix(base.String(), "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		accountSID: cfg.AccountSID,
		authToken:  cfg.AuthToken,
		from:       cfg.From,
		callback:   cfg.StatusCallback,
		timeout:    timeout,
		client:     client,
	}, nil
}

// CallbackNotificationParam is the query parameter of a message's status callback URL that
// names its notification. The gateway signs the whole URL, query included, so a signed report
// cannot name another notification than the one its message was sent for.
const CallbackNotificationParam = "notification"

// StatusCallbackFor returns the status callback URL of the message of notification id: base with
// CallbackNotificationParam=id added to its query, before any fragment (where Twilio reads its
// connection overrides). The rest of base is kept byte for byte. An empty base or id gives base.
func StatusCallbackFor(base, id string) string {
	if base == "" || id == "" {
		return base
	}
	u, fragment, hasFragment := strings.Cut(base, "#")
	sep := "?"
	switch {
	case strings.HasSuffix(u, "?") || strings.HasSuffix(u, "&"):
		sep = ""
	case strings.Contains(u, "?"):
		sep = "&"
	}
	u += sep + CallbackNotificationParam + "=" + url.QueryEscape(id)
	if hasFragment {
		u += "#" + fragment
	}
	return u
}

// HTTPSMSName is the name of the HTTP SMS provider in events and logs, unless SMSConfig.Name
// gives another.
const HTTPSMSName = "http-sms"

// Name returns SMSConfig.Name: HTTPSMSName unless set.
func (p *HTTPSMS) Name() string { return p.name }

// Send posts m to the gateway and returns the sid it assigned. The notification id goes along as
// the idempotency token, so a gateway that did accept an attempt we saw fail does not send the
// retry a second time.
//
// Any 2xx answer is a send: when its body does not carry a readable sid, Send returns an empty id
// and no error.
//
// 408, 429, 5xx, network errors and timeouts are transient; any other 4xx is permanent. The error
// carries the status and the gateway's message.
func (p *HTTPSMS) Send(ctx context.Context, m Message) (string, error) {
	if m.Channel != "" && m.Channel != herald.ChannelSMS {
		return "", Unsent(fmt.Errorf("http-sms send %s: channel %q is not %q", m.NotificationID, m.Channel, herald.ChannelSMS))
	}
	if strings.TrimSpace(m.Recipient) == "" {
		return "", Unsent(fmt.Errorf("http-sms send %s: recipient is empty", m.NotificationID))
	}

	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	form := url.Values{"To": {m.Recipient}, "From": {p.from}, "Body": {m.Body}}
	if p.callback != "" {
		form.Set("StatusCallback", StatusCallbackFor(p.callback, m.NotificationID))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", Unsent(fmt.Errorf("http-sms send %s: build request: %w", m.NotificationID, err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("I-Twilio-Idempotency-Token", m.NotificationID)
	req.SetBasicAuth(p.accountSID, p.authToken)

	resp, err := p.client.Do(req)
	if err != nil {
		// The request URL names the account; the error is recorded in the log and shown to API
		// clients, so it says what went wrong without it.
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			return "", fmt.Errorf("http-sms send %s: %s gateway: %w", m.NotificationID, urlErr.Op, urlErr.Err)
		}
		return "", fmt.Errorf("http-sms send %s: %w", m.NotificationID, err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxSMSResponse))

	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// The gateway said it took the message. If its answer cannot be read (cut short, HTML from
		// a proxy, empty, JSON without a sid) the message is still sent, its sid unknown: a retry
		// would send it again to any gateway that does not honour the idempotency token.
		var accepted struct {
			SID string `json:"sid"`
		}
		if readErr != nil || json.Unmarshal(body, &accepted) != nil {
			return "", nil
		}
		return accepted.SID, nil
	}

	err = fmt.Errorf("http-sms send %s: %s: %s", m.NotificationID, resp.Status, errorSnippet(body))
	switch code := resp.StatusCode; {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return "", err
	case code >= 400:
		return "", Permanent(err)
	}
	// 1xx and 3xx are not answers a gateway should give; nothing says another try would fail.
	return "", err
}

// errorSnippet renders a gateway's error body for an error message: Twilio's message and code
// when the body is Twilio's JSON, else the start of the body on one line.
func errorSnippet(body []byte) string {
	var twilio struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	text := strings.Join(strings.Fields(string(body)), " ")
	if json.Unmarshal(body, &twilio) == nil && twilio.Message != "" {
		text = twilio.Message
		if twilio.Code != 0 {
			text = fmt.Sprintf("%s (code %d)", twilio.Message, twilio.Code)
		}
	}
	if text == "" {
		return "empty response body"
	}
	if len(text) > maxErrorSnippet {
		cut := maxErrorSnippet
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "…"
	}
	return strings.ToValidUTF8(text, "\uFFFD")
}
