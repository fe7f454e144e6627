package main

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/containerd/containerd"
	apievents "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/images"
	"github.com/containerd/containerd/leases"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/typeurl"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func init() { register("probe", probe) }

// probe: edge cases of the metadata services, each printed as one line
// "name: ERROR-CLASS [value]". It checks nothing itself: its output from
// containerd 1.6.20 is kept beside the program (probe.golden) and a test
// compares berthd's output with it line by line. Every line must come out
// the same on any run, so no times, pids or random ids are printed.
func probe(ctx context.Context, env *Env) error {
	p := &prober{}
	probeContainers(ctx, env, p)
	probeContent(ctx, env, p)
	probeSnapshots(ctx, env, p)
	probeImages(ctx, env, p)
	probeNamespaces(ctx, env, p)
	probeLeases(ctx, env, p)
	probeTasks(ctx, env, p)
	probeEvents(ctx, env, p)
	probeServer(ctx, env, p)
	return nil
}

// prober prints each line as it is made, so a hang shows where.
type prober struct{}

func (p *prober) line(name string, err error, value ...interface{}) {
	out := name + ": " + class(err)
	for _, v := range value {
		out += fmt.Sprintf(" %v", v)
	}
	fmt.Println(out)
}

// class names an error by containerd's error classes.
func class(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errdefs.IsNotFound(err):
		return "NotFound"
	case errdefs.IsAlreadyExists(err):
		return "AlreadyExists"
	case errdefs.IsInvalidArgument(err):
		return "InvalidArgument"
	case errdefs.IsFailedPrecondition(err):
		return "FailedPrecondition"
	case errdefs.IsNotImplemented(err):
		return "NotImplemented"
	case errdefs.IsUnavailable(err):
		return "Unavailable"
	case errdefs.IsCanceled(err):
		return "Canceled"
	case errdefs.IsDeadlineExceeded(err):
		return "DeadlineExceeded"
	default:
		return "Unknown"
	}
}

func keys(m map[string]string) string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return "{" + strings.Join(out, ",") + "}"
}

func probeContainers(ctx context.Context, env *Env, p *prober) {
	cs := env.Client.ContainerService()
	spec := func(id string) containerd.NewContainerOpts {
		return containerd.WithNewSpec(oci.WithProcessArgs("true"))
	}
	_, err := env.Client.NewContainer(ctx, "", spec(""))
	p.line("container create empty id", err)
	_, err = env.Client.NewContainer(ctx, "bad id!", spec(""))
	p.line("container create bad id", err)
	_, err = cs.Create(ctx, containers.Container{ID: "no-runtime"})
	p.line("container create without runtime or spec", err)
	_, err = env.Client.NewContainer(ctx, "p1", spec("p1"), containerd.WithContainerLabels(map[string]string{"a": "1", "b": "2"}))
	p.line("container create", err)
	_, err = env.Client.NewContainer(ctx, "p1", spec("p1"))
	p.line("container create again", err)
	_, err = env.Client.NewContainer(ctx, "p2", spec("p2"), containerd.WithContainerLabels(map[string]string{strings.Repeat("k", 5000): "v"}))
	p.line("container create with an oversized label", err)
	_, err = cs.Get(ctx, "never")
	p.line("container get missing", err)
	err = cs.Delete(ctx, "never")
	p.line("container delete missing", err)
	c, err := cs.Update(ctx, containers.Container{ID: "p1", Labels: map[string]string{"a": "x", "c": "3"}}, "labels.a", "labels.c")
	p.line("container update labels.a labels.c", err, keys(c.Labels))
	c, err = cs.Update(ctx, containers.Container{ID: "p1", Labels: map[string]string{"z": "9"}}, "labels")
	p.line("container update labels", err, keys(c.Labels))
	_, err = cs.Update(ctx, containers.Container{ID: "p1"}, "runtime")
	p.line("container update runtime", err)
	_, err = cs.Update(ctx, containers.Container{ID: "p1"}, "bogus")
	p.line("container update bogus field", err)
	_, err = cs.Update(ctx, containers.Container{ID: "p1", Snapshotter: "other"})
	p.line("container update snapshotter without paths", err)
	c, err = cs.Update(ctx, containers.Container{ID: "p1", Image: "img:1"}, "image")
	p.line("container update image", err, c.Image)
	_, err = cs.Update(ctx, containers.Container{ID: "never"}, "labels")
	p.line("container update missing", err)
	_, err = cs.Update(ctx, containers.Container{ID: ""}, "labels")
	p.line("container update empty id", err)
	c, err = cs.Get(ctx, "p1")
	p.line("container get", err, c.Runtime.Name, c.Spec != nil, keys(c.Labels), c.Image, c.SnapshotKey == "", c.CreatedAt.Before(c.UpdatedAt))
	_, err = cs.List(ctx, "labels.=")
	p.line("container list bad filter", err)
	err = cs.Delete(ctx, "p1")
	p.line("container delete", err)
}

