//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly || illumos)

package cache

func init() { lockPath = exclPath }
