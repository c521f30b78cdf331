package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// buildImage builds a context made of files (name -> content; "Dockerfile" among them) and
// tags it ref. network is the build's network mode ("" for the default).
func buildImage(ctx context.Context, c *client.Client, ref, network string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, b := range files {
		mode := int64(0o644)
		if !strings.HasSuffix(name, "Dockerfile") && !strings.Contains(name, ".") {
			mode = 0o755 // binaries
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(b)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true, NetworkMode: network})
	if err != nil {
		return fmt.Errorf("build %s: %w", ref, err)
	}
	if err := deployertest.Drain(res.Body); err != nil {
		return fmt.Errorf("build %s: %w", ref, err)
	}
	return nil
}

// buildDir builds the directory dir (its git-tracked files) as ref with the host's network,
// so a Dockerfile that downloads modules works on the sandbox engine.
func buildDir(ctx context.Context, c *client.Client, ref, dir string, paths []string) error {
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			continue // deleted in the work tree
		}
		files[p] = b
	}
	return buildImage(ctx, c, ref, "host", files)
}

// pushImage pushes ref to its registry (the sandbox registry needs no credentials).
func pushImage(ctx context.Context, c *client.Client, ref string) error {
	push, err := c.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: "e30="}) // base64 "{}"
	if err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	if err := deployertest.Drain(push); err != nil {
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

// removeImage untags ref and deletes its layers unless another image holds them, so the next
// pull of the pushed version really downloads them.
func removeImage(ctx context.Context, c *client.Client, ref string) {
	_, _ = c.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true, Force: true})
}

// publishedPort is the loopback host port bound to the container's port.
func publishedPort(ctx context.Context, c *client.Client, name string, port uint16) (string, error) {
	res, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return "", err
	}
	for p, bindings := range res.Container.NetworkSettings.Ports {
		if p.Num() == port && len(bindings) > 0 {
			return bindings[0].HostPort, nil
		}
	}
	return "", fmt.Errorf("%s publishes no port %d", name, port)
}

// webDockerfile is a busybox HTTP server answering body; layers > 0 adds that many layers of
// layerMB of random data, so a new version has that much new to pull.
func webDockerfile(body string, layers, layerMB int) string {
	var b strings.Builder
	b.WriteString("FROM busybox:1\n")
	for i := range layers {
		fmt.Fprintf(&b, "RUN mkdir -p /blob && head -c %d /dev/urandom > /blob/%d\n", layerMB<<20, i)
	}
	fmt.Fprintf(&b, "RUN mkdir -p /www && printf '%%s' '%s' > /www/index.html\n", body)
	b.WriteString(`CMD ["httpd", "-f", "-p", "80", "-h", "/www"]` + "\n")
	return b.String()
}
