package kserve

import "testing"

func TestLiftData(t *testing.T) {
	for _, tc := range []struct {
		body, skeleton string
		lifted         map[int]string // nil: liftData declines
	}{
		{`{"inputs":[{"name":"a","data":[1, [2]]},{"name":"b","Data":[3]}]}`,
			`{"inputs":[{"name":"a","data":null},{"name":"b","Data":null}]}`, map[int]string{0: `[1, [2]]`, 1: `[3]`}},
		{` { "id" : "x]", "inputs" : [ null , { "data" : [ "]" ] } ] } `,
			` { "id" : "x]", "inputs" : [ null , { "data" : null } ] } `, map[int]string{1: `[ "]" ]`}},
		{`{"inputs":[{"name":"a","data":1}]}`, "", nil},    // nothing to lift
		{`{"inputs":[{"data":[1],"data":[2]}]}`, "", nil},  // repeated data
		{`{"inputs":[{"data":[1]}],"INPUTS":[]}`, "", nil}, // repeated inputs
		{`{"inputs":[{"d\u0061ta":[1]}]}`, "", nil},        // escaped key
		{`{"inputs":[{"data":[1]}]`, "", nil},              // unclosed
		{`{"inputs":[{"data":[1]}]} x`, "", nil},           // trailing bytes
	} {
		skel, lifted, ok := liftData([]byte(tc.body))
		if ok != (tc.lifted != nil) {
			t.Errorf("%s: liftData ok=%v", tc.body, ok)
			continue
		}
		if !ok {
			continue
		}
		if string(skel) != tc.skeleton {
			t.Errorf("%s: skeleton %s, want %s", tc.body, skel, tc.skeleton)
		}
		if len(lifted) != len(tc.lifted) {
			t.Errorf("%s: lifted %d arrays, want %d", tc.body, len(lifted), len(tc.lifted))
		}
		for i, want := range tc.lifted {
			if string(lifted[i]) != want {
				t.Errorf("%s: input %d lifted %q, want %q", tc.body, i, lifted[i], want)
			}
		}
	}
}
