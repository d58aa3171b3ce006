#!/usr/bin/env bash
# Sets up a throw-away gateway (store, test PKI, fedgate on loopback), runs fedgate-bench against
# it, prints the results and stops the gateway. Everything lives in a temporary directory that is
# removed at the end.
#
# usage: bench/run-fedgate-bench.sh [--build DIR] [--workers N] [--partners M] [--cpus LIST]
#                                   [-- fedgate-bench options...]
#   --build DIR    build folder holding io/fedgate, admin/fedgate-admin, bench/fedgate-bench
#                  (default: build)
#   --workers N    fedgate worker threads (default 1)
#   --partners M   partner domains p0.bench .. p<M-1>.bench, one certificate each (default 1)
#   --gw-cpus L    taskset CPU list for the gateway (default: none); --bench-cpus L likewise
#   --gw-args "A"  extra fedgate options, split on spaces (e.g. "--spin-us 0")
#   --direct-tls   the streams use the gateway's direct-TLS (XEP-0368) listener, not STARTTLS
#   --component-tls  the component sink connects to the gateway's component TLS listener
#                  (TLS from the first byte): TLS on both legs of every relayed stanza
#   --holders K    first start K fedgate-bench --hold-secs processes holding --hold-streams N idle
#                  streams each (default 5000), for more open streams than one process may hold
#   --churn-ms N   while the measuring fedgate-bench runs, bench/fedgate_churn.py commits a policy
#                  change every N ms that keeps the partners allowed, and prints how many it made
#   --churn-via V  serve (default: one fedgate-admin serve process) or cli (a process per change)
#   --churn-reference  with --churn-ms: first the same fedgate-bench run without churn, on the
#                  same gateway, to compare with
# Every option after -- goes to fedgate-bench (e.g. --streams 1000 --rate 20000 --duration 10).
# fedgate-bench gets --sink-conns <--workers value> (at most 64): the component opens one
# connection per gateway worker, so a stanza can leave on the worker that received it. A
# --sink-conns after -- replaces it.
# FEDGATE_BENCH=PATH runs another fedgate-bench binary (e.g. a sanitizer build).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build workers=1 partners=1 gw_cpus="" bench_cpus="" gw_args="" holders=0 hold_streams=5000 direct_tls=0 comp_tls=0
churn_ms="" churn_via=serve churn_ref=0
while [ $# -gt 0 ]; do
    case "$1" in
    --build) build=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --partners) partners=$2; shift 2 ;;
    --gw-cpus) gw_cpus=$2; shift 2 ;;
    --bench-cpus) bench_cpus=$2; shift 2 ;;
    --gw-args) gw_args=$2; shift 2 ;;
    --holders) holders=$2; shift 2 ;;
    --direct-tls) direct_tls=1; shift ;;
    --component-tls) comp_tls=1; shift ;;
    --hold-streams) hold_streams=$2; shift 2 ;;
    --churn-ms) churn_ms=$2; shift 2 ;;
    --churn-via) churn_via=$2; shift 2 ;;
    --churn-reference) churn_ref=1; shift ;;
    --) shift; break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
build=$(cd "$build" && pwd)
fg=$build/io/fedgate admin=$build/admin/fedgate-admin bench=${FEDGATE_BENCH:-$build/bench/fedgate-bench}
for b in "$fg" "$admin" "$bench"; do
    [ -x "$b" ] || { echo "missing $b (build it first)" >&2; exit 2; }
done

