package main

import (
	"context"
	"fmt"
	"time"

	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
)

func init() { register("images", imagesScenario) }

// imagesScenario: a pulled image as the image service lists it — filters
// by name, label and media type, labels set and read back with
// updated-at moving, a second name for the same target, and deletion.
func imagesScenario(ctx context.Context, env *Env) error {
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	is := env.Client.ImageService()
	stored, err := is.Get(ctx, env.Image)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	if stored.CreatedAt.IsZero() || stored.UpdatedAt.IsZero() || stored.Target.Digest != img.Target().Digest {
		return fmt.Errorf("stored image = %+v", stored)
	}
	if size, err := img.Size(ctx); err != nil || size <= 0 {
		return fmt.Errorf("image size = %d, %v", size, err)
	}
	config, err := img.Config(ctx)
	if err != nil || config.MediaType == "" {
		return fmt.Errorf("image config = %+v, %v", config, err)
	}
	if diffIDs, err := img.RootFS(ctx); err != nil || len(diffIDs) == 0 {
		return fmt.Errorf("rootfs diff ids = %v, %v", diffIDs, err)
	}

	time.Sleep(10 * time.Millisecond)
	set, err := is.Update(ctx, images.Image{Name: env.Image, Labels: map[string]string{"tier": "base"}}, "labels.tier")
	if err != nil || set.Labels["tier"] != "base" || set.Target.Digest != stored.Target.Digest {
		return fmt.Errorf("update labels.tier = %+v, %v", set, err)
	}
	updated, err := is.Get(ctx, env.Image)
	if err != nil || updated.Labels["tier"] != "base" || !updated.UpdatedAt.After(stored.UpdatedAt) || !updated.CreatedAt.Equal(stored.CreatedAt) {
		return fmt.Errorf("after set labels: %+v (before %+v), %v", updated, stored, err)
	}

	second := images.Image{Name: "berth.test/copy:1", Target: stored.Target, Labels: map[string]string{"tier": "copy"}}
	if _, err := is.Create(ctx, second); err != nil {
		return fmt.Errorf("create a second name: %w", err)
	}
	if _, err := is.Create(ctx, second); !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("create a name twice: %v, want already exists", err)
	}
	defer is.Delete(ctx, second.Name)
	cases := []struct {
		filters []string
		want    string
	}{
		{nil, sortedJoin(env.Image, second.Name)},
		{[]string{"name==" + env.Image}, env.Image},
		{[]string{"labels.tier==base"}, env.Image},
		{[]string{"labels.tier==copy", "labels.tier==base"}, sortedJoin(env.Image, second.Name)},
		{[]string{`name~=^berth\.test/`}, second.Name},
		{[]string{"target.mediatype==" + stored.Target.MediaType + ",labels.tier==copy"}, second.Name},
		{[]string{"labels.tier==none"}, ""},
	}
	for _, tc := range cases {
		list, err := env.Client.ListImages(ctx, tc.filters...)
		if err != nil {
			return fmt.Errorf("list images %q: %w", tc.filters, err)
		}
		var names []string
		for _, i := range list {
			names = append(names, i.Name())
		}
		if got := sortedJoin(names...); got != tc.want {
			return fmt.Errorf("list images %q = %q, want %q", tc.filters, got, tc.want)
		}
	}

	if err := is.Delete(ctx, second.Name, images.SynchronousDelete()); err != nil {
		return fmt.Errorf("delete the second name: %w", err)
	}
	if _, err := is.Get(ctx, second.Name); !errdefs.IsNotFound(err) {
		return fmt.Errorf("get a deleted image: %v, want not found", err)
	}
	if err := is.Delete(ctx, second.Name); !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete a deleted image: %v, want not found", err)
	}
	// The first name still holds the target's content.
	if _, err := env.Client.ContentStore().Info(ctx, stored.Target.Digest); err != nil {
		return fmt.Errorf("target after deleting the other name: %w", err)
	}
	if ok, err := img.IsUnpacked(ctx, snapshotter); err != nil || !ok {
		return fmt.Errorf("unpacked after deleting the other name = %v, %v", ok, err)
	}
	return nil
}

func sortedJoin(s ...string) string {
	out := ""
	for i, v := range sorted(s...) {
		if i > 0 {
			out += " "
		}
		out += v
	}
	return out
}
