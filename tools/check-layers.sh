#!/usr/bin/env bash
# The layer rule of src/ (src/README): a layer's files include and call only their own layer and
# the layers below it.
#   tools/check-layers.sh [OBJDIR]
# 1. Every #include "..." in src/<layer>/ names a header by its path from src/ ("exec/exec.h"),
#    in its own layer or a lower one.
# 2. With OBJDIR (build/obj, where make puts build/obj/<layer>/x.o): no object calls or reads an
#    sx_/sx__ symbol that only a higher layer's object defines.
# Prints every violation and exits 1 if there is one, 0 otherwise.
set -u
cd "$(dirname "$0")/.."
layers=(base exec time cancel io flow guard)
rank() {
  local i
  for i in "${!layers[@]}"; do [ "${layers[$i]}" = "$1" ] && { echo "$i"; return; }; done
  echo -1
}
bad=0

# Every source file lives in a layer's folder.
for f in src/*.c src/*.h; do
  [ -e "$f" ] || continue
  echo "$f: outside every layer folder (src/README)"; bad=1
done
for d in src/*/; do
  l=$(basename "$d")
  [ "$(rank "$l")" -ge 0 ] || { echo "$d: not a layer (src/README lists them)"; bad=1; }
done

for l in "${layers[@]}"; do
  r=$(rank "$l")
  for f in src/"$l"/*.[ch]; do
    [ -e "$f" ] || continue
    while IFS=: read -r line inc; do
      hdr=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$inc")
      [ -n "$hdr" ] || continue
      hl=${hdr%%/*}
      if [ "$hl" = "$hdr" ] || [ "$(rank "$hl")" -lt 0 ]; then
        echo "$f:$line: #include \"$hdr\": name internal headers by their path from src/ (x/x.h)"
        bad=1
      elif [ "$(rank "$hl")" -gt "$r" ]; then
        echo "$f:$line: #include \"$hdr\": $l may not include the higher layer $hl"
        bad=1
      elif [ ! -e "src/$hdr" ]; then
        echo "$f:$line: #include \"$hdr\": no such header"
        bad=1
      fi
    done < <(grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
  done
done

objdir=${1:-}
if [ -n "$objdir" ]; then
  defs=$(mktemp); uses=$(mktemp)
  trap 'rm -f "$defs" "$uses"' EXIT
  for l in "${layers[@]}"; do
    for o in "$objdir/$l"/*.o; do
      [ -e "$o" ] || continue
      nm --defined-only "$o" | awk -v l="$l" '$2 ~ /^[TDBRV]$/ && $3 ~ /^sx_/ {print $3, l}'
    done
  done | sort -u > "$defs"
  for l in "${layers[@]}"; do
    for o in "$objdir/$l"/*.o; do
      [ -e "$o" ] || continue
      nm --undefined-only "$o" | awk -v l="$l" -v o="$o" '$2 ~ /^sx_/ {print $2, l, o}'
    done
  done | sort > "$uses"
  while read -r sym l o; do
    dl=$(awk -v s="$sym" '$1 == s {print $2; exit}' "$defs")
    [ -n "$dl" ] || continue
    if [ "$(rank "$dl")" -gt "$(rank "$l")" ]; then
      echo "$o: uses $sym, defined in the higher layer $dl"
      bad=1
    fi
  done < "$uses"
fi

if [ "$bad" -ne 0 ]; then
  echo "check-layers: the layer rule is broken (src/README)"
  exit 1
fi
echo "check-layers: ok (${layers[*]}, each including and calling only those before it)"
