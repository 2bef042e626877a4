package events

import "github.com/xenft/xenft/internal/clock"

// wall is the time of this package's I/O: a coalesced read's wake-up (a
// socket deadline the kernel keeps), the pause between retries of a pull or a
// tail, a server's wait for JetStream, the rate of the ignored-input log. No
// safety decision reads it: the roles' leases, fences and detections read
// their own injected clocks (supervisor, restarter, detector WithClock).
var wall = clock.Real()
