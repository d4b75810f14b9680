package data

import (
	"fmt"

	"github.com/sslzoo/sslzoo/data/augment"
)

// Images is an in-memory dataset of 8-bit images of one size, as MNIST and
// CIFAR come: N images of C x H x W bytes, channel-major, and their labels.
type Images struct {
	Name    string
	N       int
	C, H, W int
	Pix     []uint8 // N*C*H*W
	Labels  []int   // N, or nil
	Classes []string
}

// Len implements Dataset.
func (s *Images) Len() int { return s.N }

// Get implements Dataset; values are byte/255, as torchvision's ToTensor.
func (s *Images) Get(i int) (*augment.Image, int, error) {
	if i < 0 || i >= s.N {
		return nil, 0, fmt.Errorf("%s: sample %d out of range [0,%d)", s.Name, i, s.N)
	}
	m := augment.NewImage(s.C, s.H, s.W)
	n := s.C * s.H * s.W
	for j, v := range s.Pix[i*n : (i+1)*n] {
		m.Pix[j] = float32(v) / 255
	}
	label := -1
	if s.Labels != nil {
		label = s.Labels[i]
	}
	return m, label, nil
}

// Subset returns the first n samples (all when n <= 0 or n >= N), sharing
// memory with s.
func (s *Images) Subset(n int) *Images {
	if n <= 0 || n >= s.N {
		return s
	}
	t := *s
	t.N = n
	t.Pix = s.Pix[:n*s.C*s.H*s.W]
	if s.Labels != nil {
		t.Labels = s.Labels[:n]
	}
	return &t
}
