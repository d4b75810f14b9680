package tensor

import "runtime"

// PinThread locks the calling goroutine to its OS thread until the
// returned function runs. Wrap a loop of oneDNN convolutions in it (a
// training step, an inference pass): libgomp gives each thread that
// enters OpenMP its own team, and a goroutine that moves to another
// thread between two convolutions starts a second team while the first
// one's worker still spins on a core the new team needs. ResNet-18 at
// batch 1 in the Go engine ran 5.3-6.0 ms/run unpinned against 4.0-4.3
// pinned (ONNX Runtime 3.8-4.0), `bench-onnx` interleaved.
func PinThread() (unpin func()) {
	runtime.LockOSThread()
	return runtime.UnlockOSThread
}
