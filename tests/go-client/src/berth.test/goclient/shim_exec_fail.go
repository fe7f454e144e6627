package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	"github.com/containerd/containerd/errdefs"
)

func init() { register("shim-exec-fail", shimExecFail) }

// shimExecFail: execs that cannot start (no such binary, a bad working
// directory; with pipes and with a terminal) return the error to Start,
// release a Wait made before it, leave no process and no open FIFO behind
// in the shim, and the container's task can still be killed and deleted.
func shimExecFail(ctx context.Context, env *Env) error {
	image, err := pull(ctx, env)
	if err != nil {
		return err
	}
	t, err := shimRun(ctx, env, image, "shim-exec-fail")
	if err != nil {
		return err
	}
	defer t.remove(ctx)
	shim, err := shimPidOf(t.task)
	if err != nil {
		return err
	}
	fifos, err := shimFIFODir(env)
	if err != nil {
		return err
	}
	cases := []struct {
		name     string
		terminal bool
		args     []string
		cwd      string
		want     string
	}{
		{"nobinary", false, []string{"/no/such/binary"}, "", "no such file"},
		{"badcwd", false, []string{"true"}, "/no/such/dir", "no such file"},
		{"nobinary-tty", true, []string{"/no/such/binary"}, "", "no such file"},
		{"badcwd-tty", true, []string{"true"}, "/no/such/dir", "no such file"},
	}
	for _, c := range cases {
		pspec := t.process(c.terminal, c.args...)
		if c.cwd != "" {
			pspec.Cwd = c.cwd
		}
		var stdout, stderr bytes.Buffer
		opts := []cio.Opt{cio.WithStreams(strings.NewReader(""), &stdout, &stderr), cio.WithFIFODir(fifos)}
		if c.terminal {
			opts = append(opts, cio.WithTerminal)
		}
		p, err := t.task.Exec(ctx, c.name, pspec, cio.NewCreator(opts...))
		if err != nil {
			return fmt.Errorf("%s: exec: %w", c.name, err)
		}
		fifoDir := p.IO().Config().Stdout[:strings.LastIndexByte(p.IO().Config().Stdout, '/')]
		status, err := p.Wait(ctx)
		if err != nil {
			return fmt.Errorf("%s: wait: %w", c.name, err)
		}
		err = p.Start(ctx)
		if err == nil {
			return fmt.Errorf("%s: start of %v (cwd %q) succeeded", c.name, c.args, c.cwd)
		}
		if !strings.Contains(strings.ToLower(err.Error()), c.want) {
			return fmt.Errorf("%s: start error %q does not say %q", c.name, err, c.want)
		}
		logf("%s: start failed: %v", c.name, err)
		select {
		case s := <-status:
			logf("%s: wait released with status %d", c.name, s.ExitCode())
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s: a Wait made before the failed start is still waiting", c.name)
		}
		// The client removed its FIFOs as Start failed: the shim must not
		// keep them open until the exec is deleted.
		if err := shimNothingLeft(shim, t.task.Pid(), fifoDir); err != nil {
			return fmt.Errorf("%s: after the failed start: %w", c.name, err)
		}
		if _, err := p.Delete(ctx, containerd.WithProcessKill); err != nil {
			return fmt.Errorf("%s: delete of the failed exec: %w", c.name, err)
		}
		if _, err := t.task.LoadProcess(ctx, c.name, nil); !errdefs.IsNotFound(err) {
			return fmt.Errorf("%s: the deleted exec still loads: %v", c.name, err)
		}
		if err := shimNothingLeft(shim, t.task.Pid(), fifoDir); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	// The task's only process is still its init, which can be killed and
	// deleted.
	pids, err := t.task.Pids(ctx)
	if err != nil {
		return fmt.Errorf("pids: %w", err)
	}
	if len(pids) != 1 || pids[0].Pid != t.task.Pid() {
		return fmt.Errorf("task pids = %v, want only init %d", pids, t.task.Pid())
	}
	if err := t.kill(ctx); err != nil {
		return err
	}
	if _, err := t.task.Delete(ctx); err != nil {
		return fmt.Errorf("delete task after failed execs: %w", err)
	}
	t.task = nil
	logf("task killed and deleted after the failed execs")
	return nil
}

// shimNothingLeft checks that the shim's only child is the init and that
// it holds nothing under the exec's FIFO directory, which the client
// removed.
func shimNothingLeft(shim int, init uint32, fifoDir string) error {
	// The shim's copies end as their pipes close: give them a moment.
	deadline := time.Now().Add(5 * time.Second)
	for {
		children, err := shimChildren(shim)
		if err != nil {
			return err
		}
		open, err := shimFIFOsOpen(shim, fifoDir)
		if err != nil {
			return err
		}
		var stray []string
		for pid, cmd := range children {
			if pid != int(init) {
				stray = append(stray, fmt.Sprintf("%d %s", pid, cmd))
			}
		}
		_, statErr := os.Stat(fifoDir)
		if len(stray) == 0 && len(open) == 0 && errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("left behind: shim children %v, shim fds %v, fifo dir %v", stray, open, statErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
