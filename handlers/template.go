package handlers

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/herald-notify/herald"
	"github.com/herald-notify/herald/events"
	"github.com/herald-notify/herald/templatestore"
)

// fromTemplate returns req as the acceptor validates and renders it: unchanged when it names no
// stored template; otherwise with the subject, content and HTML of the version it names and its
// variables with that version's defaults filled in, and the version's reference for the log.
// EINVALID, naming the fields, for a template the send cannot use: none such, archived, of
// another channel, given together with parts of its own, or missing a variable without default.
func (a *Acceptor) fromTemplate(ctx context.Context, req SendRequest) (SendRequest, *events.TemplateRef, error) {
	if req.Template == "" {
		return req, nil, nil
	}
	fields := map[string]string{}
	for name, given := range map[string]bool{"subject": req.Subject != "", "content": req.Content != "", "html": req.HTML != ""} {
		if given {
			fields[name] = "must be left out when template is given: the template's " + name + " is used"
		}
	}
	if a.templates == nil {
		fields["template"] = "sending by a stored template is not enabled on this server"
	}
	if len(fields) > 0 {
		return req, nil, herald.Invalid("the notification is invalid", fields)
	}
	v, err := a.templates.Resolve(ctx, req.Template)
	switch herald.ErrorCode(err) {
	case "":
	case herald.ENOTFOUND:
		return req, nil, herald.Invalid("the notification is invalid", map[string]string{"template": herald.ErrorMessage(err)})
	case herald.EINVALID:
		return req, nil, err
	default:
		return req, nil, fmt.Errorf("resolve template %q: %w", req.Template, err)
	}
	if channel, cerr := herald.ParseChannel(req.Type); cerr == nil && channel != v.Channel {
		fields["template"] = fmt.Sprintf("%s@%d is an %s template; type is %s", v.Name, v.Version, v.Channel, channel)
	}
	vars, err := templatestore.Defaults(v, req.Variables)
	var herr *herald.Error
	if errors.As(err, &herr) && herr.Code == herald.EINVALID {
		maps.Copy(fields, herr.Fields)
	} else if err != nil {
		return req, nil, err
	}
	if len(fields) > 0 {
		return req, nil, herald.Invalid("the notification is invalid", fields)
	}
	req.Subject, req.Content, req.HTML, req.Variables = v.Subject, v.Content, v.HTML, vars
	return req, &events.TemplateRef{Name: v.Name, Version: v.Version}, nil
}
