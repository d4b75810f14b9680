package main

import (
	"io"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestFlagsFirst(t *testing.T) {
	app := &cli.App{Name: "sslzoo", Commands: []*cli.Command{
		{Name: "embed", Flags: []cli.Flag{&cli.StringFlag{Name: "out"}, &cli.BoolFlag{Name: "json"}, &cli.IntFlag{Name: "batch", Aliases: []string{"b"}}}},
		{Name: "train", Subcommands: []*cli.Command{{Name: "simclr", Flags: []cli.Flag{&cli.IntFlag{Name: "epochs"}}}}},
	}}
	tests := []struct {
		in, want []string
	}{
		{[]string{"sslzoo"}, []string{"sslzoo"}},
		{[]string{"sslzoo", "embed", "NAME", "photos/", "--out", "e.npy"}, []string{"sslzoo", "embed", "--out", "e.npy", "NAME", "photos/"}},
		{[]string{"sslzoo", "embed", "NAME", "--json", "photos/"}, []string{"sslzoo", "embed", "--json", "NAME", "photos/"}},
		{[]string{"sslzoo", "embed", "NAME", "-b", "4", "x", "--out=y"}, []string{"sslzoo", "embed", "-b", "4", "--out=y", "NAME", "x"}},
		{[]string{"sslzoo", "embed", "--out", "o", "--", "-odd-name.png"}, []string{"sslzoo", "embed", "--out", "o", "--", "-odd-name.png"}},
		{[]string{"sslzoo", "train", "simclr", "--epochs", "3"}, []string{"sslzoo", "train", "simclr", "--epochs", "3"}},
		{[]string{"sslzoo", "help", "embed"}, []string{"sslzoo", "help", "embed"}},
		{[]string{"sslzoo", "nosuch", "--flag"}, []string{"sslzoo", "nosuch", "--flag"}},
		{[]string{"sslzoo", "train", "nosuch", "--epochs", "1"}, []string{"sslzoo", "train", "nosuch", "--epochs", "1"}},
	}
	for _, tc := range tests {
		if got := flagsFirst(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A flag after a positional reaches the command (urfave/cli alone would
// take "--out" as a second positional).
func TestFlagAfterPositional(t *testing.T) {
	var gotOut string
	var gotArgs []string
	app := newApp(io.Discard, io.Discard)
	app.Commands = append(app.Commands, &cli.Command{Name: "probe", Flags: []cli.Flag{&cli.StringFlag{Name: "out"}},
		Action: func(c *cli.Context) error { gotOut, gotArgs = c.String("out"), c.Args().Slice(); return nil }})
	if err := app.Run(flagsFirst(app, []string{"sslzoo", "probe", "a", "--out", "f.npy", "b"})); err != nil {
		t.Fatal(err)
	}
	if gotOut != "f.npy" || !slices.Equal(gotArgs, []string{"a", "b"}) {
		t.Fatalf("out %q args %q; want f.npy [a b]", gotOut, gotArgs)
	}
}
