package main

import (
	"context"
	"fmt"
	"syscall"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
)

func init() { register("kill", kill) }

// kill: a running task killed with SIGKILL exits 137 (128+9; a SIGTERM
// would be ignored by the container's PID 1, which has no handler), a
// task already gone cannot be killed, and Delete reports the same status.
func kill(ctx context.Context, env *Env) error {
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	c, err := newContainer(ctx, env, img, "kill", "sleep", "1000")
	if err != nil {
		return err
	}
	defer removeContainer(env, c)
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		return fmt.Errorf("new task: %w", err)
	}
	statusC, err := task.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if status, err := task.Status(ctx); err != nil || status.Status != containerd.Running {
		return fmt.Errorf("status after start = %+v, %v; want running", status, err)
	}
	pids, err := task.Pids(ctx)
	if err != nil || len(pids) != 1 || pids[0].Pid != task.Pid() {
		return fmt.Errorf("pids = %+v, %v; want [%d]", pids, err, task.Pid())
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	exit, err := waitExit(ctx, statusC)
	if err != nil {
		return fmt.Errorf("wait: %w", err)
	}
	if exit.ExitCode() != 128+uint32(syscall.SIGKILL) {
		return fmt.Errorf("exit after SIGKILL = %d, want 137", exit.ExitCode())
	}
	if status, err := task.Status(ctx); err != nil || status.Status != containerd.Stopped || status.ExitStatus != 137 {
		return fmt.Errorf("status after exit = %+v, %v; want stopped 137", status, err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill of an exited task: %v, want not found", err)
	}
	deleted, err := task.Delete(ctx)
	if err != nil || deleted.ExitCode() != 137 {
		return fmt.Errorf("delete = %d, %v; want 137", deleted.ExitCode(), err)
	}
	if _, err := c.Task(ctx, nil); !errdefs.IsNotFound(err) {
		return fmt.Errorf("task after delete: %v, want not found", err)
	}
	logf("SIGKILL gave exit 137")
	return nil
}
