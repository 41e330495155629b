# Shared helpers of the benchmark scripts (sourced).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
RESULTS="$BENCH_DIR/results"
mkdir -p "$RESULTS"

need() { # need CMD PACKAGE: install PACKAGE with apt-get when CMD is missing
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] && return 0
	local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" </dev/null >/dev/null
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # wait_http URL
	for _ in $(seq 1 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
	echo "no answer from $1" >&2; return 1
}

# rps OUTPUT: requests/sec from wrk's output
rps() { awk '/Requests\/sec/ {print $2}' <<<"$1"; }
# p99 OUTPUT: the 99th percentile latency in ms from wrk --latency output
p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}' <<<"$1"; }

HZ=$(getconf CLK_TCK)
# ticks PID...: CPU time (utime+stime, clock ticks) of the processes and
# the first one's children (nginx's workers).
ticks() {
	local u s
	read -r u s < <(ticks_split "$@")
	echo $((u + s))
}
# ticks_split PID...: ticks as "user system" (the same processes)
ticks_split() {
	local u=0 s=0 p a b
	for p in "$@" $(pgrep -P "$1" || true); do
		read -r a b < <(awk '{print $14, $15}' "/proc/$p/stat")
		u=$((u + a)); s=$((s + b))
	done
	echo "$u $s"
}
# with_cpu FILE CMD...: runs CMD (its output passes through) and writes the
# CPU time it and its children used, in seconds (user+system), to FILE
with_cpu() {
	local f=$1; shift
	python3 -c 'import resource, subprocess, sys
r = subprocess.run(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.6f\n" % (u.ru_utime + u.ru_stime))
sys.exit(r.returncode)' "$f" "$@"
}
# requests OUTPUT: the requests wrk completed
requests() { awk '/requests in/ {print $1}' <<<"$1"; }
us_per() { awk "BEGIN {printf \"%.1f\n\", $1 * 1000000 / $HZ / $2}"; } # us_per TICKS REQUESTS

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# need_vegeta: the open-loop (constant-rate) load generator, for latency at
# a fixed load, from the Go module proxy.
need_vegeta() {
	[ -x "$BENCH_DIR/bin/vegeta" ] || GOBIN="$BENCH_DIR/bin" go install github.com/tsenart/vegeta/v12@v12.13.0
}

build() {
	mkdir -p "$BENCH_DIR/bin"
	(cd "$ROOT" && go build -o "$BENCH_DIR/bin/ase" ./cmd/ase && go build -o "$BENCH_DIR/bin/nullserver" ./bench/nullserver && go build -o "$BENCH_DIR/bin/loadlists" ./bench/loadlists)
}

# Every party of a comparison (backend, each proxy) starts in a session of its
# own (`setsid CMD &`, as start_nginx does): the kernel's autogroup scheduling
# (on by default) shares CPU fairly between sessions, so a proxy that shared
# the script's session with the load generator and the backend would be
# scheduled differently from one in its own, and the comparison would
# measure that instead of the proxies.

nginx_bin() { command -v nginx || echo /usr/sbin/nginx; }

# start_nginx DIR CONF: run nginx in the foreground of its own process group
start_nginx() {
	setsid "$(nginx_bin)" -c "$2" -p "$1" >"$1/stdout.log" 2>&1 &
	echo $!
}

# nginx_proxy_conf DIR LISTEN BACKEND [CERT KEY]: an nginx that proxies
# everything to BACKEND as operators run it (as many workers as cores,
# upstream keep-alive, proxy_http_version 1.1, Connection "", buffered
# access log), listening on LISTEN (over TLS with CERT and KEY); its
# configuration is written to DIR/nginx.conf.
nginx_proxy_conf() {
	local dir=$1 listen=$2 backend=$3 cert=${4:-} key=${5:-} ssl="" tls=""
	if [ -n "$cert" ]; then
		ssl=" ssl"
		tls="ssl_certificate $cert; ssl_certificate_key $key;"
	fi
	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<CONF
worker_processes $(nproc);
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
$( [ "$(id -u)" = 0 ] && echo "user root;" )
events { worker_connections 4096; }
http {
    access_log $dir/access.log combined buffer=256k flush=1s;
    client_body_temp_path $dir/cb; proxy_temp_path $dir/p;
    fastcgi_temp_path $dir/f; uwsgi_temp_path $dir/u; scgi_temp_path $dir/s;
    upstream backend { server 127.0.0.1:$backend; keepalive 256; }
    server {
        listen 127.0.0.1:$listen$ssl;
        $tls
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CONF
}