func probeContent(ctx context.Context, env *Env, p *prober) {
	cs := env.Client.ContentStore()
	data := []byte("probe blob\n")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(data), Size: int64(len(data))}
	missing := digest.FromString("never written")
	_, err := cs.Info(ctx, missing)
	p.line("content info missing", err)
	err = content.WriteBlob(ctx, cs, "probe-1", bytes.NewReader(data), desc, content.WithLabels(map[string]string{"containerd.io/gc.root": "x", "a": "1"}))
	p.line("content write", err)
	err = content.WriteBlob(ctx, cs, "probe-2", bytes.NewReader(data), desc)
	p.line("content write again", err)
	w, err := cs.Writer(ctx, content.WithRef("probe-1"), content.WithDescriptor(desc))
	p.line("content writer for a held digest", err)
	if w != nil {
		w.Close()
	}
	info, err := cs.Info(ctx, desc.Digest)
	p.line("content info", err, info.Size, keys(info.Labels))
	info, err = cs.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"b": "2", "a": ""}}, "labels.b", "labels.a")
	p.line("content update labels.b labels.a", err, keys(info.Labels))
	info, err = cs.Update(ctx, content.Info{Digest: desc.Digest, Labels: map[string]string{"containerd.io/gc.root": "y"}})
	p.line("content update no paths", err, keys(info.Labels))
	_, err = cs.Update(ctx, content.Info{Digest: desc.Digest, Size: 1}, "size")
	p.line("content update size", err)
	_, err = cs.Update(ctx, content.Info{Digest: missing}, "labels")
	p.line("content update missing", err)
	n := 0
	err = cs.Walk(ctx, func(content.Info) error { n++; return nil }, "labels.containerd.io/gc.root==y")
	p.line("content walk unquoted dotted label", err, n)
	n = 0
	err = cs.Walk(ctx, func(content.Info) error { n++; return nil }, `labels."containerd.io/gc.root"==y`)
	p.line("content walk quoted label", err, n)
	_, err = cs.ReaderAt(ctx, ocispec.Descriptor{Digest: missing})
	p.line("content reader missing", err)
	ra, err := cs.ReaderAt(ctx, desc)
	if err == nil {
		buf := make([]byte, 5)
		var k int
		k, err = ra.ReadAt(buf, 6)
		p.line("content read at 6", err, k, string(buf[:k]))
		ra.Close()
	} else {
		p.line("content read at 6", err)
	}
	_, err = cs.Writer(ctx, content.WithRef(""))
	p.line("content writer empty ref", err)
	err = content.WriteBlob(ctx, cs, "probe-wrong", bytes.NewReader(data), ocispec.Descriptor{Digest: missing, Size: int64(len(data))})
	p.line("content write wrong digest", err)
	_, err = cs.Info(namespaces.WithNamespace(ctx, "probe-other"), desc.Digest)
	p.line("content info from another namespace", err)
	w, err = cs.Writer(ctx, content.WithRef("probe-status"), content.WithDescriptor(ocispec.Descriptor{Size: 100}))
	p.line("content writer", err)
	if w != nil {
		_, err = w.Write([]byte("12345"))
		p.line("content writer write", err)
		err = w.Commit(ctx, 100, "")
		p.line("content commit short", err)
		w.Close()
	}
	st, err := cs.Status(ctx, "probe-status")
	p.line("content status", err, st.Ref, st.Offset, st.Total)
	_, err = cs.Status(ctx, "never")
	p.line("content status missing", err)
	sts, err := cs.ListStatuses(ctx, "ref==probe-status")
	p.line("content list statuses ref==", err, len(sts))
	sts, err = cs.ListStatuses(ctx, `ref~=^probe`)
	p.line("content list statuses ref~=", err, len(sts))
	err = cs.Abort(ctx, "probe-status")
	p.line("content abort", err)
	err = cs.Abort(ctx, "probe-status")
	p.line("content abort again", err)
	err = cs.Delete(ctx, desc.Digest)
	p.line("content delete", err)
	err = cs.Delete(ctx, desc.Digest)
	p.line("content delete again", err)
}

