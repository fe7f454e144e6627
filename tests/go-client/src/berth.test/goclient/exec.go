package main

import (
	"context"
	"fmt"
	"syscall"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
)

func init() { register("exec", execScenario) }

// execScenario: a process exec'd into a running task with FIFO stdio (no
// TTY): its output, its exit code from Wait and from Delete, and that the
// exec id is free again afterwards.
func execScenario(ctx context.Context, env *Env) error {
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	c, err := newContainer(ctx, env, img, "exec", "sleep", "1000")
	if err != nil {
		return err
	}
	defer removeContainer(env, c)
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		return fmt.Errorf("new task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	pspec := spec.Process
	pspec.Args = []string{"sh", "-c", "echo out $0; echo err >&2; exit 3", "arg0"}
	var stdout, stderr buffer
	proc, err := task.Exec(ctx, "exec-1", pspec, captured(env, &stdout, &stderr))
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	if _, err := task.Exec(ctx, "exec-1", pspec, cio.NullIO); !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("second exec with the same id: %v, want already exists", err)
	}
	statusC, err := proc.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait exec: %w", err)
	}
	if err := proc.Start(ctx); err != nil {
		return fmt.Errorf("start exec: %w", err)
	}
	exit, err := waitExit(ctx, statusC)
	if err != nil {
		return fmt.Errorf("wait exec: %w", err)
	}
	if exit.ExitCode() != 3 {
		return fmt.Errorf("exec exit = %d, want 3", exit.ExitCode())
	}
	deleted, err := proc.Delete(ctx)
	if err != nil || deleted.ExitCode() != 3 {
		return fmt.Errorf("delete exec = %d, %v; want 3", deleted.ExitCode(), err)
	}
	if got := stdout.String(); got != "out arg0\n" {
		return fmt.Errorf("exec stdout = %q", got)
	}
	if got := stderr.String(); got != "err\n" {
		return fmt.Errorf("exec stderr = %q", got)
	}
	if _, err := task.LoadProcess(ctx, "exec-1", nil); !errdefs.IsNotFound(err) {
		return fmt.Errorf("load deleted exec: %v, want not found", err)
	}
	// The id is free again, and the init process never noticed.
	again, err := task.Exec(ctx, "exec-1", pspec, cio.NullIO)
	if err != nil {
		return fmt.Errorf("exec again with the freed id: %w", err)
	}
	if _, err := again.Delete(ctx); err != nil {
		return fmt.Errorf("delete an exec never started: %w", err)
	}
	if status, err := task.Status(ctx); err != nil || status.Status != containerd.Running {
		return fmt.Errorf("task status after exec = %+v, %v", status, err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	logf("exec printed its output and exited 3")
	return nil
}
