package main

// Helpers shared by the shim_* scenarios: a pulled image, a running task
// to exec into, and what /proc says about the task's shim.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// shimTask is a container with a running task, and how to remove both.
type shimTask struct {
	container containerd.Container
	task      containerd.Task
	// spec is the container's OCI spec, a base for exec process specs.
	spec *oci.Spec
}

// shimRun creates container id from image running `sleep 300` and starts
// its task (no stdio). opts are added to the task's create options.
func shimRun(ctx context.Context, env *Env, image containerd.Image, id string, opts ...containerd.NewTaskOpts) (*shimTask, error) {
	return shimRunContainer(ctx, env, image, id, nil, opts...)
}

// shimRunContainer is shimRun with more container options (after the
// snapshot and spec).
func shimRunContainer(ctx context.Context, env *Env, image containerd.Image, id string, extra []containerd.NewContainerOpts, opts ...containerd.NewTaskOpts) (*shimTask, error) {
	copts := append([]containerd.NewContainerOpts{
		containerd.WithNewSnapshot(id+"-snapshot", image),
		containerd.WithNewSpec(oci.WithImageConfig(image), oci.WithProcessArgs("sleep", "300")),
	}, extra...)
	container, err := env.Client.NewContainer(ctx, id, copts...)
	if err != nil {
		return nil, fmt.Errorf("new container %s: %w", id, err)
	}
	t := &shimTask{container: container}
	if t.spec, err = container.Spec(ctx); err != nil {
		t.remove(ctx)
		return nil, fmt.Errorf("spec of %s: %w", id, err)
	}
	if t.task, err = container.NewTask(ctx, cio.NullIO, opts...); err != nil {
		t.remove(ctx)
		return nil, fmt.Errorf("new task %s: %w", id, err)
	}
	if err := t.task.Start(ctx); err != nil {
		t.remove(ctx)
		return nil, fmt.Errorf("start task %s: %w", id, err)
	}
	return t, nil
}

// process is an exec process spec: the container's with other args.
func (t *shimTask) process(terminal bool, args ...string) *specs.Process {
	p := *t.spec.Process
	p.Args = args
	p.Terminal = terminal
	return &p
}

// kill kills the task with SIGKILL and waits for its exit.
func (t *shimTask) kill(ctx context.Context) error {
	status, err := t.task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if err := t.task.Kill(ctx, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	select {
	case s := <-status:
		if s.ExitCode() != 128+uint32(syscall.SIGKILL) {
			return fmt.Errorf("exit status after SIGKILL = %d", s.ExitCode())
		}
	case <-time.After(30 * time.Second):
		return errors.New("no exit 30s after SIGKILL")
	}
	return nil
}

// remove kills and deletes the task (if any), then the container and its
// snapshot, reporting the first error.
func (t *shimTask) remove(ctx context.Context) error {
	var first error
	if t.task != nil {
		if _, err := t.task.Delete(ctx, containerd.WithProcessKill); err != nil {
			first = fmt.Errorf("delete task: %w", err)
		}
	}
	if err := t.container.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && first == nil {
		first = fmt.Errorf("delete container: %w", err)
	}
	return first
}

// shimFIFODir is a directory of env.Dir for the Go client's FIFOs (its
// default is /run/containerd/fifo, which belongs to a real containerd).
func shimFIFODir(env *Env) (string, error) {
	dir := filepath.Join(env.Dir, "fifo")
	return dir, os.MkdirAll(dir, 0o700)
}

// shimPPid is the parent of pid, from /proc/PID/stat.
func shimPPid(pid uint32) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.Atoi(fields[1])
}

// shimPidOf is the pid of the task's shim: the parent of its init process
// (runc's init is reparented to the shim, a child subreaper).
func shimPidOf(t containerd.Task) (int, error) {
	shim, err := shimPPid(t.Pid())
	if err != nil {
		return 0, fmt.Errorf("parent of init %d: %w", t.Pid(), err)
	}
	return shim, nil
}

// shimCmdline is /proc/PID/cmdline split at its NULs.
func shimCmdline(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(data), "\x00"), "\x00"), nil
}

// shimChildren lists the processes whose parent is pid, with their
// command lines.
func shimChildren(pid int) (map[int]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int]string{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		parent, err := shimPPid(uint32(child))
		if err != nil || parent != pid {
			continue
		}
		args, _ := shimCmdline(child)
		children[child] = strings.Join(args, " ")
	}
	return children, nil
}

// shimFIFOsOpen lists the descriptors of pid that point under dir.
func shimFIFOsOpen(pid int, dir string) ([]string, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	var open []string
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err == nil && strings.HasPrefix(target, dir) {
			open = append(open, e.Name()+" -> "+target)
		}
	}
	return open, nil
}
