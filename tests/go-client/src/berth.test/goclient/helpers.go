package main

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/remotes/docker"
)

// snapshotter is the snapshotter every scenario unpacks into.
const snapshotter = "overlayfs"

// pull fetches and unpacks env.Image over plain HTTP, as a program using
// a loopback registry would.
func pull(ctx context.Context, env *Env) (containerd.Image, error) {
	if env.Image == "" {
		return nil, fmt.Errorf("this scenario needs -image")
	}
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchAllHosts)),
	})
	img, err := env.Client.Pull(ctx, env.Image,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithResolver(resolver))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", env.Image, err)
	}
	return img, nil
}

// newContainer makes container id from img, running args, with a fresh
// snapshot named id.
func newContainer(ctx context.Context, env *Env, img containerd.Image, id string, args ...string) (containerd.Container, error) {
	c, err := env.Client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(id, img),
		containerd.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs(args...)))
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	return c, nil
}

// removeContainer kills and deletes whatever of container c is left, for
// deferred cleanup; errors are only logged.
func removeContainer(env *Env, c containerd.Container) {
	// A fresh context: the scenario's may be what ran out.
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), env.Namespace), 20*time.Second)
	defer cancel()
	if task, err := c.Task(ctx, nil); err == nil {
		_ = task.Kill(ctx, syscall.SIGKILL)
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil {
			logf("cleanup: delete task %s: %v", c.ID(), err)
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		logf("cleanup: delete container %s: %v", c.ID(), err)
	}
}

// buffer is a bytes.Buffer safe for the copy goroutines cio runs.
type buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captured returns a creator of FIFO stdio (in env.Dir) writing to stdout
// and stderr.
func captured(env *Env, stdout, stderr *buffer) cio.Creator {
	return cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(env.Dir))
}

// waitExit waits for an exit on statusC, up to a bound.
func waitExit(ctx context.Context, statusC <-chan containerd.ExitStatus) (containerd.ExitStatus, error) {
	select {
	case status := <-statusC:
		return status, status.Error()
	case <-time.After(30 * time.Second):
		return containerd.ExitStatus{}, fmt.Errorf("no exit within 30s")
	case <-ctx.Done():
		return containerd.ExitStatus{}, ctx.Err()
	}
}
