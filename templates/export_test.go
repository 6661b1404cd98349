package templates

// MentionsDocumentAttribute is mentionsDocumentAttribute, for the tests.
var MentionsDocumentAttribute = mentionsDocumentAttribute
