package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/oci"
)

func init() { register("filters", filtersScenario) }

// filtersScenario: containerd's filter syntax on container lists — labels,
// ids by regexp, runtime, presence, negation, several filters as OR, a
// comma as AND — and an invalid filter as InvalidArgument.
func filtersScenario(ctx context.Context, env *Env) error {
	made := map[string]map[string]string{
		"flt-web-1": {"app": "web", "env": "prod"},
		"flt-web-2": {"app": "web"},
		"flt-db":    {"app": "db", "dotted.key": "v"},
	}
	for id, labels := range made {
		c, err := env.Client.NewContainer(ctx, id,
			containerd.WithContainerLabels(labels),
			containerd.WithNewSpec(oci.WithProcessArgs("true")))
		if err != nil {
			return fmt.Errorf("create %s: %w", id, err)
		}
		defer removeContainer(env, c)
	}
	cases := []struct {
		filters []string
		want    string
	}{
		{nil, "flt-db flt-web-1 flt-web-2"},
		{[]string{"labels.app==web"}, "flt-web-1 flt-web-2"},
		{[]string{"labels.app==web,labels.env==prod"}, "flt-web-1"},
		{[]string{"labels.app==db", "id==flt-web-2"}, "flt-db flt-web-2"},
		{[]string{`id~=^flt-web-`}, "flt-web-1 flt-web-2"},
		{[]string{"labels.env"}, "flt-web-1"},
		{[]string{"labels.app!=web"}, "flt-db"},
		{[]string{`labels."dotted.key"==v`}, "flt-db"},
		{[]string{"runtime.name==io.containerd.runc.v2,labels.app==db"}, "flt-db"},
		{[]string{"labels.app==nothing"}, ""},
	}
	for _, tc := range cases {
		got, err := containerIDs(ctx, env, tc.filters...)
		if err != nil {
			return fmt.Errorf("list %q: %w", tc.filters, err)
		}
		if got != tc.want {
			return fmt.Errorf("list %q = %q, want %q", tc.filters, got, tc.want)
		}
		logf("containers %q: %s", tc.filters, got)
	}
	c, err := env.Client.LoadContainer(ctx, "flt-web-2")
	if err != nil {
		return err
	}
	if _, err := c.SetLabels(ctx, map[string]string{"env": "dev"}); err != nil {
		return fmt.Errorf("set labels: %w", err)
	}
	if got, err := containerIDs(ctx, env, "labels.env==dev"); err != nil || got != "flt-web-2" {
		return fmt.Errorf("after set labels, labels.env==dev = %q, %v", got, err)
	}
	if labels, err := c.Labels(ctx); err != nil || labels["app"] != "web" || labels["env"] != "dev" {
		return fmt.Errorf("labels after set = %v, %v; SetLabels merges", labels, err)
	}
	if _, err := env.Client.Containers(ctx, "labels.app=="); !errdefs.IsInvalidArgument(err) {
		return fmt.Errorf("an invalid filter: %v, want invalid argument", err)
	}
	return nil
}

func containerIDs(ctx context.Context, env *Env, filters ...string) (string, error) {
	list, err := env.Client.Containers(ctx, filters...)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID())
	}
	return strings.Join(sorted(ids...), " "), nil
}
