package blubber

import "testing"

// TestPoetryFlags: without only, without or devel, Poetry installs the main
// group with the flag its version knows.
func TestPoetryFlags(t *testing.T) {
	for spec, before12 := range map[string]bool{
		"==1.1.15": true, "1.0.10": true, "~=1.1": true, "<1.2": true, "<=1.1.15": true,
		"==1.5.1": false, "1.8.3": false, "<1.3": false, "==2.0.1": false, ">=1.0": false, "<2": false, ">=1.1,<1.2": false,
	} {
		if got := poetryBefore12(spec); got != before12 {
			t.Errorf("poetryBefore12(%q) = %t, want %t", spec, got, before12)
		}
	}
}
