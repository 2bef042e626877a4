package events

import (
	"strings"
	"testing"
)

// The publisher a consumer reads from a subject is the one the subject was
// built for; anything else (the publisher-less subjects of earlier
// versions, a bad escape, another prefix) reads as anonymous, never as an
// identity.
func TestPublisherOfReadsBackEventFrom(t *testing.T) {
	s := Subjects{Prefix: "xenft"}
	for _, p := range []Publisher{{RoleDetector, "det-a"}, {RoleSite, "ipmi.rack1"}, {RoleAgent, "n1.example.org"}, {RoleSupervisor, "sup 1"}} {
		if got := s.PublisherOf(s.EventFrom(TypeNodeFault, "n3.dc", p)); got != p {
			t.Errorf("PublisherOf(EventFrom(%v)) = %v", p, got)
		}
	}
	for _, subj := range []string{
		s.Event(TypeNodeFault, "n3"),        // anonymous
		"xenft.events.node.fault.n3",        // earlier versions
		"xenft.events.node.fault.n3.site",   // one token short
		"xenft.events.node.fault.n3.site.%", // bad escape
		"other.events.node.fault.n3.site.ipmi",
		"xenft.hb.n3",
	} {
		if got := s.PublisherOf(subj); !got.Anonymous() {
			t.Errorf("PublisherOf(%q) = %v, want anonymous", subj, got)
		}
	}
}

func TestParsePublisherNamesWhatIsWrong(t *testing.T) {
	if p, err := ParsePublisher("site/ipmi"); err != nil || p != (Publisher{RoleSite, "ipmi"}) {
		t.Errorf("site/ipmi = %v, %v", p, err)
	}
	for in, want := range map[string]string{
		"ipmi":          "not role/name",
		"site/":         "not role/name",
		"wizard/merlin": `role "wizard" is not one of`,
		"site/a/b":      "no '/' or spaces",
		"site/a b":      "no '/' or spaces",
	} {
		if _, err := ParsePublisher(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePublisher(%q) = %v, want an error with %q", in, err, want)
		}
	}
}
