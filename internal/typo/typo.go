// Package typo suggests the known name a misspelt one was probably meant
// to be, for "did you mean" hints in configuration and JSON errors.
package typo

// maxEdits is the largest edit distance still worth suggesting.
const maxEdits = 2

// Closest returns the name in known nearest to name within two edits
// (insertions, deletions, substitutions), or "" when there is none. Ties
// go to the earlier name in known. Callers ask about names they did not
// find, so an exact match (a caller matching case-insensitively) counts.
func Closest(name string, known []string) string {
	best, bestDist := "", maxEdits+1
	for _, k := range known {
		if d := distance(name, k, bestDist); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b, or limit when it
// is at least limit; names past 64 bytes (fuzzed input) are never close.
func distance(a, b string, limit int) int {
	if len(a) > 64 || len(b) > 64 || abs(len(a)-len(b)) >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
