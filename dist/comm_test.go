package dist

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// Without mpirun the world is one process, and every collective is what a
// collective over one rank is: the identity.
func TestSingleProcessWorld(t *testing.T) {
	c, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	if c.Rank() != 0 || c.Size() != 1 {
		t.Fatalf("rank %d of %d, want 0 of 1", c.Rank(), c.Size())
	}
	if !strings.HasPrefix(c.Backend(), "single process") {
		t.Errorf("backend %q", c.Backend())
	}
	if again, _ := Init(); again != c {
		t.Error("a second Init gave another Comm")
	}
	buf := []float32{1, -2, 3.5}
	if err := c.AllreduceSum(buf); err != nil || !reflect.DeepEqual(buf, []float32{1, -2, 3.5}) {
		t.Errorf("AllreduceSum: %v, %v", buf, err)
	}
	if err := c.AllreduceMean(buf); err != nil || !reflect.DeepEqual(buf, []float32{1, -2, 3.5}) {
		t.Errorf("AllreduceMean: %v, %v", buf, err)
	}
	all, err := c.Allgather(buf)
	if err != nil || !reflect.DeepEqual(all, buf) {
		t.Errorf("Allgather: %v, %v", all, err)
	}
	if all[0] = 9; buf[0] == 9 {
		t.Error("Allgather's result aliases its input")
	}
	if err := c.Bcast(buf, 0); err != nil || !reflect.DeepEqual(buf, []float32{1, -2, 3.5}) {
		t.Errorf("Bcast: %v, %v", buf, err)
	}
	if err := c.Barrier(); err != nil {
		t.Error(err)
	}
}

func TestCommErrors(t *testing.T) {
	c := newLocal("test")
	err := c.Bcast([]float32{1}, 1)
	if err == nil || err.Error() != "dist: bcast: root 1 out of range [0, 1)" {
		t.Errorf("Bcast to root 1 of 1: %v", err)
	}
	if err := c.Finalize(); err != nil {
		t.Fatal(err)
	}
	if err := c.Finalize(); err != nil {
		t.Errorf("second Finalize: %v", err)
	}
	for name, call := range map[string]func() error{
		"AllreduceSum":  func() error { return c.AllreduceSum([]float32{1}) },
		"AllreduceMean": func() error { return c.AllreduceMean([]float32{1}) },
		"Allgather":     func() error { _, err := c.Allgather([]float32{1}); return err },
		"Bcast":         func() error { return c.Bcast([]float32{1}, 0) },
		"Barrier":       c.Barrier,
	} {
		if err := call(); !errors.Is(err, ErrFinalized) {
			t.Errorf("%s after Finalize: %v, want ErrFinalized", name, err)
		}
	}
}

func TestLauncher(t *testing.T) {
	for _, tc := range []struct {
		env      map[string]string
		size     int
		launched bool
		err      string
	}{
		{env: nil},
		{env: map[string]string{"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "1"}, size: 4, launched: true},
		{env: map[string]string{"PMI_SIZE": "2"}, size: 2, launched: true},
		{env: map[string]string{"PMIX_RANK": "0"}, launched: true},
		{env: map[string]string{"OMPI_COMM_WORLD_SIZE": "two"}, launched: true, err: `dist: OMPI_COMM_WORLD_SIZE="two" is not a positive rank count`},
		{env: map[string]string{"PMI_SIZE": "0"}, launched: true, err: `dist: PMI_SIZE="0" is not a positive rank count`},
	} {
		size, launched, err := launcher(func(k string) string { return tc.env[k] })
		if size != tc.size || launched != tc.launched || (err == nil) != (tc.err == "") || (err != nil && err.Error() != tc.err) {
			t.Errorf("env %v: size %d launched %v err %v; want %d %v %q", tc.env, size, launched, err, tc.size, tc.launched, tc.err)
		}
	}
}

// A binary without MPI, started by mpirun as one of several ranks, must
// refuse rather than let each rank train alone on all the data.
func TestSingleBuildRefusesManyRanks(t *testing.T) {
	if mpiBuilt {
		t.Skip("built with -tags mpi: initWorld would start MPI here")
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	_, err := initWorld()
	if err == nil || !strings.Contains(err.Error(), "started as one of 2 MPI ranks, but this binary was built without MPI") {
		t.Fatalf("initWorld under a 2-rank launcher: %v", err)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "1")
	if c, err := initWorld(); err != nil || c.Size() != 1 {
		t.Fatalf("initWorld under a 1-rank launcher: %v", err)
	}
}
