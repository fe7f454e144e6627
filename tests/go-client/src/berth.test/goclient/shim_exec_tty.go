package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/cio"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func init() {
	register("shim-exec-tty", shimExecTTY)
	register("shim-resize", shimResize)
}

// shimCounter counts the bytes written to it and how many were NUL.
type shimCounter struct {
	total, nul int64
}

func (c *shimCounter) Write(p []byte) (int, error) {
	atomic.AddInt64(&c.total, int64(len(p)))
	atomic.AddInt64(&c.nul, int64(bytes.Count(p, []byte{0})))
	return len(p), nil
}

// shimExecTTY: an exec with a terminal, as the Go client makes it
// (Terminal in the process spec and cio.WithTerminal), runs, and 1 MiB it
// writes to the terminal arrives whole. /dev/zero has no newlines, so the
// terminal's \n → \r\n translation cannot change the count.
func shimExecTTY(ctx context.Context, env *Env) error {
	image, err := pull(ctx, env)
	if err != nil {
		return err
	}
	t, err := shimRun(ctx, env, image, "shim-exec-tty")
	if err != nil {
		return err
	}
	defer t.remove(ctx)
	fifos, err := shimFIFODir(env)
	if err != nil {
		return err
	}
	// The request's terminal flag (from cio) decides, whatever the spec
	// says: containerd's shim copies it into the exec's process spec.
	const size = 1 << 20
	for _, specTerminal := range []bool{true, false} {
		out := &shimCounter{}
		pspec := t.process(specTerminal, "head", "-c", fmt.Sprint(size), "/dev/zero")
		id := fmt.Sprintf("tty-mib-%v", specTerminal)
		code, err := shimExecWait(ctx, t.task, id, pspec, nil,
			cio.NewCreator(cio.WithStreams(nil, out, nil), cio.WithTerminal, cio.WithFIFODir(fifos)))
		if err != nil {
			return fmt.Errorf("spec terminal %v: %w", specTerminal, err)
		}
		if code != 0 {
			return fmt.Errorf("tty exec (spec terminal %v) exited %d", specTerminal, code)
		}
		if out.total != size || out.nul != size {
			return fmt.Errorf("tty exec (spec terminal %v): got %d bytes (%d NUL), want %d", specTerminal, out.total, out.nul, size)
		}
		logf("tty exec (spec terminal %v) wrote %d bytes, all arrived", specTerminal, out.total)
	}
	// A terminal in the spec but none asked of cio: plain pipes, with
	// stdout and stderr apart.
	var stdout, stderr bytes.Buffer
	pspec := t.process(true, "sh", "-c", "echo out; echo err >&2; if [ -t 1 ]; then echo tty; fi")
	code, err := shimExecWait(ctx, t.task, "pipes", pspec, nil,
		cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(fifos)))
	if err != nil {
		return fmt.Errorf("spec terminal without cio terminal: %w", err)
	}
	if code != 0 || stdout.String() != "out\n" || stderr.String() != "err\n" {
		return fmt.Errorf("exec without cio terminal: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	logf("spec terminal without cio terminal: pipes")
	return t.kill(ctx)
}

// shimResize: ResizePty of processes without a terminal (the init, an
// exec) succeeds and does nothing, as containerd's shim answers; a
// terminal's new size is what the process inside sees.
func shimResize(ctx context.Context, env *Env) error {
	image, err := pull(ctx, env)
	if err != nil {
		return err
	}
	t, err := shimRun(ctx, env, image, "shim-resize")
	if err != nil {
		return err
	}
	defer t.remove(ctx)
	if err := t.task.Resize(ctx, 100, 40); err != nil {
		return fmt.Errorf("resize of an init without a terminal: %w", err)
	}
	fifos, err := shimFIFODir(env)
	if err != nil {
		return err
	}
	plain, err := t.task.Exec(ctx, "plain", t.process(false, "sleep", "300"), cio.NewCreator(cio.WithFIFODir(fifos)))
	if err != nil {
		return fmt.Errorf("exec without a terminal: %w", err)
	}
	if err := plain.Start(ctx); err != nil {
		return fmt.Errorf("start exec without a terminal: %w", err)
	}
	if err := plain.Resize(ctx, 100, 40); err != nil {
		return fmt.Errorf("resize of an exec without a terminal: %w", err)
	}
	logf("resize without a terminal: ok")
	plainExit, err := plain.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait exec: %w", err)
	}
	if err := plain.Kill(ctx, 9); err != nil {
		return fmt.Errorf("kill exec: %w", err)
	}
	<-plainExit

	// With a terminal: the shell waits for a line, then prints its size.
	out := &bytes.Buffer{}
	stdin, feed := shimPipe()
	pspec := t.process(true, "sh", "-c", "read line; busybox stty size")
	code, err := shimExecWait(ctx, t.task, "tty-size", pspec, func(p containerd.Process) error {
		if err := p.Resize(ctx, 123, 45); err != nil {
			return fmt.Errorf("resize of a terminal: %w", err)
		}
		feed <- "go\n"
		return nil
	}, cio.NewCreator(cio.WithStreams(stdin, out, nil), cio.WithTerminal, cio.WithFIFODir(fifos)))
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("tty exec exited %d: %q", code, out.String())
	}
	if !strings.Contains(out.String(), "45 123") {
		return fmt.Errorf("stty size after a resize to 123x45 printed %q", out.String())
	}
	logf("terminal resized to 123x45: %q", strings.TrimSpace(out.String()))
	if _, err := plain.Delete(ctx); err != nil {
		return fmt.Errorf("delete exec: %w", err)
	}
	return t.kill(ctx)
}

// shimPipe is a stdin for cio that gives what is sent on the channel and
// then stays open (an empty reader would close the terminal's input).
func shimPipe() (*shimLines, chan<- string) {
	ch := make(chan string, 4)
	return &shimLines{ch: ch}, ch
}

type shimLines struct {
	ch  chan string
	buf []byte
}

func (l *shimLines) Read(p []byte) (int, error) {
	if len(l.buf) == 0 {
		l.buf = []byte(<-l.ch)
	}
	n := copy(p, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

// shimExecWait runs an exec to its end: Exec, Wait, Start, then started (if
// any), the exit, the end of its output and Delete. Returns the exit code.
func shimExecWait(ctx context.Context, task containerd.Task, id string, spec *specs.Process, started func(containerd.Process) error, creator cio.Creator) (uint32, error) {
	p, err := task.Exec(ctx, id, spec, creator)
	if err != nil {
		return 0, fmt.Errorf("exec %s: %w", id, err)
	}
	defer p.Delete(ctx, containerd.WithProcessKill)
	status, err := p.Wait(ctx)
	if err != nil {
		return 0, fmt.Errorf("wait %s: %w", id, err)
	}
	if err := p.Start(ctx); err != nil {
		return 0, fmt.Errorf("start %s: %w", id, err)
	}
	if started != nil {
		if err := started(p); err != nil {
			return 0, err
		}
	}
	var code uint32
	select {
	case s := <-status:
		code = s.ExitCode()
	case <-time.After(60 * time.Second):
		return 0, fmt.Errorf("exec %s: no exit after 60s", id)
	}
	p.IO().Wait()
	if _, err := p.Delete(ctx); err != nil {
		return 0, fmt.Errorf("delete %s: %w", id, err)
	}
	return code, nil
}
