package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/events"
	"github.com/containerd/typeurl"
)

func init() { register("flow", flow) }

// flow: the seed flow as a Go program runs it — pull and unpack from a
// registry, create a container on a new snapshot, a task with FIFO stdio
// waited on before it starts, its output and exit status, delete with the
// snapshot — while an events subscription watches each step.
func flow(ctx context.Context, env *Env) error {
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	if img.Name() != env.Image {
		return fmt.Errorf("pulled image is named %q, want %q", img.Name(), env.Image)
	}
	unpacked, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil || !unpacked {
		return fmt.Errorf("image unpacked in %s = %v, %v", snapshotter, unpacked, err)
	}
	logf("pulled and unpacked %s (%s)", img.Name(), img.Target().Digest)

	subCtx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	eventC, errC := env.Client.Subscribe(subCtx, `namespace==`+env.Namespace)
	// Let the subscription reach the daemon before anything happens.
	time.Sleep(200 * time.Millisecond)

	const id = "flow"
	c, err := newContainer(ctx, env, img, id, "sh", "-c", "echo hello from berth; echo to stderr >&2; exit 7")
	if err != nil {
		return err
	}
	defer removeContainer(env, c)
	if info, err := c.Info(ctx); err != nil || info.SnapshotKey != id || info.Snapshotter != snapshotter || info.Image != env.Image {
		return fmt.Errorf("container info = %+v, %v", info, err)
	}
	var stdout, stderr buffer
	task, err := c.NewTask(ctx, captured(env, &stdout, &stderr))
	if err != nil {
		return fmt.Errorf("new task: %w", err)
	}
	if status, err := task.Status(ctx); err != nil || status.Status != containerd.Created {
		return fmt.Errorf("task status before start = %+v, %v; want created", status, err)
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait before start: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	pid := task.Pid()
	exit, err := waitExit(ctx, statusC)
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if exit.ExitCode() != 7 || exit.ExitTime().IsZero() {
		return fmt.Errorf("exit = %d at %v, want 7 at a time", exit.ExitCode(), exit.ExitTime())
	}
	deleted, err := task.Delete(ctx)
	if err != nil {
		return fmt.Errorf("delete task: %w", err)
	}
	if deleted.ExitCode() != 7 {
		return fmt.Errorf("task delete reports exit %d, want 7", deleted.ExitCode())
	}
	if got := stdout.String(); got != "hello from berth\n" {
		return fmt.Errorf("stdout = %q", got)
	}
	if got := stderr.String(); got != "to stderr\n" {
		return fmt.Errorf("stderr = %q", got)
	}
	logf("task %d exited 7 with the output expected", pid)

	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container: %w", err)
	}
	if _, err := env.Client.SnapshotService(snapshotter).Stat(ctx, id); !errdefs.IsNotFound(err) {
		return fmt.Errorf("snapshot %s after delete with cleanup: %v, want not found", id, err)
	}
	if _, err := env.Client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		return fmt.Errorf("load deleted container: %v, want not found", err)
	}
	return checkEvents(ctx, env, eventC, errC, id, pid)
}

// checkEvents reads the subscription until it has seen the four events of
// the flow, each with the fields containerd gives it.
func checkEvents(ctx context.Context, env *Env, eventC <-chan *events.Envelope, errC <-chan error, id string, pid uint32) error {
	want := []string{"/containers/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}
	var seen []string
	deadline := time.After(10 * time.Second)
	for len(seen) < len(want) {
		var env0 *events.Envelope
		select {
		case env0 = <-eventC:
		case err := <-errC:
			return fmt.Errorf("subscription: %w", err)
		case <-deadline:
			return fmt.Errorf("events seen %v, want %v", seen, want)
		}
		if env0.Namespace != env.Namespace || env0.Timestamp.IsZero() {
			return fmt.Errorf("envelope %s: namespace %q timestamp %v", env0.Topic, env0.Namespace, env0.Timestamp)
		}
		ev, err := typeurl.UnmarshalAny(env0.Event)
		if err != nil {
			return fmt.Errorf("decode %s: %w", env0.Topic, err)
		}
		if err := checkEvent(env0.Topic, ev, env, id, pid); err != nil {
			return err
		}
		for _, topic := range want {
			if topic == env0.Topic {
				seen = append(seen, topic)
				logf("event %s %+v", env0.Topic, ev)
			}
		}
	}
	if strings.Join(seen, " ") != strings.Join(want, " ") {
		return fmt.Errorf("events in order %v, want %v", seen, want)
	}
	return nil
}

func checkEvent(topic string, ev interface{}, env *Env, id string, pid uint32) error {
	bad := func() error { return fmt.Errorf("event %s = %+v", topic, ev) }
	switch e := ev.(type) {
	case *apievents.ContainerCreate:
		if topic != "/containers/create" || e.ID != id || e.Image != env.Image || e.Runtime == nil || e.Runtime.Name != "io.containerd.runc.v2" {
			return bad()
		}
	case *apievents.TaskCreate:
		if topic != "/tasks/create" || e.ContainerID != id || e.Pid != pid || e.Bundle == "" || e.IO == nil || e.IO.Stdout == "" {
			return bad()
		}
	case *apievents.TaskStart:
		if topic != "/tasks/start" || e.ContainerID != id || e.Pid != pid {
			return bad()
		}
	case *apievents.TaskExit:
		if topic != "/tasks/exit" || e.ContainerID != id || e.ID != id || e.Pid != pid || e.ExitStatus != 7 || e.ExitedAt.IsZero() {
			return bad()
		}
	case *apievents.TaskDelete:
		if topic != "/tasks/delete" || e.ContainerID != id || e.Pid != pid || e.ExitStatus != 7 || e.ExitedAt.IsZero() {
			return bad()
		}
	}
	return nil
}
