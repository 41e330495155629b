package config

import "testing"

// FuzzParse checks that no input panics and that every accepted
// configuration survives Format and Parse unchanged. Seeds are in
// testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.conf", data, nil)
		if err != nil {
			if c != nil {
				t.Fatalf("got a config with error %v", err)
			}
			return
		}
		text := c.Format()
		c2, err := Parse("formatted", []byte(text), nil)
		if err != nil {
			t.Fatalf("Parse(Format()): got error %v, want none; text:\n%s", err, text)
		}
		if !equal(c, c2) {
			t.Fatalf("Parse(Format()): got\n%s\nwant\n%s", c2.Format(), text)
		}
	})
}