func probeSnapshots(ctx context.Context, env *Env, p *prober) {
	sn := env.Client.SnapshotService(snapshotter)
	root := snapshots.WithLabels(map[string]string{"containerd.io/gc.root": "x"})
	_, err := sn.Prepare(ctx, "s-base-active", "", root)
	p.line("snapshot prepare", err)
	_, err = sn.Prepare(ctx, "s-base-active", "")
	p.line("snapshot prepare again", err)
	_, err = sn.Prepare(ctx, "s-orphan", "never")
	p.line("snapshot prepare missing parent", err)
	_, err = sn.Prepare(ctx, "s-child-of-active", "s-base-active")
	p.line("snapshot prepare on an active parent", err)
	_, err = sn.View(ctx, "s-view-of-active", "s-base-active")
	p.line("snapshot view of an active parent", err)
	err = sn.Commit(ctx, "s-base", "s-base-active", root)
	p.line("snapshot commit", err)
	err = sn.Commit(ctx, "s-base", "never")
	p.line("snapshot commit missing key to a taken name", err)
	err = sn.Commit(ctx, "s-new", "never")
	p.line("snapshot commit missing key", err)
	err = sn.Commit(ctx, "s-new", "s-base")
	p.line("snapshot commit a committed one", err)
	_, err = sn.Prepare(ctx, "s-base", "")
	p.line("snapshot prepare named as a committed one", err)
	_, err = sn.Mounts(ctx, "s-base")
	p.line("snapshot mounts of committed", err)
	_, err = sn.Mounts(ctx, "never")
	p.line("snapshot mounts missing", err)
	m, err := sn.Prepare(ctx, "s-child", "s-base", root)
	kinds := []string{}
	for _, mm := range m {
		kinds = append(kinds, mm.Type)
	}
	p.line("snapshot prepare child", err, kinds)
	info, err := sn.Stat(ctx, "s-child")
	p.line("snapshot stat child", err, info.Kind, info.Name, info.Parent, keys(info.Labels))
	info, err = sn.Stat(ctx, "s-base")
	p.line("snapshot stat committed", err, info.Kind, info.Name, info.Parent)
	_, err = sn.Stat(ctx, "never")
	p.line("snapshot stat missing", err)
	err = sn.Remove(ctx, "s-base")
	p.line("snapshot remove with a child", err)
	info, err = sn.Update(ctx, snapshots.Info{Name: "s-child", Labels: map[string]string{"a": "1"}}, "labels.a")
	p.line("snapshot update labels.a", err, keys(info.Labels))
	_, err = sn.Update(ctx, snapshots.Info{Name: "s-child", Parent: "x"}, "parent")
	p.line("snapshot update parent", err)
	_, err = sn.Update(ctx, snapshots.Info{Name: "never"}, "labels")
	p.line("snapshot update missing", err)
	u, err := sn.Usage(ctx, "s-child")
	p.line("snapshot usage child", err, u.Inodes >= 0, u.Size >= 0)
	_, err = sn.Usage(ctx, "never")
	p.line("snapshot usage missing", err)
	for _, f := range []string{"", "kind==committed", "parent==s-base", "labels.a==1", "name==s-base", "name~=^s-"} {
		var names []string
		err := sn.Walk(ctx, func(_ context.Context, i snapshots.Info) error { names = append(names, i.Name); return nil }, f)
		p.line("snapshot walk "+f, err, sorted(names...))
	}
	err = sn.Remove(ctx, "s-child")
	p.line("snapshot remove child", err)
	err = sn.Remove(ctx, "s-child")
	p.line("snapshot remove child again", err)
	err = sn.Remove(ctx, "s-base")
	p.line("snapshot remove base", err)
	_, err = env.Client.SnapshotService("no-such-snapshotter").Stat(ctx, "x")
	p.line("snapshot unknown snapshotter", err)
}

