package autograd

import "fmt"

// OpError reports an op applied to operands it cannot take: mismatched
// shapes, a bad axis, an out-of-range index. Ops panic with *OpError (like
// an index out of range, it is a bug at the call site), and API boundaries
// that take user input (model Forward entry points, the CLI) convert it to an
// ordinary error with Catch.
type OpError struct {
	Op  string
	Msg string
}

func (e *OpError) Error() string { return e.Op + ": " + e.Msg }

// Failf panics with an *OpError for op.
func Failf(op, format string, args ...any) {
	panic(&OpError{Op: op, Msg: fmt.Sprintf(format, args...)})
}

// Catch runs fn and returns any *OpError it panicked with as an error.
// Other panics propagate: they are real bugs.
func Catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(*OpError); ok {
				err = e
				return
			}
			panic(r)
		}
	}()
	fn()
	return nil
}
