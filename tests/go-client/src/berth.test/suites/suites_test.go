// Package suites runs containerd 1.6's own conformance suites for content
// stores and snapshotters against a containerd-API daemon, through the Go
// client's remote ContentStore and SnapshotService, as containerd's
// integration/client tests run them against containerd.
//
// Usage: BERTH_ADDRESS=SOCK go test berth.test/suites (or the binary of
// `go test -c`). The snapshotter suite mounts what the daemon returns, so
// it needs root.
package suites

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/content"
	contentsuite "github.com/containerd/containerd/content/testsuite"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	"github.com/containerd/containerd/mount"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/snapshots"
	snapshotsuite "github.com/containerd/containerd/snapshots/testsuite"
)

func connect(t *testing.T) *containerd.Client {
	address := os.Getenv("BERTH_ADDRESS")
	if address == "" {
		t.Fatal("BERTH_ADDRESS names no daemon socket")
	}
	client, err := containerd.New(address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatalf("connect to %s: %v", address, err)
	}
	return client
}

func TestContent(t *testing.T) {
	contentsuite.ContentSuite(t, "content", contentStore(t))
}

// The daemon's default content sharing policy is containerd's: shared.
func TestContentCrossNSShared(t *testing.T) {
	contentsuite.ContentCrossNSSharedSuite(t, "crossns", contentStore(t))
}

func TestSnapshotter(t *testing.T) {
	snapshotsuite.SnapshotterSuite(t, "overlayfs", snapshotter(t, "overlayfs"))
}

// contentStore gives each test the remote store and, as containerd's
// integration test does, a fresh namespace under a lease per context the
// suite asks for; cleanup aborts and deletes what each namespace kept.
func contentStore(t *testing.T) contentsuite.StoreInitFn {
	return func(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
		client := connect(t)
		var (
			count uint64
			cs    = client.ContentStore()
			name  = contentsuite.Name(ctx)
		)
		wrap := func(ctx context.Context) (context.Context, func(context.Context) error, error) {
			n := atomic.AddUint64(&count, 1)
			ctx = namespaces.WithNamespace(ctx, fmt.Sprintf("%s-n%d", name, n))
			return client.WithLease(ctx)
		}
		ctx = contentsuite.SetContextWrapper(ctx, wrap)
		cleanup := func() error {
			defer client.Close()
			for i := uint64(1); i <= atomic.LoadUint64(&count); i++ {
				ctx := namespaces.WithNamespace(ctx, fmt.Sprintf("%s-n%d", name, i))
				statuses, err := cs.ListStatuses(ctx)
				if err != nil {
					return err
				}
				for _, st := range statuses {
					if err := cs.Abort(ctx, st.Ref); err != nil && !errdefs.IsNotFound(err) {
						return fmt.Errorf("abort %s: %w", st.Ref, err)
					}
				}
				err = cs.Walk(ctx, func(info content.Info) error {
					if err := cs.Delete(ctx, info.Digest); err != nil && !errdefs.IsNotFound(err) {
						return err
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		}
		return ctx, cs, cleanup, nil
	}
}

// snapshotter gives each test the remote snapshotter with every call made
// under a lease of its own, so the daemon's collector keeps the snapshots
// the suite prepares without a root label; cleanup deletes the lease.
func snapshotter(t *testing.T, name string) snapshotsuite.SnapshotterFunc {
	return func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		client := connect(t)
		lease, err := client.LeasesService().Create(ctx, leases.WithRandomID())
		if err != nil {
			client.Close()
			return nil, nil, err
		}
		sn := leased{client.SnapshotService(name), lease.ID}
		cleanup := func() error {
			defer client.Close()
			return client.LeasesService().Delete(ctx, lease, leases.SynchronousDelete)
		}
		return sn, cleanup, nil
	}
}

// leased is a snapshotter whose every call runs under lease id.
type leased struct {
	snapshots.Snapshotter
	id string
}

func (l leased) ctx(ctx context.Context) context.Context { return leases.WithLease(ctx, l.id) }

func (l leased) Stat(ctx context.Context, key string) (snapshots.Info, error) {
	return l.Snapshotter.Stat(l.ctx(ctx), key)
}

func (l leased) Update(ctx context.Context, info snapshots.Info, fieldpaths ...string) (snapshots.Info, error) {
	return l.Snapshotter.Update(l.ctx(ctx), info, fieldpaths...)
}

func (l leased) Usage(ctx context.Context, key string) (snapshots.Usage, error) {
	return l.Snapshotter.Usage(l.ctx(ctx), key)
}

func (l leased) Mounts(ctx context.Context, key string) ([]mount.Mount, error) {
	return l.Snapshotter.Mounts(l.ctx(ctx), key)
}

func (l leased) Prepare(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return l.Snapshotter.Prepare(l.ctx(ctx), key, parent, opts...)
}

func (l leased) View(ctx context.Context, key, parent string, opts ...snapshots.Opt) ([]mount.Mount, error) {
	return l.Snapshotter.View(l.ctx(ctx), key, parent, opts...)
}

func (l leased) Commit(ctx context.Context, name, key string, opts ...snapshots.Opt) error {
	return l.Snapshotter.Commit(l.ctx(ctx), name, key, opts...)
}

func (l leased) Remove(ctx context.Context, key string) error {
	return l.Snapshotter.Remove(l.ctx(ctx), key)
}

func (l leased) Walk(ctx context.Context, fn snapshots.WalkFunc, filters ...string) error {
	return l.Snapshotter.Walk(l.ctx(ctx), fn, filters...)
}
