package xen

import "strings"

// Recognised xl messages, copied from real Xen 4.17 output (see
// testdata/xl-interface and testdata/lab). xl has no machine-readable error
// codes: most failures exit 1, `xl create` exits 3 for any failure (it
// returns -ERROR_FAIL), and pause/unpause exit 0 even when they fail, so the
// text is all there is. Matching is done here, once, so that callers match
// on sentinel errors and never on text.
var (
	msgNotFound = []string{
		"is an invalid domain identifier", // any verb, unknown name
		"does not exist.",                 // xl list <unknown id>
		"unable to find domain info",      // xl save <unknown id>
		"Non-existant domain",             // xl destroy <unknown id> (sic)
		"No such process",                 // xl pause <unknown id>
		"unable to get domain type",       // xl unpause <unknown id>
	}
	msgExists       = []string{"already exists"}
	msgNoMemory     = []string{"failed to free memory for the domain"} // xl_vmcontrol.c; not seen in the lab
	msgUnresponsive = []string{
		"guest didn't acknowledge suspend",
		"did not respond to suspend request",
	}
	msgBadImage = []string{
		"wrong magic number",                 // not an xl image
		"truncated reading header",           // shorter than a header
		"Failed to read Record Header",       // cut short after the header
		"Restore failed",                     // libxc gave up reading pages
		"Can't open restore file",            // missing file
		"Failed to read Record",              // other record of a short stream
		"Savefile has wrong endianness",      // foreign image
		"Savefile has mandatory flag",        // unsupported image
		"Failed to read restore file header", // read error at the start
	}
)

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// classify turns a finished xl call into nil or a *ToolstackError whose
// Kind names the failure when the output is recognised. Which messages
// count depends on the verb: a failed restore also prints "Non-existant
// domain" while cleaning up the half-built domain, and that is not a
// missing domain.
func classify(verb, subject string, args []string, res xlResult) error {
	if res.ExitCode == 0 {
		return nil
	}
	out := res.Stderr + "\n" + string(res.Stdout)
	te := &ToolstackError{Verb: verb, Domain: subject, Args: args, ExitCode: res.ExitCode, Stderr: res.Stderr}
	switch verb {
	case "create":
		switch {
		case containsAny(out, msgExists):
			te.Kind = ErrDomainExists
		case containsAny(out, msgNoMemory):
			te.Kind = ErrNoMemory
		}
	case "restore":
		switch {
		case containsAny(out, msgExists):
			te.Kind = ErrDomainExists
		case containsAny(out, msgNoMemory):
			te.Kind = ErrNoMemory
		case containsAny(out, msgBadImage):
			te.Kind = ErrBadImage
		}
	case "save":
		switch {
		case containsAny(out, msgUnresponsive):
			te.Kind = ErrGuestUnresponsive
		case containsAny(out, msgNotFound[:3]):
			te.Kind = ErrDomainNotFound
		}
	default: // list, pause, unpause, destroy
		if containsAny(out, msgNotFound) {
			te.Kind = ErrDomainNotFound
		}
	}
	return te
}
