# Shared by scripts/*.sh (sourced, not run): a temp dir and background processes that are
# cleaned up on exit, and loopback port helpers.

tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Whether something accepts on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Wait up to 10 s for 127.0.0.1:$1 to accept.
wait_port() { for _ in $(seq 200); do port_open "$1" && return 0; sleep 0.05; done; return 1; }
