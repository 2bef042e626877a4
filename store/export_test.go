package store

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// SetCreate replaces how d creates files, to inject I/O errors in tests.
func (d *Dir) SetCreate(f func(name string) (writeSyncCloser, error)) { d.create = f }

// WriteSyncCloser is the file interface Dir writes through.
type WriteSyncCloser = writeSyncCloser

// StaleReplicas makes the first n UpdateMeta calls of obj answer as a
// replica that has not yet seen the object does.
func StaleReplicas(obj jetstream.ObjectStore, n int) jetstream.ObjectStore {
	return &staleReplicas{ObjectStore: obj, left: n}
}

type staleReplicas struct {
	jetstream.ObjectStore
	left int
}

func (s *staleReplicas) UpdateMeta(ctx context.Context, name string, meta jetstream.ObjectMeta) error {
	if s.left > 0 {
		s.left--
		return jetstream.ErrUpdateMetaDeleted
	}
	return s.ObjectStore.UpdateMeta(ctx, name, meta)
}

// StaleInfo makes the first n GetInfo calls of obj answer as a replica
// that has not yet seen the object does.
func StaleInfo(obj jetstream.ObjectStore, n int) jetstream.ObjectStore {
	return &staleInfo{ObjectStore: obj, left: n}
}

type staleInfo struct {
	jetstream.ObjectStore
	left int
}

func (s *staleInfo) GetInfo(ctx context.Context, name string, opts ...jetstream.GetObjectInfoOpt) (*jetstream.ObjectInfo, error) {
	if s.left > 0 {
		s.left--
		return nil, jetstream.ErrObjectNotFound
	}
	return s.ObjectStore.GetInfo(ctx, name, opts...)
}
