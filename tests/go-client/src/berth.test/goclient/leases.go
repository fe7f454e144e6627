package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func init() { register("leases", leasesScenario) }

// leasesScenario: content written under a lease the client made is a
// resource of that lease and survives only while it does; leases list by
// filter; deleting one synchronously collects what only it held.
func leasesScenario(ctx context.Context, env *Env) error {
	ls := env.Client.LeasesService()
	cs := env.Client.ContentStore()
	leased, done, err := env.Client.WithLease(ctx)
	if err != nil {
		return fmt.Errorf("with lease: %w", err)
	}
	id, ok := leases.FromContext(leased)
	if !ok || id == "" {
		return fmt.Errorf("WithLease gave no lease id")
	}
	all, err := ls.List(ctx, "id=="+id)
	if err != nil || len(all) != 1 || all[0].ID != id || all[0].CreatedAt.IsZero() {
		return fmt.Errorf("list id==%s = %+v, %v", id, all, err)
	}
	if exp := all[0].Labels["containerd.io/gc.expire"]; exp == "" {
		return fmt.Errorf("the client's lease has no expiry label: %v", all[0].Labels)
	} else if _, err := time.Parse(time.RFC3339, exp); err != nil {
		return fmt.Errorf("expiry label %q: %w", exp, err)
	}

	data := []byte("content held only by a lease\n")
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := content.WriteBlob(leased, cs, "lease-blob", bytes.NewReader(data), desc); err != nil {
		return fmt.Errorf("write blob under the lease: %w", err)
	}
	resources, err := ls.ListResources(ctx, leases.Lease{ID: id})
	if err != nil {
		return fmt.Errorf("list resources: %w", err)
	}
	if len(resources) != 1 || resources[0].ID != desc.Digest.String() || resources[0].Type != "content" {
		return fmt.Errorf("resources of the lease = %+v, want the blob", resources)
	}

	labelled, err := ls.Create(ctx, leases.WithID("labelled"), leases.WithLabels(map[string]string{"purpose": "test"}))
	if err != nil {
		return fmt.Errorf("create labelled lease: %w", err)
	}
	if _, err := ls.Create(ctx, leases.WithID("labelled")); !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("create a lease twice: %v, want already exists", err)
	}
	if got, err := leaseIDs(ctx, ls, "labels.purpose==test"); err != nil || got != "labelled" {
		return fmt.Errorf("leases with labels.purpose==test = %q, %v", got, err)
	}
	if got, err := leaseIDs(ctx, ls); err != nil || got != strings.Join(sorted("labelled", id), " ") {
		return fmt.Errorf("all leases = %q, %v", got, err)
	}
	if err := ls.AddResource(ctx, labelled, leases.Resource{ID: "snap-key", Type: "snapshots/overlayfs"}); err != nil {
		return fmt.Errorf("add a snapshot resource: %w", err)
	}
	if err := ls.AddResource(ctx, labelled, leases.Resource{ID: "x", Type: "bogus"}); !errdefs.IsNotImplemented(err) {
		return fmt.Errorf("add a resource of an unknown type: %v, want not implemented", err)
	}
	if err := ls.AddResource(ctx, labelled, leases.Resource{ID: "x", Type: "snapshots"}); !errdefs.IsInvalidArgument(err) {
		return fmt.Errorf("add a snapshot resource naming no snapshotter: %v, want invalid argument", err)
	}
	if err := ls.AddResource(ctx, labelled, leases.Resource{ID: "not-a-digest", Type: "content"}); !errdefs.IsInvalidArgument(err) {
		return fmt.Errorf("add a content resource that is no digest: %v, want invalid argument", err)
	}
	if err := ls.Delete(ctx, labelled); err != nil {
		return fmt.Errorf("delete labelled lease: %w", err)
	}

	if _, err := cs.Info(ctx, desc.Digest); err != nil {
		return fmt.Errorf("blob while its lease lives: %w", err)
	}
	if err := ls.Delete(ctx, leases.Lease{ID: id}, leases.SynchronousDelete); err != nil {
		return fmt.Errorf("delete the lease: %w", err)
	}
	if _, err := cs.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		return fmt.Errorf("blob after its only lease went (synchronously): %v, want not found", err)
	}
	if err := done(ctx); !errdefs.IsNotFound(err) {
		return fmt.Errorf("releasing a deleted lease: %v, want not found", err)
	}
	if err := ls.Delete(ctx, leases.Lease{ID: "never-made"}); !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete a lease that never was: %v, want not found", err)
	}
	logf("lease %s held its blob until it was deleted", id)
	return nil
}

func leaseIDs(ctx context.Context, ls leases.Manager, filters ...string) (string, error) {
	list, err := ls.List(ctx, filters...)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, l := range list {
		ids = append(ids, l.ID)
	}
	return strings.Join(sorted(ids...), " "), nil
}

func sorted(s ...string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
