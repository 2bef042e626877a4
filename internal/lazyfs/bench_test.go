package lazyfs

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWriteFsync appends 4 KiB records to a file, each followed by an
// fsync (as a NATS server with SyncAlways does), through the mount and in a
// plain directory of the same disk; and, for the overlay's own cost,
// through the mount without the fsync.
func BenchmarkWriteFsync(b *testing.B) {
	record := make([]byte, 4096)
	for i := range record {
		record[i] = byte(i)
	}
	run := func(b *testing.B, dir string, sync bool) {
		f, err := os.Create(filepath.Join(dir, "log"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(int64(len(record)))
		b.ResetTimer()
		for range b.N {
			if _, err := f.Write(record); err != nil {
				b.Fatal(err)
			}
			if sync {
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, b.TempDir(), true) })
	b.Run("lazyfs", func(b *testing.B) {
		_, _, mnt := mountT(b)
		run(b, mnt, true)
	})
	b.Run("lazyfs-nofsync", func(b *testing.B) {
		lfs, _, mnt := mountT(b)
		run(b, mnt, false)
		b.StopTimer()
		lfs.PowerLoss() // Unmount would write it all back
	})
}
