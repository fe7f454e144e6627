package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func init() { register("shim-cmdline", shimCmdlineScenario) }

// shimCmdlineScenario: the long-lived shim's command line is containerd's
// (`SHIM -namespace NS -id ID -address ADDR …`, no `start`), which is how
// tools find running shims in /proc; it runs the shim binary it names and
// leads a session of its own.
func shimCmdlineScenario(ctx context.Context, env *Env) error {
	image, err := pull(ctx, env)
	if err != nil {
		return err
	}
	const id = "shim-cmdline"
	t, err := shimRun(ctx, env, image, id)
	if err != nil {
		return err
	}
	defer t.remove(ctx)
	shim, err := shimPidOf(t.task)
	if err != nil {
		return err
	}
	args, err := shimCmdline(shim)
	if err != nil {
		return err
	}
	logf("shim %d: %q", shim, args)
	for _, a := range args[1:] {
		if a == "start" {
			return fmt.Errorf("the serving shim's command line has start: %q", args)
		}
	}
	want := map[string]string{"-namespace": env.Namespace, "-id": id, "-address": env.Address}
	for flag, value := range want {
		if got := shimFlag(args, flag); got != value {
			return fmt.Errorf("shim command line %q: %s = %q, want %q", args, flag, got, value)
		}
	}
	if !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim-") {
		return fmt.Errorf("shim argv[0] %q is not a shim binary", args[0])
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", shim))
	if err != nil {
		return err
	}
	if exe != args[0] {
		return fmt.Errorf("shim runs %q but its argv[0] is %q", exe, args[0])
	}
	sid, err := shimStatField(shim, 3)
	if err != nil {
		return err
	}
	if sid != fmt.Sprint(shim) {
		return fmt.Errorf("shim %d is in session %s, want its own", shim, sid)
	}
	return t.kill(ctx)
}

// shimFlag is the value after flag in args, or "".
func shimFlag(args []string, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return args[i+1]
		}
	}
	return ""
}

// shimStatField is field n (0 = state) after the command name in
// /proc/PID/stat: 1 ppid, 2 pgrp, 3 session.
func shimStatField(pid int, n int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) <= n {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return fields[n], nil
}
