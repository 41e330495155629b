#!/usr/bin/env bash
# The decision's cost with every list full (issue 18, point 5):
# BenchmarkDecide/clean (10M IPv4 addresses, 1M CIDR ranges and 1M each of
# tokens, cookies and API keys listed; a client presenting an address, a
# token, a cookie and an API key, none listed), ROUNDS runs of its own
# process each, so that every run loads the lists anew. Target: under
# 300 ns in every run, 0 allocations.
#
# BASELINE=REV also builds that revision's benchmark (git worktree) and
# runs the two alternately, the order rotating each round: on a shared
# machine the same binary varies by a third from one process to the next,
# so only rounds taken side by side compare builds.
# Usage: [BASELINE=rev] bench/decide.sh [ROUNDS] [BENCHTIME]
source "$(dirname "$0")/lib.sh"
ROUNDS=${1:-5}; BT=${2:-2s}
work=$(mktemp -d)
cleanup() {
	[ -d "$work/base" ] && git -C "$ROOT" worktree remove --force "$work/base" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$ROOT" && go test -c -o "$work/new.test" ./internal/engine)
builds=(new)
if [ -n "${BASELINE:-}" ]; then
	git -C "$ROOT" worktree add --detach "$work/base" "$BASELINE" >/dev/null 2>&1
	(cd "$work/base" && go test -c -o "$work/base.test" ./internal/engine)
	builds=(base new)
fi
out="$RESULTS/decide-$(date -u +%Y%m%dT%H%M%SZ).txt"
echo "== BenchmarkDecide/clean, -benchtime $BT, $ROUNDS rounds ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))" | tee -a "$out"
for r in $(seq 1 "$ROUNDS"); do
	for b in "${builds[@]}"; do
		line=$("$work/$b.test" -test.run '^$' -test.bench 'BenchmarkDecide/clean$' -test.benchtime "$BT" | grep 'ns/op')
		ns=$(awk '{print $3}' <<<"$line")
		cpu=$(awk '{for (i = 1; i < NF; i++) if ($(i+1) == "cpu-ns/op") print $i}' <<<"$line")
		allocs=$(awk '{for (i = 1; i < NF; i++) if ($(i+1) == "allocs/op") print $i}' <<<"$line")
		echo "$ns" >>"$work/ns_$b"
		echo "round $r $b $ns ns/op, thread CPU ${cpu:-?} ns, $allocs allocs" | tee -a "$out"
	done
	builds=("${builds[@]:1}" "${builds[0]}")
done
{
	echo "== medians"
	for b in base new; do
		[ -f "$work/ns_$b" ] || continue
		under=$(awk '$1 < 300 {n++} END {print n+0}' "$work/ns_$b")
		echo "$b: $(median <"$work/ns_$b") ns/op median, $under of $ROUNDS runs under 300 ns (target: every run)"
	done
} | tee -a "$out"
