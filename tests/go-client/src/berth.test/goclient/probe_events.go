package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/events"
	"github.com/containerd/containerd/images"
	"github.com/containerd/typeurl"
)

func init() { register("probe-events", probeEventsScenario) }

// probeEventsScenario: the events each step of a container's life publishes, with
// their fields, printed like probe (see probe.go) and compared with
// containerd 1.6.20's output in probe-events.golden. Events of one step
// are sorted, as their order across the daemon and the shim is not fixed.
// Needs -image.
func probeEventsScenario(ctx context.Context, env *Env) error {
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	id := fmt.Sprintf("pe-%d", os.Getpid())
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	eventC, errC := env.Client.Subscribe(subCtx, "namespace=="+env.Namespace)
	time.Sleep(200 * time.Millisecond)
	p := &prober{}
	step := func(name string, fn func() error) {
		err := fn()
		var lines []string
		deadline := time.After(1500 * time.Millisecond)
	collect:
		for {
			select {
			case e := <-eventC:
				lines = append(lines, describeEvent(e, id))
			case err := <-errC:
				lines = append(lines, "subscription: "+class(err))
				break collect
			case <-deadline:
				break collect
			}
		}
		sort.Strings(lines)
		p.line(name, err, "["+strings.Join(lines, "; ")+"]")
	}
	var c containerd.Container
	var task containerd.Task
	var proc containerd.Process
	step("container create", func() (err error) {
		c, err = newContainer(ctx, env, img, id, "sleep", "1000")
		return err
	})
	if c == nil {
		return nil
	}
	defer removeContainer(env, c)
	step("container update labels", func() error {
		_, err := c.SetLabels(ctx, map[string]string{"a": "1"})
		return err
	})
	step("task create", func() (err error) {
		task, err = c.NewTask(ctx, cio.NullIO)
		return err
	})
	if task == nil {
		return nil
	}
	step("task start", func() error { return task.Start(ctx) })
	step("task pause", func() error { return task.Pause(ctx) })
	step("task resume", func() error { return task.Resume(ctx) })
	spec, err := c.Spec(ctx)
	if err != nil {
		return err
	}
	pspec := *spec.Process
	pspec.Args = []string{"sh", "-c", "exit 4"}
	step("exec create", func() (err error) {
		proc, err = task.Exec(ctx, "ex", &pspec, cio.NullIO)
		return err
	})
	if proc != nil {
		step("exec start and exit", func() error {
			statusC, err := proc.Wait(ctx)
			if err != nil {
				return err
			}
			if err := proc.Start(ctx); err != nil {
				return err
			}
			_, err = waitExit(ctx, statusC)
			return err
		})
		step("exec delete", func() error { _, err := proc.Delete(ctx); return err })
	}
	step("task kill and exit", func() error {
		statusC, err := task.Wait(ctx)
		if err != nil {
			return err
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			return err
		}
		_, err = waitExit(ctx, statusC)
		return err
	})
	step("task delete", func() error { _, err := task.Delete(ctx); return err })
	step("container delete with snapshot", func() error { return c.Delete(ctx, containerd.WithSnapshotCleanup) })
	step("image create", func() error {
		_, err := env.Client.ImageService().Create(ctx, images.Image{Name: "probe/events:1", Target: img.Target(), Labels: map[string]string{"a": "1"}})
		return err
	})
	step("image update", func() error {
		_, err := env.Client.ImageService().Update(ctx, images.Image{Name: "probe/events:1", Labels: map[string]string{"b": "2"}}, "labels.b")
		return err
	})
	step("image delete", func() error { return env.Client.ImageService().Delete(ctx, "probe/events:1") })
	return nil
}

// describeEvent prints an envelope's topic and its event's fields, with
// the container id, pids and times reduced to what is stable.
func describeEvent(e *events.Envelope, id string) string {
	v, err := typeurl.UnmarshalAny(e.Event)
	if err != nil {
		return e.Topic + " undecodable: " + class(err)
	}
	s := func(x string) string { return strings.ReplaceAll(x, id, "ID") }
	var f string
	switch ev := v.(type) {
	case *apievents.ContainerCreate:
		f = fmt.Sprintf("id=%s image=%v runtime=%s", s(ev.ID), ev.Image != "", ev.Runtime.Name)
	case *apievents.ContainerUpdate:
		f = fmt.Sprintf("id=%s image=%v labels=%v snapshot=%s", s(ev.ID), ev.Image != "", keys(ev.Labels), s(ev.SnapshotKey))
	case *apievents.ContainerDelete:
		f = "id=" + s(ev.ID)
	case *apievents.TaskCreate:
		f = fmt.Sprintf("container=%s pid=%v bundle=%v rootfs=%d io=%v checkpoint=%q", s(ev.ContainerID), ev.Pid > 0, ev.Bundle != "", len(ev.Rootfs), ev.IO != nil, ev.Checkpoint)
	case *apievents.TaskStart:
		f = fmt.Sprintf("container=%s pid=%v", s(ev.ContainerID), ev.Pid > 0)
	case *apievents.TaskExit:
		f = fmt.Sprintf("container=%s id=%s pid=%v status=%d at=%v", s(ev.ContainerID), s(ev.ID), ev.Pid > 0, ev.ExitStatus, !ev.ExitedAt.IsZero())
	case *apievents.TaskDelete:
		f = fmt.Sprintf("container=%s id=%s pid=%v status=%d at=%v", s(ev.ContainerID), s(ev.ID), ev.Pid > 0, ev.ExitStatus, !ev.ExitedAt.IsZero())
	case *apievents.TaskPaused:
		f = "container=" + s(ev.ContainerID)
	case *apievents.TaskResumed:
		f = "container=" + s(ev.ContainerID)
	case *apievents.TaskExecAdded:
		f = fmt.Sprintf("container=%s exec=%s", s(ev.ContainerID), ev.ExecID)
	case *apievents.TaskExecStarted:
		f = fmt.Sprintf("container=%s exec=%s pid=%v", s(ev.ContainerID), ev.ExecID, ev.Pid > 0)
	case *apievents.SnapshotPrepare:
		f = fmt.Sprintf("key=%s parent=%v", s(ev.Key), ev.Parent != "")
	case *apievents.SnapshotCommit:
		f = fmt.Sprintf("key=%s name=%v", s(ev.Key), ev.Name != "")
	case *apievents.SnapshotRemove:
		f = "key=" + s(ev.Key)
	case *apievents.ImageCreate:
		f = fmt.Sprintf("name=%s labels=%v", ev.Name, keys(ev.Labels))
	case *apievents.ImageUpdate:
		f = fmt.Sprintf("name=%s labels=%v", ev.Name, keys(ev.Labels))
	case *apievents.ImageDelete:
		f = "name=" + ev.Name
	case *apievents.ContentDelete:
		f = "digest"
	default:
		f = fmt.Sprintf("%T", v)
	}
	return e.Topic + " " + f
}
