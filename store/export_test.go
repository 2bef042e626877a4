package store

// SetCreate replaces how d creates files, to inject I/O errors in tests.
func (d *Dir) SetCreate(f func(name string) (writeSyncCloser, error)) { d.create = f }

// WriteSyncCloser is the file interface Dir writes through.
type WriteSyncCloser = writeSyncCloser
