# Sourced by the miniature recipes: `stage NAME COMMAND...` runs COMMAND once (skipped once OUT/NAME.done
# exists) and appends its wall time and final loss to OUT/recipe_log.tsv. Needs OUT set.
mkdir -p "$OUT"
LOG="$OUT/recipe_log.tsv"
[ -f "$LOG" ] || printf 'stage\tseconds\tfinal_loss\n' > "$LOG"

stage() {
  local name=$1; shift
  if [ -f "$OUT/$name.done" ]; then echo "== $name: done, skipping"; return; fi
  echo "== $name"
  local t0=$SECONDS
  "$@"
  local loss="-"
  [ -f "$OUT/$name/logs/loss.csv" ] && loss=$(tail -n 1 "$OUT/$name/logs/loss.csv" | cut -d, -f2)
  printf '%s\t%s\t%s\n' "$name" "$((SECONDS - t0))" "$loss" >> "$LOG"
  touch "$OUT/$name.done"
}
