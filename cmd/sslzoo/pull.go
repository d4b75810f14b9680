package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/sslzoo/sslzoo"
	"github.com/sslzoo/sslzoo/weights/cache"
	"github.com/sslzoo/sslzoo/zoo"
)

func pullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "download (or unpack from the binary) a zoo model into the cache and verify it",
		UsageText: "sslzoo pull NAME [--no-bundled]\n\nexample:\n  sslzoo pull simclr-resnet18-fmnist\n  SSLZOO_MIRROR=file:///srv/models sslzoo pull mae-vit-base",
		Description: "The file lands at CACHE/NAME/FILE, where CACHE is $SSLZOO_CACHE, else $XDG_CACHE_HOME/sslzoo, else\n" +
			"~/.cache/sslzoo. Sources, in order: $SSLZOO_MIRROR/NAME/FILE (http(s):// or file://), the entry's\n" +
			"URLs, then the copy inside the binary (bundled entries; --no-bundled skips it). Every file is checked\n" +
			"against its sha256; an interrupted download resumes; SSLZOO_OFFLINE=1 allows no network.\n" +
			"Official checkpoints are imported into sslzoo's format after download. The last line printed is the path.",
		Flags: []cli.Flag{&cli.BoolFlag{Name: "no-bundled", Usage: "do not use the copy inside the binary"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("sslzoo pull: name one model (see 'sslzoo list')")
			}
			path, err := sslzoo.Pull(c.Context, c.Args().First(), &sslzoo.Options{Progress: c.App.ErrWriter, NoBundled: c.Bool("no-bundled")})
			if err != nil {
				return pullFailure(err)
			}
			fmt.Fprintln(c.App.Writer, path)
			return nil
		},
	}
}

// pullFailure keeps the one-line error readable: a PullError's summary
// with the reason of each source joined on.
func pullFailure(err error) error {
	var pe *cache.PullError
	if !errors.As(err, &pe) {
		return err
	}
	msg := fmt.Sprintf("sslzoo pull: cannot get %s/%s", pe.Name, pe.File)
	if pe.Offline && len(pe.Failures) == 0 {
		return errors.New(oneLine(err))
	}
	for i, f := range pe.Failures {
		msg += fmt.Sprintf("; %d. %v", i+1, f)
	}
	return errors.New(msg)
}

func cacheCommand() *cli.Command {
	newCache := func(c *cli.Context) (*cache.Cache, error) {
		ca, err := cache.New()
		if err != nil {
			return nil, err
		}
		ca.Progress = c.App.ErrWriter
		return ca, nil
	}
	return &cli.Command{
		Name:  "cache",
		Usage: "list, verify or remove pulled models",
		UsageText: "sslzoo cache ls\nsslzoo cache verify [NAME...]\nsslzoo cache rm NAME...\n\nexample:\n" +
			"  sslzoo cache verify && sslzoo cache rm mae-vit-base",
		Subcommands: []*cli.Command{
			{
				Name: "ls", Usage: "list the models in the cache",
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					ca, err := newCache(c)
					if err != nil {
						return err
					}
					items, err := ca.List()
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
					fmt.Fprintf(tw, "NAME\tFILE\tSIZE\tMODIFIED\tSTATE\n")
					for _, it := range items {
						state := "complete"
						if it.Incomplete {
							state = "incomplete (a pull resumes it)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", it.Name, it.File, humanBytes(it.Size), it.ModTime.Format("2006-01-02 15:04"), state)
					}
					if err := tw.Flush(); err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "cache: %s\n", ca.Root)
					return nil
				},
			},
			{
				Name: "verify", Usage: "check cached zoo files against their manifest sha256 (all, or the named ones)",
				ArgsUsage: "[NAME...]",
				Action: func(c *cli.Context) error {
					ca, err := newCache(c)
					if err != nil {
						return err
					}
					return verifyCache(c, ca)
				},
			},
			{
				Name: "rm", Usage: "remove zoo models from the cache", ArgsUsage: "NAME...",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usagef("sslzoo cache rm: name the models to remove (see 'sslzoo cache ls')")
					}
					ca, err := newCache(c)
					if err != nil {
						return err
					}
					for _, name := range c.Args().Slice() {
						// Only zoo entries: the cache root also holds ONNX
						// Runtime and corpora that other commands installed.
						if _, err := zoo.Lookup(name); err != nil {
							return err
						}
						if err := ca.Remove(name); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "removed %s\n", name)
					}
					return nil
				},
			},
		},
	}
}

func verifyCache(c *cli.Context, ca *cache.Cache) error {
	items, err := ca.List()
	if err != nil {
		return err
	}
	names := c.Args().Slice()
	bad, checked := 0, 0
	for _, it := range items {
		if it.Incomplete || (len(names) > 0 && !slices.Contains(names, it.Name)) {
			continue
		}
		e, err := zoo.Lookup(it.Name)
		if err != nil || e.File != it.File {
			continue // an imported file or another tool's: nothing pins it
		}
		pin := e.SHA256
		if pin == "" {
			pin = e.SHA256Prefix
		}
		if pin == "" {
			fmt.Fprintf(c.App.Writer, "%s/%s: no published checksum to verify against\n", it.Name, it.File)
			continue
		}
		checked++
		if err := ca.Verify(it.Name, it.File, pin); err != nil {
			bad++
			fmt.Fprintf(c.App.Writer, "%s/%s: BAD: %v\n", it.Name, it.File, err)
			continue
		}
		fmt.Fprintf(c.App.Writer, "%s/%s: ok\n", it.Name, it.File)
	}
	if bad > 0 {
		return fmt.Errorf("sslzoo cache verify: %d of %d files failed; 'sslzoo pull NAME' fetches a good copy", bad, checked)
	}
	fmt.Fprintf(c.App.Writer, "%d file(s) verified in %s\n", checked, ca.Root)
	return nil
}

// checkOutDir refuses an output path whose folder does not exist, before
// any work is done.
func checkOutDir(out string) error {
	if out == "" {
		return nil
	}
	dir := filepath.Dir(out)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usagef("--out %s: folder %s does not exist (create it first)", out, dir)
	}
	return nil
}

// isZooName reports whether a model argument names a zoo entry rather
// than a file: no path separator, no file extension of ours, and no such
// file in the working folder.
func isZooName(s string) bool {
	if s == "" || strings.ContainsRune(s, filepath.Separator) {
		return false
	}
	switch strings.ToLower(filepath.Ext(s)) {
	case ".onnx", ".safetensors", ".pth", ".pt", ".tar", ".ckpt", ".bin", ".npy":
		return false
	}
	_, err := os.Stat(s)
	return err != nil
}
