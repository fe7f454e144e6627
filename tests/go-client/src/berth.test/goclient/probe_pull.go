package main

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/snapshots"
)

func init() { register("probe-pull", probePull) }

// probePull: what a pull with unpack leaves behind, printed like probe
// (see probe.go) and compared with containerd 1.6.20's output in
// probe-pull.golden: every blob's labels and every snapshot's kind and
// labels, with digests, the registry's address and times masked. Needs
// -image.
func probePull(ctx context.Context, env *Env) error {
	img, err := pull(ctx, env)
	if err != nil {
		return err
	}
	host := strings.SplitN(env.Image, "/", 2)[0]
	digests := regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	times := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	mask := func(s string) string {
		s = strings.ReplaceAll(s, host, "REGISTRY")
		s = digests.ReplaceAllString(s, "DIGEST")
		return times.ReplaceAllString(s, "TIME")
	}
	labelLine := func(labels map[string]string) string {
		var out []string
		for k, v := range labels {
			out = append(out, mask(k)+"="+mask(v))
		}
		sort.Strings(out)
		return strings.Join(out, " ")
	}
	p := &prober{}
	var blobs []string
	err = env.Client.ContentStore().Walk(ctx, func(info content.Info) error {
		kind := "blob"
		switch info.Digest {
		case img.Target().Digest:
			kind = "manifest"
		}
		blobs = append(blobs, fmt.Sprintf("%s size>0=%v %s", kind, info.Size > 0, labelLine(info.Labels)))
		return nil
	})
	sort.Strings(blobs)
	for _, b := range blobs {
		p.line("content", nil, b)
	}
	p.line("content walk", err, len(blobs))
	var snaps []string
	err = env.Client.SnapshotService(snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		snaps = append(snaps, fmt.Sprintf("%s name=%s parent=%v %s", info.Kind, mask(info.Name), info.Parent != "", labelLine(info.Labels)))
		return nil
	})
	sort.Strings(snaps)
	for _, s := range snaps {
		p.line("snapshot", nil, s)
	}
	p.line("snapshot walk", err, len(snaps))
	stored, err := env.Client.ImageService().Get(ctx, env.Image)
	p.line("image", err, mask(stored.Name), stored.Target.MediaType, labelLine(stored.Labels))
	return nil
}
