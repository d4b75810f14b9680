package torchpickle_test

import (
	"fmt"
	"log"

	"github.com/sslzoo/sslzoo/weights/torchpickle"
)

// Open a torch.save file, walk its dicts, and read one tensor.
func Example() {
	c, err := torchpickle.Open("testdata/legacy_p2.pth")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	root := c.Root.(*torchpickle.Dict)
	tensors, _ := root.Get("tensors")
	v, _ := tensors.(*torchpickle.Dict).Get("transposed")
	t := v.(*torchpickle.Tensor)
	w, err := t.Read() // gathered through the view's strides
	if err != nil {
		log.Fatal(err)
	}
	ns, _ := root.Get("plain")
	args, _ := ns.(*torchpickle.Dict).Get("ns")
	fmt.Println(c.Format, t.DType(), t.Shape, t.Stride, len(w.Data), "bytes;", torchpickle.TypeName(args))
	// Output: legacy F32 [4 3] [1 4] 48 bytes; argparse.Namespace object
}
