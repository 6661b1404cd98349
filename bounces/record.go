package bounces

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
)

// Suppressor is told, inside the transaction that records a report, that a recipient must not be sent to again.
type Suppressor interface {
	SuppressIn(ctx context.Context, tx pgx.Tx, channel herald.Channel, recipient, reason, detail, notificationID string) error
}

// Suppression reasons handed to a Suppressor.
const (
	ReasonHardBounce = "hard_bounce"
	ReasonComplaint  = "complaint"
)

// returnPathPrefix begins the local part of every return path (delivery.ReturnPath).
const returnPathPrefix = "bounces+"

// conflictRetries bounds how often a report is decided again when its notification's stream
// moved under it.
const conflictRetries = 5

// Recorder turns received mail into kept reports and events on the notifications' streams.
type Recorder struct {
	db         DB
	log        *events.Log
	store      *Store
	suppressor Suppressor
	metrics    *Metrics
	logger     *slog.Logger
}

// RecorderConfig is what a Recorder needs besides the database.
type RecorderConfig struct {
	// Suppressor, when not nil, is told of every hard bounce and complaint recorded.
	Suppressor Suppressor
	Metrics    *Metrics
	Logger     *slog.Logger
}

// NewRecorder returns a recorder writing to db.
func NewRecorder(db DB, cfg RecorderConfig) *Recorder {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Recorder{db: db, log: events.NewLog(db), store: NewStore(db), suppressor: cfg.Suppressor,
		metrics: cfg.Metrics, logger: logger}
}

// Result is what became of one received message.
type Result struct {
	ReportID       int64
	Outcome        string
	NotificationID string
	Detail         string
}

// Receive keeps raw, received with env, and records what it reports. An error means it could
// not be kept or recorded (the database): the sender should try again later. Mail that is no
// report, or names no notification, is kept with its outcome and is no error.
func (rc *Recorder) Receive(ctx context.Context, env Envelope, raw []byte) (Result, error) {
	report, parseErr := Parse(raw)
	id, err := rc.store.add(ctx, env, raw, report.MessageID)
	if err != nil {
		rc.metrics.count(OutcomeFailed)
		return Result{}, err
	}
	res := Result{ReportID: id}
	for try := 1; ; try++ {
		res, err = rc.record(ctx, id, env, report, parseErr)
		if err == nil || !errors.Is(err, events.ErrConflict) || try == conflictRetries {
			break
		}
	}
	if err != nil {
		rc.metrics.count(OutcomeFailed)
		// The report is kept; its outcome says why nothing came of it. A context that ended is
		// no reason not to say so.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if serr := settle(sctx, rc.db, id, OutcomeFailed, res.NotificationID, err.Error()); serr != nil {
			err = errors.Join(err, serr)
		}
		return Result{ReportID: id, Outcome: OutcomeFailed, NotificationID: res.NotificationID, Detail: err.Error()}, err
	}
	rc.metrics.count(res.Outcome)
	level := slog.LevelInfo
	if res.Outcome == OutcomeUnmatched || res.Outcome == OutcomeUnparsable {
		level = slog.LevelWarn
	}
	rc.logger.Log(ctx, level, "inbound report", "report_id", id, "outcome", res.Outcome,
		"notification_id", res.NotificationID, "detail", res.Detail, "remote_addr", env.RemoteAddr)
	return res, nil
}

// record decides what report id says and writes it: the event, the suppression and the
// report's outcome, in one transaction.
func (rc *Recorder) record(ctx context.Context, id int64, env Envelope, report Report, parseErr error) (Result, error) {
	var res Result
	err := pgx.BeginFunc(ctx, rc.db, func(tx pgx.Tx) error {
		var err error
		res, err = rc.decide(ctx, tx, id, env, report, parseErr)
		if err != nil {
			return err
		}
		return settle(ctx, tx, id, res.Outcome, res.NotificationID, res.Detail)
	})
	return res, err
}

