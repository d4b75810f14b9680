package main

import "github.com/sslzoo/sslzoo/tensor"

// kernelReport names the GEMM and convolution kernels the engine will use,
// as the tensor package decided them at load time.
func kernelReport() [][2]string {
	return [][2]string{
		{"blas", tensor.BLASBackend()},
		{"conv", tensor.ConvBackend()},
	}
}
