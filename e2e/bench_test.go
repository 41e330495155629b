package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkListBulkLoadAndRestart loads 1,000,000 deny-list entries
// through the management API, 100,000 per call (the most one call takes),
// then restarts the server and times until it serves again with every
// entry loaded. Run with -benchtime 1x; the figures are in the README.
func BenchmarkListBulkLoadAndRestart(b *testing.B) {
	for n := 0; n < b.N; n++ {
		i := startInstance(b, map[string]string{"attack_list_memory": "1GB"})
		bodies := make([]string, 10)
		for c := range bodies {
			var sb strings.Builder
			sb.WriteString("[")
			for k := 0; k < 100_000; k++ {
				if k > 0 {
					sb.WriteString(",")
				}
				v := c*100_000 + k
				switch v % 4 {
				case 0, 1:
					fmt.Fprintf(&sb, `{"type":"ip","value":"%d.%d.%d.%d"}`, 11+v%200, (v>>16)&255, (v>>8)&255, v&255)
				case 2:
					fmt.Fprintf(&sb, `{"type":"token","value":"token-%08d-abcdefghijklmnop"}`, v)
				case 3:
					fmt.Fprintf(&sb, `{"type":"cookie","name":"JSESSIONID","value":"cookie-%08d-abcdefghijk"}`, v)
				}
			}
			sb.WriteString("]")
			bodies[c] = sb.String()
		}
		start := time.Now()
		for _, body := range bodies {
			r := i.Do("POST", "/v5/ase/firewall/blacklist", body, nil)
			if r.Code != http.StatusOK {
				b.Fatalf("bulk import: HTTP %d %s", r.Code, r.Body)
			}
		}
		bulk := time.Since(start)

		i.Stop()
		start = time.Now()
		i.Start()
		restart := time.Since(start)
		var s map[string]any
		decode(b, i.Do("GET", "/v5/ase/status", "", nil), &s)
		b.ReportMetric(bulk.Seconds(), "bulk_1M_s")
		b.ReportMetric(restart.Seconds(), "restart_1M_s")
		b.Logf("bulk load %.2fs, restart %.2fs, %s", bulk.Seconds(), restart.Seconds(), s["attack_list_memory"])
		i.Stop()
	}
}
