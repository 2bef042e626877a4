// Package store holds checkpoint images: a directory backend (a local path or a
// shared file system such as NFS, Lustre or GPFS) and a NATS JetStream object
// store backend. Every image carries its SHA-256 and size; a reader verifies
// both before it reports success, and a writer never leaves a half image that
// could be taken for a whole one.
//
// This package imports no other package of the project.
package store
