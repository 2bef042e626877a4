package restarter

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/xenft/xenft/events/command"
	"github.com/xenft/xenft/store"
)

// spoolSuffix marks the restarter's files in its spool.
const spoolSuffix = ".restore"

// fetch streams the image of req from the store into f (closing it). The
// store's record must match the catalog's (req), and the store's reader
// verifies what it returns against its record, failing with ErrCorrupt
// instead of io.EOF (the store.ImageStore contract): so what reaches f is
// the image the catalog committed, hashed once. (A second SHA-256 here
// doubled the CPU of a fetch; in the nested Xen lab, where hashing 128 MiB
// takes about 30 s, it made a restore's fetch 65 s.) Any mismatch is
// CodeCorrupt, so the supervisor falls back to an older checkpoint; a
// missing image is CodeNotFound (the same for the supervisor); an
// unreachable store or a timeout is retryable; a full spool is permanent
// (another host may have room).
func (r *Restarter) fetch(ctx context.Context, req RestoreRequest, f *os.File) error {
	defer f.Close()
	rc, info, err := r.store.Open(ctx, req.ImageKey)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return command.NewError(command.CodeNotFound, fmt.Errorf("image %s: %w", req.ImageKey, err))
	case errors.Is(err, store.ErrCorrupt):
		return command.NewError(command.CodeCorrupt, fmt.Errorf("image %s: %w", req.ImageKey, err))
	case errors.Is(err, store.ErrInvalidKey):
		return command.NewError(command.CodeBadRequest, err)
	case err != nil:
		return command.NewError(command.CodeRetryable, fmt.Errorf("open image %s: %w", req.ImageKey, err))
	}
	defer rc.Close()
	if info.Size != req.Size || info.SHA256 != req.SHA256 {
		return command.NewError(command.CodeCorrupt, fmt.Errorf("image %s: the store records %d bytes sha256 %s, the catalog %d bytes sha256 %s",
			req.ImageKey, info.Size, info.SHA256, req.Size, req.SHA256))
	}
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return command.NewError(command.CodeRetryable, fmt.Errorf("fetch %s: %w", req.ImageKey, err))
		}
		k, rerr := rc.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > req.Size {
				return command.NewError(command.CodeCorrupt, fmt.Errorf("image %s is longer than its recorded %d bytes", req.ImageKey, req.Size))
			}
			if _, werr := f.Write(buf[:k]); werr != nil {
				code := command.CodeRetryable
				if errors.Is(werr, syscall.ENOSPC) || errors.Is(werr, syscall.EDQUOT) {
					code = command.CodePermanent
				}
				return command.NewError(code, fmt.Errorf("spool %s: %w", f.Name(), werr))
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			code := command.CodeRetryable
			if errors.Is(rerr, store.ErrCorrupt) {
				code = command.CodeCorrupt
			}
			return command.NewError(code, fmt.Errorf("fetch %s: %w", req.ImageKey, rerr))
		}
	}
	if n != req.Size {
		return command.NewError(command.CodeCorrupt, fmt.Errorf("image %s: fetched %d bytes, the catalog records %d",
			req.ImageKey, n, req.Size))
	}
	if err := f.Close(); err != nil {
		return command.NewError(command.CodeRetryable, fmt.Errorf("spool %s: %w", f.Name(), err))
	}
	return nil
}
