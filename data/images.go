package data

import (
	"fmt"
	"image"

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

// Image returns sample i as an image.Image (grey for one channel, RGBA for
// three), the form decoders hand out, so in-memory sets can go through the
// same preprocessing as image files.
func (s *Images) Image(i int) (image.Image, error) {
	if i < 0 || i >= s.N {
		return nil, fmt.Errorf("%s: sample %d out of range [0,%d)", s.Name, i, s.N)
	}
	plane := s.H * s.W
	px := s.Pix[i*s.C*plane : (i+1)*s.C*plane]
	r := image.Rect(0, 0, s.W, s.H)
	switch s.C {
	case 1:
		return &image.Gray{Pix: px, Stride: s.W, Rect: r}, nil
	case 3:
		m := image.NewRGBA(r)
		for j := range plane {
			m.Pix[4*j], m.Pix[4*j+1], m.Pix[4*j+2], m.Pix[4*j+3] = px[j], px[plane+j], px[2*plane+j], 255
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s: %d-channel images have no image.Image form", s.Name, s.C)
}
