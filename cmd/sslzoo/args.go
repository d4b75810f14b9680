package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// flagsFirst reorders a command line so that every flag of the command it
// names comes before its positional arguments. urfave/cli v2 stops parsing
// flags at the first positional argument, but people type
// `sslzoo embed NAME photos/ --out e.npy`; this lets flags stand anywhere,
// once, for every command. Everything after a "--" stays positional.
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	cmds, flags := app.Commands, app.Flags
	i := 1
	// The command chain: leading words that name (sub)commands. Global
	// flags may sit before the first command.
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			break
		}
		c := findCommand(cmds, a)
		if c == nil {
			break
		}
		out = append(out, a)
		cmds, flags = c.Subcommands, c.Flags
		i++
	}
	if len(out) == 1 || len(cmds) > 0 {
		// No command, or a command that wants a subcommand not given:
		// leave the line alone so the "unknown command" error names the word.
		return args
	}
	var flagArgs, positional []string
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			positional = append(positional, a)
			continue
		}
		flagArgs = append(flagArgs, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := findFlag(flags, name); f != nil && takesValue(f) && i+1 < len(args) {
			i++
			flagArgs = append(flagArgs, args[i])
		}
	}
	out = append(out, flagArgs...)
	for _, p := range positional {
		if strings.HasPrefix(p, "-") {
			// Keeps a positional such as "-" or "-x" (after the user's
			// "--") from being read as a flag.
			out = append(out, "--")
			break
		}
	}
	return append(out, positional...)
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue reports whether a flag consumes the next argument: every
// flag kind but booleans (and help) does.
func takesValue(f cli.Flag) bool {
	if _, ok := f.(*cli.BoolFlag); ok {
		return false
	}
	if dv, ok := f.(cli.DocGenerationFlag); ok {
		return dv.TakesValue()
	}
	return true
}
