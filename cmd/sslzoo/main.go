// Command sslzoo is the command-line front end of the sslzoo model zoo:
// it checks the machine (doctor), measures training and inference speed
// (bench) and runs a short training demo (demo).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code. Every failure is
// reported as one line on stderr.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.Run(flagsFirst(app, args)); err != nil {
		msg := oneLine(err)
		if !strings.HasPrefix(msg, "sslzoo") {
			msg = "sslzoo: " + msg
		}
		fmt.Fprintln(stderr, msg)
		return 1
	}
	return 0
}

// usageError marks errors caused by the command line rather than the work.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:      "sslzoo",
		Usage:     "self-supervised learning model zoo in Go",
		Writer:    stdout,
		ErrWriter: stderr,
		// Errors are printed once, by run; the library must not print or exit.
		ExitErrHandler:         func(*cli.Context, error) {},
		HideHelpCommand:        false,
		UseShortOptionHandling: false,
		OnUsageError:           onUsageError,
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unknown command %q (run 'sslzoo help' for the list)", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
		Commands: []*cli.Command{
			listCommand(),
			infoCommand(),
			pullCommand(),
			cacheCommand(),
			doctorCommand(),
			benchCommand(),
			demoCommand(),
			trainCommand(),
			evalCommand(),
			reconstructCommand(),
			colorizeCommand(),
			exportCommand(),
			importCommand(),
			embedCommand(),
			serveCommand(),
			conformanceCommand(),
		},
	}
	for _, c := range app.Commands {
		setUsageHandler(c)
	}
	return app
}

func setUsageHandler(c *cli.Command) {
	c.OnUsageError = onUsageError
	for _, s := range c.Subcommands {
		setUsageHandler(s)
	}
}

// onUsageError turns flag parsing failures into a plain error instead of
// urfave/cli's default of printing the whole help text.
func onUsageError(c *cli.Context, err error, _ bool) error {
	name := commandName(c)
	return usagef("%s: %v (run '%s --help')", name, err, name)
}

// commandName is the full command line name, e.g. "sslzoo bench gemm".
func commandName(c *cli.Context) string {
	if c == nil || c.Command == nil {
		return "sslzoo"
	}
	if c.Command.HelpName != "" {
		return c.Command.HelpName
	}
	if c.Command.Name != "" {
		return "sslzoo " + c.Command.Name
	}
	return "sslzoo"
}

// noArgs rejects stray positional arguments, which usually mean a mistyped flag.
func noArgs(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("%s: unexpected argument %q", commandName(c), c.Args().First())
	}
	return nil
}

// oneLine flattens a multi-line error so the CLI prints exactly one line.
func oneLine(err error) string {
	var ue usageError
	if errors.As(err, &ue) {
		err = ue.err
	}
	return strings.Join(strings.Fields(strings.ReplaceAll(err.Error(), "\n", "; ")), " ")
}
