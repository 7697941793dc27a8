#!/usr/bin/env bash
# Fuzz every target (or the ones named) for a bounded time, on the stable
# toolchain: cargo-fuzz with `--sanitizer none` needs no nightly. Installs
# the pinned cargo-fuzz if it is missing. Exits non-zero on any crash; the
# crashing input is left in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# New inputs go to a scratch directory, so a run leaves the committed
# corpus (fuzz/corpus/<target>/, read here as seeds) untouched. To grow the
# corpus instead, see fuzz/campaign.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
shift || true
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install --locked "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
cargo fuzz build --sanitizer none
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    echo "== fuzz $t (${secs}s)"
    # grep hides the noise; the exit status that matters is libFuzzer's.
    set +e +o pipefail
    cargo fuzz run --sanitizer none "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 2>&1 | grep -E "INITED|DONE|ERROR|panicked|SUMMARY"
    status=${PIPESTATUS[0]}
    set -e -o pipefail
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $t failed (exit $status); the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: ${#targets[@]} targets ran ${secs}s each without a crash"