func probeImages(ctx context.Context, env *Env, p *prober) {
	is := env.Client.ImageService()
	target := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("m"), Size: 1}
	_, err := is.Create(ctx, images.Image{Name: "", Target: target})
	p.line("image create empty name", err)
	_, err = is.Create(ctx, images.Image{Name: "probe/no-target:1"})
	p.line("image create without target", err)
	img, err := is.Create(ctx, images.Image{Name: "probe/a:1", Target: target, Labels: map[string]string{"a": "1"}})
	p.line("image create", err, img.Name, keys(img.Labels))
	_, err = is.Create(ctx, images.Image{Name: "probe/a:1", Target: target})
	p.line("image create again", err)
	img, err = is.Update(ctx, images.Image{Name: "probe/a:1", Labels: map[string]string{"b": "2"}}, "labels.b")
	p.line("image update labels.b", err, keys(img.Labels))
	img, err = is.Update(ctx, images.Image{Name: "probe/a:1", Target: target, Labels: map[string]string{"c": "3"}})
	p.line("image update no paths", err, keys(img.Labels))
	_, err = is.Update(ctx, images.Image{Name: "probe/a:1"}, "bogus")
	p.line("image update bogus field", err)
	_, err = is.Update(ctx, images.Image{Name: "probe/never:1", Target: target})
	p.line("image update missing", err)
	other := target
	other.Digest = digest.FromString("n")
	img, err = is.Update(ctx, images.Image{Name: "probe/a:1", Target: other}, "target")
	p.line("image update target", err, img.Target.Digest == other.Digest)
	_, err = is.Get(ctx, "probe/never:1")
	p.line("image get missing", err)
	_, err = is.List(ctx, "name==")
	p.line("image list empty value", err)
	err = is.Delete(ctx, "probe/a:1")
	p.line("image delete", err)
	err = is.Delete(ctx, "probe/a:1")
	p.line("image delete again", err)
}

func probeNamespaces(ctx context.Context, env *Env, p *prober) {
	ns := env.Client.NamespaceService()
	err := ns.Create(ctx, "probe-ns", map[string]string{"a": "1"})
	p.line("namespace create", err)
	err = ns.Create(ctx, "probe-ns", nil)
	p.line("namespace create again", err)
	err = ns.Create(ctx, "bad ns!", nil)
	p.line("namespace create bad name", err)
	err = ns.SetLabel(ctx, "probe-ns", "b", "2")
	p.line("namespace set label", err)
	err = ns.SetLabel(ctx, "probe-ns", "a", "")
	p.line("namespace clear label", err)
	labels, err := ns.Labels(ctx, "probe-ns")
	p.line("namespace labels", err, keys(labels))
	err = ns.SetLabel(ctx, "never-ns", "a", "1")
	p.line("namespace set label missing", err)
	inNS := namespaces.WithNamespace(ctx, "probe-ns")
	_, err = env.Client.NewContainer(inNS, "holder", containerd.WithNewSpec(oci.WithProcessArgs("true")))
	p.line("namespace container", err)
	err = ns.Delete(ctx, "probe-ns")
	p.line("namespace delete in use", err)
	err = env.Client.ContainerService().Delete(inNS, "holder")
	p.line("namespace container delete", err)
	err = ns.Delete(ctx, "probe-ns")
	p.line("namespace delete", err)
	err = ns.Delete(ctx, "probe-ns")
	p.line("namespace delete again", err)
	list, err := ns.List(ctx)
	found := false
	for _, n := range list {
		found = found || n == "probe-ns"
	}
	p.line("namespace list has the deleted one", err, found)
}

