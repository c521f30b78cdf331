package command

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

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
			return fmt.Errorf("%s (see berth %s --help)", err, fs.Name())
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