// decide works out, inside tx, what report id means for the notification it names, and appends
// the event and suppresses the recipient when it means anything.
func (rc *Recorder) decide(ctx context.Context, tx pgx.Tx, id int64, env Envelope, report Report, parseErr error) (Result, error) {
	res := Result{ReportID: id}
	if parseErr != nil {
		res.Outcome, res.Detail = OutcomeUnparsable, parseErr.Error()
		return res, nil
	}
	nid, how := match(env, report)
	if nid == "" {
		res.Outcome, res.Detail = OutcomeUnmatched, "no notification named by the return path or the returned message"
		return res, nil
	}
	n, _, err := rc.log.In(tx).Notification(ctx, nid)
	if herald.ErrorCode(err) == herald.ENOTFOUND {
		res.Outcome, res.Detail = OutcomeUnmatched, fmt.Sprintf("no notification %s (named by %s)", nid, how)
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.NotificationID = nid
	if n.Channel != herald.ChannelEmail {
		res.Outcome, res.Detail = OutcomeUnmatched, fmt.Sprintf("notification %s is %s, not email", nid, n.Channel)
		return res, nil
	}

	reportID := strconv.FormatInt(id, 10)
	ev, outcome, detail := Interpret(report, reportID)
	if ev == nil {
		res.Outcome, res.Detail = outcome, detail
		return res, nil
	}
	if !n.Status.WasSent() {
		res.Outcome, res.Detail = OutcomeIgnored, fmt.Sprintf("notification %s is %s: it was never sent", nid, n.Status)
		if n.Status.Terminal() && (outcome == OutcomeHardBounce || outcome == OutcomeComplaint) {
			// Failed or cancelled after an attempt the relay may have taken after all (a timeout):
			// the message reached the recipient's server, and what it says of the recipient holds.
			// The stream is final and takes no report, but the list does.
			if err := rc.suppress(ctx, tx, n, outcome, detail); err != nil {
				return res, err
			}
			res.Detail += "; its recipient is suppressed all the same"
		}
		return res, nil
	}
	if outcome == OutcomeSoftBounce && n.Status != herald.StatusSent {
		// A delay says the message may still arrive: news only while nothing more final is known.
		res.Outcome, res.Detail = OutcomeIgnored, fmt.Sprintf("notification %s is %s: a delay report changes nothing", nid, n.Status)
		return res, nil
	}
	if dup, err := rc.duplicate(ctx, tx, id, n, report, outcome); err != nil || dup != "" {
		res.Outcome, res.Detail = OutcomeDuplicate, dup
		return res, err
	}

	md := events.Metadata{Actor: "mta:" + cmp.Or(report.ReportingMTA, "unknown"), CorrelationID: herald.CorrelationID(ctx)}
	if _, err := rc.log.In(tx).Append(ctx, nid, n.Version, md, ev); err != nil {
		return res, err
	}
	if outcome == OutcomeHardBounce || outcome == OutcomeComplaint {
		if err := rc.suppress(ctx, tx, n, outcome, detail); err != nil {
			return res, err
		}
	}
	res.Outcome, res.Detail = outcome, detail
	return res, nil
}

// suppress puts n's recipient on the suppression list for a hard bounce or a complaint, in tx.
func (rc *Recorder) suppress(ctx context.Context, tx pgx.Tx, n herald.Notification, outcome, detail string) error {
	if rc.suppressor == nil {
		return nil
	}
	reason := ReasonHardBounce
	if outcome == OutcomeComplaint {
		reason = ReasonComplaint
	}
	if err := rc.suppressor.SuppressIn(ctx, tx, n.Channel, n.Recipient, reason, detail, n.ID); err != nil {
		return fmt.Errorf("suppress the recipient of %s: %w", n.ID, err)
	}
	return nil
}

// duplicate says why a report of this outcome would repeat what notification n has already,
// or "" when it would not: a second hard bounce or complaint, or a report whose Message-ID a
// report recorded on n had.
func (rc *Recorder) duplicate(ctx context.Context, tx pgx.Tx, id int64, n herald.Notification, report Report, outcome string) (string, error) {
	switch {
	case outcome == OutcomeHardBounce && n.Status == herald.StatusBounced:
		return fmt.Sprintf("notification %s is bounced already", n.ID), nil
	case outcome == OutcomeComplaint && n.Status == herald.StatusComplained:
		return fmt.Sprintf("notification %s is complained already", n.ID), nil
	case report.MessageID == "":
		return "", nil
	}
	var earlier int64
	err := tx.QueryRow(ctx, `SELECT id FROM inbound_reports WHERE message_id = $1 AND id <> $2 AND notification_id = $3
		AND outcome IN ('hard_bounce', 'soft_bounce', 'complaint') LIMIT 1`, report.MessageID, id, n.ID).Scan(&earlier)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("look for an earlier copy of report %d: %w", id, err)
	}
	return fmt.Sprintf("report %d had the same Message-ID", earlier), nil
}

