package units

import (
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr bool
	}{
		{in: "0/second", want: Rate{0, PerSecond}},
		{in: "100/second", want: Rate{100, PerSecond}},
		{in: "10/minute", want: Rate{10, PerMinute}},
		{in: "3600/hour", want: Rate{3600, PerHour}},
		{in: "", wantErr: true},
		{in: "10", wantErr: true},
		{in: "10/sec", wantErr: true},
		{in: "-1/second", wantErr: true},
		{in: "+1/second", wantErr: true},
		{in: " 1/second", wantErr: true},
		{in: "1/Second", wantErr: true},
		{in: "99999999999999/second", wantErr: true},
		{in: "/second", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v, want %v", got, err, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
	if got := MustRate("10/second").Interval(); got != 100*time.Millisecond {
		t.Errorf("Interval = %v, want 100ms", got)
	}
	if got := MustRate("0/hour").Interval(); got != 0 {
		t.Errorf("Interval of 0/hour = %v, want 0", got)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		canon   string
		wantErr bool
	}{
		{in: "128mb", want: 128 << 20, canon: "128mb"},
		{in: "128MB", want: 128 << 20, canon: "128mb"},
		{in: "1gb", want: 1 << 30, canon: "1gb"},
		{in: "1024kb", want: 1 << 20, canon: "1mb"},
		{in: "10b", want: 10, canon: "10b"},
		{in: "4096", want: 4096, canon: "4kb"},
		{in: "0mb", want: 0, canon: "0b"},
		{in: "mb", wantErr: true},
		{in: "1.5mb", wantErr: true},
		{in: "12tb", wantErr: true},
		{in: "17179869185gb", wantErr: true},
		{in: "1099511627776gb", wantErr: true},
		{in: "-1mb", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %v, %v, want %v", int64(got), err, int64(tt.want))
			}
			if got.String() != tt.canon {
				t.Errorf("String() = %q, want %q", got.String(), tt.canon)
			}
		})
	}
	if got := Size(128 << 20).MB(); got != "128.00 MB" {
		t.Errorf("MB() = %q", got)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		canon   string
		wantErr bool
	}{
		{in: "200m", want: 200 * time.Minute, canon: "200m"},
		{in: "20m", want: 20 * time.Minute, canon: "20m"},
		{in: "60m", want: time.Hour, canon: "1h"},
		{in: "30s", want: 30 * time.Second, canon: "30s"},
		{in: "2h", want: 2 * time.Hour, canon: "2h"},
		{in: "1d", want: 24 * time.Hour, canon: "1d"},
		{in: "90", want: 90 * time.Second, canon: "90s"},
		{in: "10ms", wantErr: true},
		{in: "m", wantErr: true},
		{in: "1.5h", wantErr: true},
		{in: "9999999999d", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %v, want an error", got)
				}
				return
			}
			if err != nil || got.Std() != tt.want {
				t.Fatalf("got %v, %v, want %v", got.Std(), err, tt.want)
			}
			if got.String() != tt.canon {
				t.Errorf("String() = %q, want %q", got.String(), tt.canon)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"10/second", "0/hour", "128mb", "200m", "1d", "4096", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := ParseRate(s); err == nil {
			if back, err := ParseRate(r.String()); err != nil || back != r {
				t.Fatalf("rate %q: round trip gave %v, %v", s, back, err)
			}
		}
		if z, err := ParseSize(s); err == nil {
			if back, err := ParseSize(z.String()); err != nil || back != z {
				t.Fatalf("size %q: round trip gave %v, %v", s, back, err)
			}
		}
		if d, err := ParseDuration(s); err == nil {
			if d < 0 {
				t.Fatalf("duration %q parsed negative", s)
			}
			if back, err := ParseDuration(d.String()); err != nil || back != d {
				t.Fatalf("duration %q: round trip gave %v, %v", s, back, err)
			}
		}
	})
}
