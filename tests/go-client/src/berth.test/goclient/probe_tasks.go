package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func init() { register("probe-tasks", probeTasksScenario) }

// probeTasksScenario: edge cases of tasks and processes, printed like
// probe (see probe.go) and compared with containerd 1.6.20's output in
// probe-tasks.golden. Needs -image.
func probeTasksScenario(ctx context.Context, env *Env) error {
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	p := &prober{}
	// containerd's runc shim keeps runc state under a global root, so the
	// id is unique to this run.
	c, err := newContainer(ctx, env, img, fmt.Sprintf("pt-%d", os.Getpid()), "sleep", "1000")
	if err != nil {
		return err
	}
	defer removeContainer(env, c)
	task, err := c.NewTask(ctx, cio.NullIO)
	p.line("task create", err)
	if err != nil {
		return err
	}
	_, err = c.NewTask(ctx, cio.NullIO)
	p.line("task create again", err)
	st, err := task.Status(ctx)
	p.line("task status created", err, st.Status)
	_, err = task.Exec(ctx, "early", processOf(ctx, c), cio.NullIO)
	p.line("exec before start", err)
	err = task.Start(ctx)
	p.line("task start", err)
	err = task.Start(ctx)
	p.line("task start again", err)
	err = c.Delete(ctx)
	p.line("container delete with a live task", err)
	_, err = task.Delete(ctx)
	p.line("task delete running", err)
	err = task.Pause(ctx)
	p.line("task pause", err)
	st, err = task.Status(ctx)
	p.line("task status paused", err, st.Status)
	err = task.Pause(ctx)
	p.line("task pause again", err)
	err = task.Resume(ctx)
	p.line("task resume", err)
	st, err = task.Status(ctx)
	p.line("task status resumed", err, st.Status)
	m, err := task.Metrics(ctx)
	if err == nil {
		p.line("task metrics", err, m.Data != nil && m.Data.TypeUrl != "", m.ID == c.ID())
	} else {
		p.line("task metrics", err)
	}

	spec := *processOf(ctx, c)
	_, err = task.Exec(ctx, "", &spec, cio.NullIO)
	p.line("exec empty id", err)
	spec.Args = []string{"cat"}
	var out buffer
	proc, err := task.Exec(ctx, "cat", &spec, cio.NewCreator(cio.WithStreams(strings.NewReader("to stdin\n"), &out, &out), cio.WithFIFODir(env.Dir)))
	p.line("exec cat with stdin", err)
	if err == nil {
		statusC, _ := proc.Wait(ctx)
		err = proc.Start(ctx)
		p.line("exec start", err)
		// (A second Start of a running exec hangs in containerd 1.6.)
		// cat echoes its input before stdin is closed.
		for i := 0; i < 100 && out.String() == ""; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		p.line("exec echoes stdin", nil, strings.TrimSpace(out.String()))
		err = proc.CloseIO(ctx, containerd.WithStdinCloser)
		p.line("exec close stdin", err)
		exit, err := waitExit(ctx, statusC)
		p.line("exec exit after stdin closed", err, exit.ExitCode())
		pst, err := proc.Status(ctx)
		p.line("exec status after exit", err, pst.Status, pst.ExitStatus)
		err = proc.Kill(ctx, syscall.SIGKILL)
		p.line("exec kill after exit", err)
		ds, err := proc.Delete(ctx)
		p.line("exec delete", err, ds.ExitCode())
		_, err = proc.Delete(ctx)
		p.line("exec delete again", err)
		_, err = proc.Wait(ctx)
		p.line("exec wait after delete", err)
	}
	spec.Args = []string{"sleep", "1000"}
	sleeper, err := task.Exec(ctx, "sleeper", &spec, cio.NullIO)
	p.line("exec sleeper", err)
	if err == nil {
		err = sleeper.Kill(ctx, syscall.SIGKILL)
		p.line("exec kill before start", err)
		statusC, _ := sleeper.Wait(ctx)
		p.line("exec start sleeper", sleeper.Start(ctx))
		pids, err := task.Pids(ctx)
		p.line("task pids with an exec", err, len(pids))
		_, err = sleeper.Delete(ctx)
		p.line("exec delete running", err)
		p.line("exec kill", sleeper.Kill(ctx, syscall.SIGKILL))
		exit, err := waitExit(ctx, statusC)
		p.line("exec exit after kill", err, exit.ExitCode())
		_, err = sleeper.Delete(ctx)
		p.line("exec delete killed", err)
	}

	statusC, err := task.Wait(ctx)
	p.line("task wait", err)
	err = task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
	p.line("task kill all", err)
	exit, err := waitExit(ctx, statusC)
	p.line("task exit", err, exit.ExitCode())
	_, err = task.Exec(ctx, "late", &spec, cio.NullIO)
	p.line("exec after exit", err)
	ds, err := task.Delete(ctx)
	p.line("task delete", err, ds.ExitCode())
	_, err = task.Delete(ctx)
	p.line("task delete again", err)
	_, err = task.Wait(ctx)
	p.line("task wait after delete", err)
	_, err = task.Status(ctx)
	p.line("task status after delete", err)

	// Killing a task that was created but never started.
	task, err = c.NewTask(ctx, cio.NullIO)
	p.line("task create after delete", err)
	if err == nil {
		statusC, _ := task.Wait(ctx)
		p.line("task kill created", task.Kill(ctx, syscall.SIGKILL))
		exit, err := waitExit(ctx, statusC)
		p.line("task exit of a created task killed", err, exit.ExitCode())
		ds, err := task.Delete(ctx)
		p.line("task delete killed before start", err, ds.ExitCode())
	}
	return nil
}

// processOf is a copy of container c's process, the template of execs.
func processOf(ctx context.Context, c containerd.Container) *specs.Process {
	s, err := c.Spec(ctx)
	if err != nil || s.Process == nil {
		panic(fmt.Sprintf("spec of %s: %v", c.ID(), err))
	}
	process := *s.Process
	return &process
}
