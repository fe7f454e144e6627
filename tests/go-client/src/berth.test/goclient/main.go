// Command goclient drives a containerd-API daemon through containerd 1.6's
// own Go client (Debian's golang-github-containerd-containerd-dev), so
// berth's tests check berthd against a client someone else wrote.
//
// Usage: goclient -address SOCK [-namespace NS] [-image REF] SCENARIO
//
// Each scenario lives in a file of its own and registers itself in init().
// A scenario prints what it checked and returns an error on any difference;
// the program exits 1 with that error, 0 after "PASS SCENARIO".
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
)

// Env is what every scenario gets: a connected client, a namespaced context
// and the test's parameters.
type Env struct {
	Client    *containerd.Client
	Address   string
	Namespace string
	// Image is a reference the daemon can pull (plain HTTP on loopback).
	Image string
	// Dir is a scratch directory the scenario may use.
	Dir string
}

type scenario func(ctx context.Context, env *Env) error

var scenarios = map[string]scenario{}

func register(name string, fn scenario) {
	if _, dup := scenarios[name]; dup {
		panic("scenario registered twice: " + name)
	}
	scenarios[name] = fn
}

func logf(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
}

func main() {
	address := flag.String("address", "/run/berth/berth.sock", "daemon socket")
	namespace := flag.String("namespace", "goclient", "containerd namespace")
	image := flag.String("image", "", "image reference to pull")
	dir := flag.String("dir", os.TempDir(), "scratch directory")
	timeout := flag.Duration("timeout", 120*time.Second, "whole scenario timeout")
	flag.Parse()
	if flag.NArg() != 1 {
		names := make([]string, 0, len(scenarios))
		for name := range scenarios {
			names = append(names, name)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: goclient [flags] SCENARIO\nscenarios: %v\n", names)
		os.Exit(2)
	}
	name := flag.Arg(0)
	fn, ok := scenarios[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown scenario %q\n", name)
		os.Exit(2)
	}
	client, err := containerd.New(*address, containerd.WithTimeout(10*time.Second))
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL %s: connect: %v\n", name, err)
		os.Exit(1)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx = namespaces.WithNamespace(ctx, *namespace)
	env := &Env{Client: client, Address: *address, Namespace: *namespace, Image: *image, Dir: *dir}
	if err := fn(ctx, env); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", name, err)
		os.Exit(1)
	}
	fmt.Printf("PASS %s\n", name)
}
