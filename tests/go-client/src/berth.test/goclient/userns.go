package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"syscall"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func init() {
	register("userns", func(ctx context.Context, env *Env) error { return usernsRun(ctx, env, false) })
	register("userns-readonly", func(ctx context.Context, env *Env) error { return usernsRun(ctx, env, true) })
}

// usernsRun: a container whose snapshot is remapped (0 → 1000, 2000 ids)
// and whose spec maps the same ids runs as root inside, unprivileged
// outside; writable, or read-only from a remapped view.
func usernsRun(ctx context.Context, env *Env, readonly bool) error {
	const host, size = 1000, 2000
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	id := "userns"
	snapshot := containerd.WithRemappedSnapshot(id, img, host, host)
	script := "cat /proc/self/uid_map; id -u; echo data > /written && echo wrote"
	if readonly {
		id = "userns-ro"
		snapshot = containerd.WithRemappedSnapshotView(id, img, host, host)
		script = "cat /proc/self/uid_map; id -u; echo data > /written || echo refused"
	}
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: size}}
	specOpts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithUserNamespace(mapping, mapping),
		oci.WithProcessArgs("sh", "-c", script),
	}
	if readonly {
		specOpts = append(specOpts, oci.WithRootFSReadonly())
	}
	container, err := env.Client.NewContainer(ctx, id, snapshot, containerd.WithNewSpec(specOpts...))
	if err != nil {
		return fmt.Errorf("new container: %w", err)
	}
	defer container.Delete(ctx, containerd.WithSnapshotCleanup)
	// Separate buffers: the two streams are copied by two goroutines.
	var out, errs bytes.Buffer
	task, err := container.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &errs)))
	if err != nil {
		return fmt.Errorf("new task: %w", err)
	}
	defer task.Delete(ctx, containerd.WithProcessKill)
	exited, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	status := <-exited
	code, _, err := status.Result()
	if err != nil {
		return fmt.Errorf("exit: %w", err)
	}
	if _, err := task.Delete(ctx); err != nil {
		return fmt.Errorf("task delete: %w", err)
	}
	text := out.String()
	logf("container output:\n%s%s", text, errs.String())
	fields := strings.Fields(text)
	if code != 0 || len(fields) < 4 || fields[0] != "0" || fields[1] != "1000" || fields[2] != "2000" || fields[3] != "0" {
		return fmt.Errorf("exit %d, output %q: want uid_map 0 1000 2000 and uid 0", code, text)
	}
	want := "wrote"
	if readonly {
		want = "refused"
	}
	if !strings.Contains(text, want) || (readonly && !strings.Contains(errs.String(), "Read-only file system")) {
		return fmt.Errorf("output %q: want %q", text, want)
	}
	// The process really was unprivileged on the host: the file it wrote
	// belongs to the remapped root.
	if !readonly {
		mounts, err := env.Client.SnapshotService(containerd.DefaultSnapshotter).Mounts(ctx, id)
		if err != nil {
			return fmt.Errorf("mounts: %w", err)
		}
		if err := usernsCheckOwner(mounts[0].Options, host); err != nil {
			return err
		}
	}
	return nil
}

// usernsCheckOwner finds /written in the overlay upper directory named by
// the mount options and checks its host owner.
func usernsCheckOwner(options []string, uid uint32) error {
	for _, option := range options {
		if !strings.HasPrefix(option, "upperdir=") {
			continue
		}
		path := strings.TrimPrefix(option, "upperdir=") + "/written"
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			return fmt.Errorf("stat %s: %w", path, err)
		}
		if st.Uid != uid {
			return fmt.Errorf("%s is owned by %d on the host, want %d", path, st.Uid, uid)
		}
		logf("%s owned by host uid %d", path, st.Uid)
		return nil
	}
	return fmt.Errorf("no upperdir in mount options %v", options)
}
