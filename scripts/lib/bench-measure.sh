# Sourced by the apply benchmarks: `measure LABEL CMD...` runs CMD (stdout in
# $work/out), then prints the label, wall time (s), peak RSS (MB), and the
# requests and writes (create/update/patch/delete) the API server's audit log
# ($audit) recorded for user `admin` meanwhile. Needs $work and $audit.
measure() {
  local label=$1; shift
  local from; from=$(stat -c %s "$audit")
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  sleep 0.2
  local wall rss; read -r wall rss <"$work/time"
  local counts; counts=$(tail -c +"$((from + 1))" "$audit" | python3 -c '
import json, sys
req = wr = 0
for line in sys.stdin:
    try: e = json.loads(line)
    except ValueError: continue
    if e.get("stage") != "ResponseComplete" or e.get("user", {}).get("username") != "admin": continue
    req += 1
    wr += e.get("verb") in ("create", "update", "patch", "delete")
print(req, wr)')
  printf '%-40s %9s %9s %9s %7s\n' "$label" "$wall" "$((rss / 1024))" ${counts}
}
