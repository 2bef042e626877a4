//go:build !linux

package restarter

import (
	"errors"
	"os"
	"time"
)

// deviceTimeout: the watchdog API is Linux's; elsewhere the interval must be
// configured.
func deviceTimeout(*os.File) (time.Duration, error) {
	return 0, errors.New("reading a watchdog's timeout is supported on Linux only")
}
