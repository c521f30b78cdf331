// Package fault holds the kinds of failure berth tells apart, so the HTTP layer and the CLI decide by
// kind (and map each to a status in one place), never by message. It imports nothing of berth.
package fault

import (
	"errors"
	"fmt"
)

// Kind classifies an error so callers (the HTTP layer, the CLI) decide by kind, not by message.
type Kind int

// The kinds of failure a caller of the deployer must tell apart.
const (
	Internal    Kind = iota // a bug or an engine failure nobody could have prevented
	Invalid                 // the request or the compose project is wrong; fix the input
	Forbidden               // authenticated but not allowed (OWNER allowlist, opt-out label)
	NotFound                // nothing matches
	Conflict                // the state does not allow it now
	Unavailable             // the engine or a dependency is down; retry later
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "invalid"
	case Forbidden:
		return "forbidden"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case Unavailable:
		return "unavailable"
	default:
		return "internal"
	}
}

// Error is an error with a Kind. Msg is the whole message, safe to show to the caller; Err is
// the wrapped cause, if any, for errors.Is/As.
type Error struct {
	Kind Kind
	Msg  string
	Err  error
}

func (e *Error) Error() string { return e.Msg }

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error of the given kind with a formatted message; %w wraps as usual.
func Errorf(kind Kind, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: kind, Msg: err.Error(), Err: errors.Unwrap(err)}
}

// KindOf reports the Kind of the first *Error in err's chain, Internal when there is none.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}