dir=$(mktemp -d -t fedgate-bench.XXXXXX)
gw_pid=""
holder_pids=()
churn_pid=""
# shellcheck disable=SC2317  # invoked through the trap
cleanup() {
    if [ -n "$churn_pid" ]; then kill -TERM "$churn_pid" 2>/dev/null || true; wait "$churn_pid" 2>/dev/null || true; fi
    for p in "${holder_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    if [ -n "$gw_pid" ]; then
        kill -TERM "$gw_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$gw_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$gw_pid" 2>/dev/null || true
        wait "$gw_pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# Free loopback ports, chosen by the kernel.
ports=$(python3 -c 'import socket
ss=[socket.socket() for _ in range(5)]
[s.bind(("127.0.0.1",0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
read -r s2s_port comp_port metrics_port tls_port ctls_port <<<"$ports"

# Test PKI: one CA, the hosted domain's certificate, one client+server certificate per partner.
domain=gw.bench
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout "$dir/ca.key" -out "$dir/ca.crt"
leaf() {
    ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
        -keyout "$dir/$1.key" -out "$dir/$1.csr"
    printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$1" >"$dir/$1.ext"
    ossl x509 -req -in "$dir/$1.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 2 -extfile "$dir/$1.ext" -out "$dir/$1.crt"
}
leaf "$domain"
for i in $(seq 0 $((partners - 1))); do leaf "p$i.bench"; done
(umask 077; head -c 18 /dev/urandom | base64 >"$dir/component.secret")

store=$dir/store
cli() { "$admin" --store "$store" "$@" >/dev/null; }
cli init
cli access set global true
cli domain new "$domain" --cert "$dir/$domain.crt" --key "$dir/$domain.key" --route component \
    --secret-file "$dir/component.secret"
cli gateway set --listen-s2s "127.0.0.1:$s2s_port" --listen-s2s-tls "127.0.0.1:$tls_port" \
    --listen-component "127.0.0.1:$comp_port" --listen-component-tls "127.0.0.1:$ctls_port" \
    --listen-metrics "127.0.0.1:$metrics_port" \
    --resolver 127.0.0.1:53 --trust-anchors "$dir/ca.crt" \
    --connection-limit 19000 --partner-connection-limit 19000
for i in $(seq 0 $((partners - 1))); do
    cli partner new "p$i.bench" --tls required --sasl required --dialback false --type federated
done

# shellcheck disable=SC2206
gw_cmd=("$fg" --store "$store" --workers "$workers" --log-level error $gw_args)
[ -n "$gw_cpus" ] && gw_cmd=(taskset -c "$gw_cpus" "${gw_cmd[@]}")
"${gw_cmd[@]}" >"$dir/fedgate.log" 2>&1 &
gw_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$comp_port") 2>/dev/null && break
    kill -0 "$gw_pid" 2>/dev/null || { cat "$dir/fedgate.log" >&2; exit 1; }
    sleep 0.05
done
echo "fedgate pid $gw_pid, $workers worker(s) ${gw_args:+($gw_args) }, s2s 127.0.0.1:$s2s_port, direct TLS 127.0.0.1:$tls_port, component 127.0.0.1:$comp_port, component TLS 127.0.0.1:$ctls_port"

bench_port=$s2s_port tls_opt=() sink_port=$comp_port
[ "$direct_tls" = 1 ] && bench_port=$tls_port tls_opt=(--direct-tls)
[ "$comp_tls" = 1 ] && sink_port=$ctls_port tls_opt+=(--component-tls)
common=("${tls_opt[@]}" --port "$bench_port" --component-port "$sink_port" --domain "$domain"
    --secret-file "$dir/component.secret" --cert-dir "$dir" --ca "$dir/ca.crt"
    --partners "$partners" --gateway-pid "$gw_pid")
for h in $(seq 1 "$holders"); do
    hcmd=("$bench" "${common[@]}" --streams "$hold_streams" --hold-secs 900)
    [ -n "$bench_cpus" ] && hcmd=(taskset -c "$bench_cpus" "${hcmd[@]}")
    "${hcmd[@]}" >"$dir/holder$h.log" 2>&1 &
    holder_pids+=($!)
    for _ in $(seq 600); do
        grep -q '^holding' "$dir/holder$h.log" && break
        kill -0 "${holder_pids[-1]}" 2>/dev/null || break
        sleep 0.2
    done
    sed "s/^/holder $h: /" "$dir/holder$h.log"
    grep -q '^holding' "$dir/holder$h.log" || { echo "holder $h did not get its streams up" >&2; exit 1; }
done

sink_opt=(--sink-conns $((workers < 64 ? workers : 64)))
for a in "$@"; do
    case "$a" in --sink-conns | --sink-conns=*) sink_opt=() ;; esac
done
bench_cmd=("$bench" "${common[@]}" --metrics-port "$metrics_port" "${sink_opt[@]}" "$@")
[ -n "$bench_cpus" ] && bench_cmd=(taskset -c "$bench_cpus" "${bench_cmd[@]}")
rc=0
if [ -n "$churn_ms" ] && [ "$churn_ref" = 1 ]; then
    echo "== reference: the same run without policy churn"
    timeout 900 "${bench_cmd[@]}" || rc=$?
    echo "== with a policy change every $churn_ms ms"
fi
if [ -n "$churn_ms" ]; then
    # The churn process is started and stopped by its PID; it stops its own serve process.
    python3 bench/fedgate_churn.py --admin "$admin" --store "$store" --interval-ms "$churn_ms" \
        --via "$churn_via" --partners "$(seq -f 'p%g.bench' 0 $((partners - 1)) | paste -sd,)" \
        >"$dir/churn.log" 2>&1 &
    churn_pid=$!
    for _ in $(seq 200); do
        grep -qs '^fedgate_churn: changing' "$dir/churn.log" && break
        kill -0 "$churn_pid" 2>/dev/null || break
        sleep 0.05
    done
    grep -q '^fedgate_churn: changing' "$dir/churn.log" || { cat "$dir/churn.log" >&2; exit 1; }
fi
if [ -n "$churn_pid" ]; then
    # Its stderr is kept too: a stream refused while the policy changed is a failure of the run.
    timeout 900 "${bench_cmd[@]}" 2>"$dir/bench.err" &
    bench_pid=$!
    tail -n +1 -s 0.2 -f --pid="$bench_pid" "$dir/bench.err" >&2 || true
    wait "$bench_pid" || rc=$?
    kill -TERM "$churn_pid" 2>/dev/null || true
    churn_rc=0
    wait "$churn_pid" || churn_rc=$?
    churn_pid=""
    grep -v '^fedgate_churn: changing' "$dir/churn.log" || true
    if [ "$churn_rc" -ne 0 ]; then
        echo "policy churn: exit $churn_rc (a change failed)" >&2
        [ "$rc" -eq 0 ] && rc=1
    fi
    if grep -q 'failed to open' "$dir/bench.err"; then
        echo "policy churn: $(grep -o '[0-9]* of [0-9]* streams failed to open' "$dir/bench.err") while the policy changed" >&2
        [ "$rc" -eq 0 ] && rc=1
    fi
else
    timeout 900 "${bench_cmd[@]}" || rc=$?
fi
if ! kill -0 "$gw_pid" 2>/dev/null; then
    st=0; wait "$gw_pid" || st=$?
    echo "fedgate (pid $gw_pid) is gone, exit status $st (>128: killed by signal $((st - 128)))" >&2
    gw_pid=""
    [ "$rc" -eq 0 ] && rc=1
fi
# The gateway's own stanza counters, to tell the generator's view from the gateway's.
if command -v curl >/dev/null; then
    curl -s --max-time 2 "http://127.0.0.1:$metrics_port/metrics" |
        grep -E '^fedgate_(stanzas|streams|queue|handshake|flow|io|parser)[a-z_]*(\{[^}]*\})? [1-9]' | sed 's/^/gateway: /' || true
    # Whether the workers saw the churn: any policy refresh/recheck series the gateway exports.
    if [ -n "$churn_ms" ]; then
        curl -s --max-time 2 "http://127.0.0.1:$metrics_port/metrics" | grep -E '^fedgate_[a-z_]*(refresh|recheck|policy_gen|policy_change)' |
            sed 's/^/gateway: /' | grep . || echo "gateway: /metrics has no policy refresh/recheck series"
    fi
fi
if [ "$rc" -ne 0 ]; then
    echo "fedgate-bench exit $rc; gateway log tail:" >&2
    tail -20 "$dir/fedgate.log" >&2
fi
exit "$rc"