// match finds the notification a report is about, and says how: the return path it was sent to
// (bounces+ID@domain), or the returned message's X-Herald-Notification-Id or Message-ID
// (ID@domain). Only a UUID is taken for a notification id.
func match(env Envelope, report Report) (id, how string) {
	for _, to := range env.To {
		local, _, _ := strings.Cut(trimAngles(to), "@")
		if len(local) > len(returnPathPrefix) && strings.EqualFold(local[:len(returnPathPrefix)], returnPathPrefix) {
			if u, err := uuid.Parse(local[len(returnPathPrefix):]); err == nil {
				return u.String(), "the return path"
			}
		}
	}
	if u, err := uuid.Parse(report.Original.NotificationID); err == nil {
		return u.String(), "the returned message's X-Herald-Notification-Id"
	}
	if local, _, ok := strings.Cut(report.Original.MessageID, "@"); ok {
		if u, err := uuid.Parse(local); err == nil {
			return u.String(), "the returned message's Message-ID"
		}
	}
	return "", ""
}

// Interpret says what a parsed report means: the event to record, with reportID as its
// report_id, and the outcome it gives the report; no event when it means nothing (a DSN that
// reports delivery), with the outcome ignored and why. The detail is what a suppression is told:
// the status and diagnostic of a hard bounce, the feedback type of a complaint.
//
// Of a DSN's recipients, the worst decides: a failure with a 5.x.x status (or none) is a hard
// bounce; a delay, or any 4.x.x status, a soft one; delivered, relayed and expanded are nothing.
func Interpret(r Report, reportID string) (events.Event, string, string) {
	if r.Type == TypeFeedbackReport {
		return &events.NotificationComplained{FeedbackType: r.Feedback.Type, ReportingMTA: r.ReportingMTA,
			UserAgent: r.Feedback.UserAgent, ReportID: reportID}, OutcomeComplaint, r.Feedback.Type
	}
	var soft *RecipientStatus
	for i, rs := range r.Recipients {
		switch kind := bounceKind(rs); {
		case kind == events.BounceHard:
			return bounced(r, rs, kind, reportID), OutcomeHardBounce, joinNonEmpty(rs.Status, rs.Diagnostic)
		case kind == events.BounceSoft && soft == nil:
			soft = &r.Recipients[i]
		}
	}
	if soft != nil {
		return bounced(r, *soft, events.BounceSoft, reportID), OutcomeSoftBounce, joinNonEmpty(soft.Status, soft.Diagnostic)
	}
	actions := make([]string, len(r.Recipients))
	for i, rs := range r.Recipients {
		actions[i] = cmp.Or(rs.Action, "no action")
	}
	return nil, OutcomeIgnored, "the report says " + strings.Join(actions, ", ") + ": nothing to record"
}

// bounceKind is the kind of bounce one recipient's status is, or "" when it is none.
func bounceKind(rs RecipientStatus) string {
	switch {
	case strings.HasPrefix(rs.Status, "4."):
		if rs.Action == "failed" || rs.Action == "delayed" {
			return events.BounceSoft
		}
	case rs.Action == "delayed":
		return events.BounceSoft
	case rs.Action == "failed":
		return events.BounceHard
	}
	return ""
}

func bounced(r Report, rs RecipientStatus, kind, reportID string) *events.NotificationBounced {
	return &events.NotificationBounced{Kind: kind, Status: rs.Status, Diagnostic: rs.Diagnostic,
		ReportingMTA: r.ReportingMTA, Recipient: rs.Recipient, ReportID: reportID}
}

// joinNonEmpty joins the parts that are not empty with ": ", as the fold shows a bounce.
func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ": ")
}
