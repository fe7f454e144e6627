package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/runtime/v2/runc/options"
)

func init() { register("shim-cgroup", shimCgroupScenario) }

// shimCgroupScenario: the runc option ShimCgroup, given as a task option
// (WithShimCgroup) or in the container's runtime options, puts the shim in
// that cgroup — in every hierarchy where it exists on a v1 or hybrid host,
// in the one hierarchy on a unified host. A cgroup that does not exist
// fails the task's create and leaves no shim.
func shimCgroupScenario(ctx context.Context, env *Env) error {
	image, err := pull(ctx, env)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("/berth-test-shim-%d", os.Getpid())
	dirs, err := shimMakeCgroup(name)
	defer shimRemoveCgroup(dirs)
	if err != nil {
		return err
	}
	logf("cgroup %s in %d hierarchies", name, len(dirs))

	t, err := shimRun(ctx, env, image, "shim-cgroup-task", containerd.WithShimCgroup(name))
	if err != nil {
		return err
	}
	defer t.remove(ctx)
	if err := shimInCgroup(t.task, dirs); err != nil {
		return fmt.Errorf("WithShimCgroup: %w", err)
	}

	r, err := shimRunContainer(ctx, env, image, "shim-cgroup-runtime", []containerd.NewContainerOpts{
		containerd.WithRuntime("io.containerd.runc.v2", &options.Options{ShimCgroup: name}),
	})
	if err != nil {
		return fmt.Errorf("runtime options: %w", err)
	}
	defer r.remove(ctx)
	if err := shimInCgroup(r.task, dirs); err != nil {
		return fmt.Errorf("runtime options: %w", err)
	}

	// A cgroup that exists nowhere.
	missing := name + "-missing"
	_, err = shimRun(ctx, env, image, "shim-cgroup-missing", containerd.WithShimCgroup(missing))
	if err == nil {
		return fmt.Errorf("a task with shim cgroup %s (which does not exist) was created", missing)
	}
	logf("missing cgroup: %v", err)
	if shims := shimProcessesOf("shim-cgroup-missing"); len(shims) != 0 {
		return fmt.Errorf("shims left after the failed create: %v", shims)
	}
	if err := t.kill(ctx); err != nil {
		return err
	}
	return r.kill(ctx)
}

// shimInCgroup checks that the task's shim is listed in each cgroup dir.
func shimInCgroup(task containerd.Task, dirs []string) error {
	shim, err := shimPidOf(task)
	if err != nil {
		return err
	}
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			return err
		}
		if !shimListed(string(data), shim) {
			return fmt.Errorf("shim %d is not in %s (procs %q)", shim, dir, strings.Fields(string(data)))
		}
	}
	logf("shim %d is in all %d", shim, len(dirs))
	return nil
}

func shimListed(procs string, pid int) bool {
	for _, f := range strings.Fields(procs) {
		if f == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}

// shimHierarchies lists the mount points of cgroup hierarchies: the one
// cgroup2 mount on a unified host, else every cgroup (v1) mount and a
// hybrid host's cgroup2 mount.
func shimHierarchies() ([]string, error) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}, nil
	}
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var mounts []string
	for _, line := range strings.Split(string(data), "\n") {
		parts := strings.SplitN(line, " - ", 2)
		if len(parts) != 2 {
			continue
		}
		fields, rest := strings.Fields(parts[0]), strings.Fields(parts[1])
		if len(fields) > 4 && len(rest) > 0 && (rest[0] == "cgroup" || rest[0] == "cgroup2") {
			mounts = append(mounts, fields[4])
		}
	}
	if len(mounts) == 0 {
		return nil, errors.New("no cgroup hierarchy mounted")
	}
	return mounts, nil
}

// shimMakeCgroup creates cgroup name in every hierarchy; returns the dirs
// made (also on error, for the cleanup).
func shimMakeCgroup(name string) ([]string, error) {
	hierarchies, err := shimHierarchies()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, h := range hierarchies {
		dir := filepath.Join(h, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return dirs, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		dirs = append(dirs, dir)
		// A v1 cpuset takes no process until it has cpus and mems (as
		// containerd's cgroups.New sets them, from the parent).
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			value, err := os.ReadFile(filepath.Join(h, file))
			if err != nil {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, file), value, 0); err != nil {
				return dirs, fmt.Errorf("set %s of %s: %w", file, dir, err)
			}
		}
	}
	return dirs, nil
}

// shimRemoveCgroup removes the cgroup dirs once the shims in them have
// exited (berthd shuts a deleted task's shim down in the background); a
// process still there after 10 s is moved to the hierarchy's root first.
func shimRemoveCgroup(dirs []string) {
	deadline := time.Now().Add(10 * time.Second)
	for _, dir := range dirs {
		for os.Remove(dir) != nil {
			if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				for _, pid := range strings.Fields(string(data)) {
					_ = os.WriteFile(filepath.Join(filepath.Dir(dir), "cgroup.procs"), []byte(pid), 0)
				}
				if err := os.Remove(dir); err != nil {
					fmt.Fprintf(os.Stderr, "cannot remove cgroup %s: %v\n", dir, err)
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// shimProcessesOf lists processes whose command line has `-id id`.
func shimProcessesOf(id string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args, err := shimCmdline(pid)
		if err == nil && shimFlag(args, "-id") == id {
			found = append(found, fmt.Sprintf("%d %q", pid, args))
		}
	}
	return found
}
