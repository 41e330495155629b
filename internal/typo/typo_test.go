package typo

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"hostname", "http_ws_port", "https_wss_port", "url"}
	for _, tt := range []struct{ name, want string }{
		{"hostnme", "hostname"},
		{"htp_ws_port", "http_ws_port"},
		{"hostname", "hostname"}, // a caller matching case-insensitively
		{"colour", ""},           // too far from everything
		{"ur", "url"},            // one edit
		{"xyz_port", ""},         // three edits or more
		{string(make([]byte, 100)), ""},
	} {
		if got := Closest(tt.name, known); got != tt.want {
			t.Errorf("Closest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
