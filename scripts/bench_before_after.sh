#!/usr/bin/env bash
# Every benchmark's headline at an earlier revision and now, side by side in one run:
# for each bench, the earlier tree then this one, so both meet the same machine load.
#   scripts/bench_before_after.sh REV [BENCH_ARGS...]     e.g. REV --quick
# Prints each bench's two headlines; the full outputs stay in artifacts/before_after/.
set -euo pipefail
cd "$(dirname "$0")/.."
rev="$1"
shift
here="$(pwd)"
out="$here/artifacts/before_after"
mkdir -p "$out"
old="$(mktemp -d)/before"
git worktree add --detach -q "$old" "$rev"
trap 'git worktree remove --force "$old"' EXIT
# The earlier tree's compiled modules, built by pip as for an install, placed beside its sources.
.venv/bin/python -m pip wheel -q --no-deps -w "$old/.wheel" "$old" >/dev/null
.venv/bin/python -m zipfile -e "$old"/.wheel/sidetrace-*.whl "$old/.wheel/unpacked"
(cd "$old/.wheel/unpacked" && find . -name '*.so' -exec cp --parents {} "$old" \;)

headline() { grep -E '^[a-z0-9_]+=' "$1" | tail -1; }
for bench in bench/*.py; do
    name="$(basename "$bench" .py)"
    # PYTHONPATH puts the earlier packages before the editable install, for the bench's
    # own imports and for every process it starts.
    (cd "$old" && PYTHONPATH="$old" timeout 1800 "$here/.venv/bin/python" "$bench" "$@") \
        >"$out/$name.before" 2>&1 || echo "$name: the earlier tree's run failed" >&2
    timeout 1800 .venv/bin/python "$bench" "$@" >"$out/$name.after" 2>&1 \
        || echo "$name: this tree's run failed" >&2
    echo "$name before: $(headline "$out/$name.before")"
    echo "$name after:  $(headline "$out/$name.after")"
done
