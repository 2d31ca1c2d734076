# Helpers shared by the Benchmarks/run-* scripts (sourced, not run).
CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID...: user+system clock ticks of these processes (from /proc/PID/stat).
cpu_ticks() { local t=0 s p; for p in "$@"; do [[ -r /proc/$p/stat ]] || continue; s=$(</proc/$p/stat); s=${s##*) }; set -- $s; t=$((t + ${12} + ${13})); done; echo $t; }

# with_descendants PID...: these processes and all their descendants as they are now, each once.
# Taken again at the end of a run, it counts a process born during the run — the checkpoint
# helper starts with the first checkpoint due — from its birth (it was not in the first list).
with_descendants() {
  local -A seen=(); local -a q=("$@"); local p c
  while ((${#q[@]})); do
    p=${q[0]}; q=("${q[@]:1}")
    [[ -z $p || -n ${seen[$p]:-} ]] && continue
    seen[$p]=1
    for c in $(pgrep -P "$p" 2>/dev/null || true); do q+=("$c"); done
  done
  echo "${!seen[@]}"
}

# sys_busy: busy clock ticks of the whole machine so far (steal excluded).
sys_busy() { local _c u n s i w q sq st r; read -r _c u n s i w q sq st r < /proc/stat; echo $((u+n+s+q+sq)); }

# wait_quiet: up to QUIET_WAIT (20) s for a 1-second sample with < 15 % of a core busy.
wait_quiet() {
  local a b; for _ in $(seq "${QUIET_WAIT:-20}"); do a=$(sys_busy); sleep 1; b=$(sys_busy); (( (b-a)*100/CLK_TCK < 15 )) && return 0; done
  echo "   (machine still busy, measuring anyway)" >&2
}

# median: of the numbers on stdin, one per line ("n/a" for none).
median() { sort -g | awk '{a[NR]=$1} END{ if (NR==0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }

# "${UNBLOCKED[@]}" CMD ARGS...: runs CMD with no signal blocked. A parent may hand its children a
# blocked mask (a test runner's worker threads block almost every signal, and exec keeps the
# mask): wrk would then never see the SIGINT that stops a counted run.
UNBLOCKED=(python3 -c 'import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execvp(sys.argv[1], sys.argv[1:])')

# bench_template BIN DB: the seed's Example B template, invoice_delivery (send_email.lua sends
# Example A and Example B in turn).
bench_template() {
  local f; f=$(mktemp /tmp/tickiti-bench-template-XXXXXX.html)
  printf '%s' '<p>Hi,</p><p>Invoice {{invoice_number}} for {{amount}} is due on {{due_date}}.</p><p>Thank you for your business.</p>' > "$f"
  "$1" template add --db "$2" --identifier invoice_delivery --subject 'Invoice {{invoice_number}}' --html-file "$f" >/dev/null
  rm -f "$f"
}

# Bytes written, as the disk received them: disk_dev PATH names the block device holding PATH
# (its /sys/class/block entry, e.g. vda or nvme0n1p2; empty when there is none, e.g. tmpfs) and
# disk_bytes DEV prints the bytes written to it since boot (sectors written x 512): the WAL,
# checkpoints into the database file and the file system's journal — every process's, so a
# measurement wants a quiet machine and a `sync` before it. Not /proc/PID/io write_bytes: with
# large folios (Linux 6.x, ext4) a 4 KiB pwrite into a cached file counts its whole folio, up to
# 64 KiB — measured here, 301 KB "written" per message of which 43 KB reached the disk.
disk_dev() {
  local src; src=$(df --output=source "$1" 2>/dev/null | tail -n1)
  [[ $src == /dev/* ]] || return 0
  src=$(basename "$(readlink -f "$src")")
  [[ -r /sys/class/block/$src/stat ]] && echo "$src"
  return 0
}
disk_bytes() { [[ -n ${1:-} ]] || { echo 0; return; }; echo $(( $(awk '{print $7}' "/sys/class/block/$1/stat") * 512 )); }