func probeLeases(ctx context.Context, env *Env, p *prober) {
	ls := env.Client.LeasesService()
	_, err := ls.Create(ctx)
	p.line("lease create without id", err)
	l, err := ls.Create(ctx, leases.WithID("probe-lease"), leases.WithLabels(map[string]string{"a": "1"}))
	p.line("lease create", err, l.ID, keys(l.Labels))
	_, err = ls.ListResources(ctx, leases.Lease{ID: "never"})
	p.line("lease resources missing", err)
	r := leases.Resource{ID: "k", Type: "snapshots/overlayfs"}
	err = ls.AddResource(ctx, l, r)
	p.line("lease add resource", err)
	err = ls.AddResource(ctx, l, r)
	p.line("lease add resource again", err)
	err = ls.DeleteResource(ctx, l, leases.Resource{ID: "other", Type: "snapshots/overlayfs"})
	p.line("lease delete resource never added", err)
	err = ls.DeleteResource(ctx, leases.Lease{ID: "never"}, r)
	p.line("lease delete resource of missing lease", err)
	err = ls.Delete(ctx, l)
	p.line("lease delete", err)
}

func probeTasks(ctx context.Context, env *Env, p *prober) {
	c, err := env.Client.NewContainer(ctx, "probe-task", containerd.WithNewSpec(oci.WithProcessArgs("true")))
	p.line("task container", err)
	if err != nil {
		return
	}
	defer c.Delete(ctx)
	_, err = c.Task(ctx, nil)
	p.line("task of a container with none", err)
	_, err = env.Client.LoadContainer(ctx, "never")
	p.line("task load missing container", err)
}

func probeEvents(ctx context.Context, env *Env, p *prober) {
	es := env.Client.EventService()
	err := es.Publish(ctx, "bad topic", &apievents.ContainerCreate{ID: "x"})
	p.line("event publish bad topic", err)
	err = es.Publish(ctx, "/probe", &apievents.ContainerCreate{ID: "x"})
	p.line("event publish one-part topic", err)
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	eventC, errC := es.Subscribe(subCtx, `topic~="^/probe/"`)
	time.Sleep(200 * time.Millisecond)
	err = es.Publish(ctx, "/probe/other", &apievents.ContainerDelete{ID: "y"})
	p.line("event publish", err)
	err = es.Publish(namespaces.WithNamespace(ctx, "probe-events"), "/probe/x", &apievents.ContainerCreate{ID: "x"})
	p.line("event publish in another namespace", err)
	for i := 0; i < 2; i++ {
		select {
		case e := <-eventC:
			v, err := typeurl.UnmarshalAny(e.Event)
			p.line("event received", err, e.Topic, e.Namespace, fmt.Sprintf("%T", v))
		case err := <-errC:
			p.line("event received", err)
		case <-time.After(5 * time.Second):
			p.line("event received", fmt.Errorf("none in 5s"))
		}
	}
	_ = env.Client.NamespaceService().Delete(ctx, "probe-events")
}

func probeServer(ctx context.Context, env *Env, p *prober) {
	is := env.Client.IntrospectionService()
	resp, err := is.Plugins(ctx, []string{"type==io.containerd.snapshotter.v1,id==overlayfs"})
	if err == nil {
		for _, pl := range resp.Plugins {
			p.line("introspection plugin", nil, pl.Type, pl.ID, pl.InitErr == nil, pl.Exports["root"] != "")
		}
	}
	p.line("introspection overlayfs", err, len(resp.Plugins))
	for _, f := range []string{"type==io.containerd.grpc.v1,id==containers", "type==io.containerd.runtime.v2,id==task", "type==io.containerd.gc.v1", "id==never"} {
		resp, err := is.Plugins(ctx, []string{f})
		var ids []string
		if err == nil {
			for _, pl := range resp.Plugins {
				ids = append(ids, pl.Type+"/"+pl.ID)
			}
		}
		p.line("introspection "+f, err, sorted(ids...))
	}
	server, err := env.Client.Server(ctx)
	p.line("server uuid", err, server.UUID != "")
	_, err = env.Client.DiffService().Apply(ctx, ocispec.Descriptor{MediaType: "application/x-unknown", Digest: digest.FromString("d"), Size: 1}, nil)
	p.line("diff apply unknown media type", err)
}
