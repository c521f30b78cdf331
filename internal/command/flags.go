package command

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// UsageError is a command line berth cannot parse (unknown command or flag, missing argument):
// main exits 2 for it, as flag-parsing programs do, and 1 for every other error.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef is a UsageError with a formatted message.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// parseFlags parses a command's flags. --help prints the command's usage to stdout and
// returns flag.ErrHelp; a bad flag is one line of error. Flags may follow the arguments.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis, doc string) error {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: berth %s\n\n%s\n", synopsis, doc)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return flag.ErrHelp
		} else if err != nil {
			return Usagef("%s; usage: berth %s (see berth %s --help)", err, synopsis, fs.Name())
		}
		if fs.NArg() == 0 {
			break
		}
		positional, args = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
	_ = fs.Parse(append([]string{"--"}, positional...))
	return nil
}

// noHelp turns the --help "error" into success.
func noHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// noArgs parses the flags of a command that takes no arguments besides --help.
func noArgs(name string, args []string, stdout io.Writer, doc string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	if err := parseFlags(fs, args, stdout, name, doc); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return Usagef("berth %s takes no arguments, got %q (see berth %s --help)", name, fs.Arg(0), name)
	}
	return nil
}
