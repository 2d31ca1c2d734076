# Helpers shared by the Benchmarks/run-* scripts (sourced, not run).
CLK_TCK=$(getconf CLK_TCK)

# cpu_ticks PID...: user+system clock ticks of these processes (from /proc/PID/stat).
cpu_ticks() { local t=0 s p; for p in "$@"; do [[ -r /proc/$p/stat ]] || continue; s=$(</proc/$p/stat); s=${s##*) }; set -- $s; t=$((t + ${12} + ${13})); done; echo $t; }

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

# write_bytes PIDS...: bytes the processes caused to be written to storage (/proc/PID/io
# write_bytes: the WAL, checkpoints into the database file, anything else), summed.
write_bytes() { local t=0 p v; for p in "$@"; do [[ -r /proc/$p/io ]] || continue; v=$(awk '/^write_bytes:/ {print $2}' /proc/$p/io); t=$((t + ${v:-0})); done; echo $t; }
