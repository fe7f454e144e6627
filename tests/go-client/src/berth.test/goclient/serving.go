package main

import (
	"context"
	"fmt"
)

func init() { register("serving", serving) }

// serving: the health check the client and dockerd wait on, the version and
// the namespace labels a client reads before it has created anything.
func serving(ctx context.Context, env *Env) error {
	ok, err := env.Client.IsServing(ctx)
	if err != nil || !ok {
		return fmt.Errorf("IsServing = %v, %v", ok, err)
	}
	version, err := env.Client.Version(ctx)
	if err != nil {
		return fmt.Errorf("version: %w", err)
	}
	logf("server version %s revision %s", version.Version, version.Revision)
	labels, err := env.Client.NamespaceService().Labels(ctx, "never-created")
	if err != nil {
		return fmt.Errorf("labels of a namespace with no record: %w", err)
	}
	if len(labels) != 0 {
		return fmt.Errorf("labels of a namespace with no record = %v, want none", labels)
	}
	return nil
}
