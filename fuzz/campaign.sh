#!/usr/bin/env bash
# A longer campaign that grows the committed corpus: runs each target for
# SECONDS, writing new inputs into fuzz/corpus/<target>/, logs coverage
# (cov = edges, ft = features) against elapsed time to
# fuzz/logs/<target>.tsv, then minimises the corpus with `cargo fuzz cmin`.
#
#   fuzz/campaign.sh SECONDS [TARGET...]
#
# Run it in the background for hours (e.g. SECONDS=3600); add `-jobs=N`
# style parallelism by running several targets in separate invocations.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:?seconds per target}
shift
if [ $# -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
cargo fuzz build --sanitizer none
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
    echo -e "seconds\texecs\tcov\tft\tcorpus" > "fuzz/logs/$t.tsv"
    cargo fuzz build --sanitizer none "$t"
    start=$(date +%s)
    cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -timeout=10 \
        -rss_limit_mb=1024 -print_final_stats=1 2>&1 | while IFS= read -r line; do
        if [[ $line =~ ^#([0-9]+).*cov:\ ([0-9]+)\ ft:\ ([0-9]+)\ corp:\ ([0-9]+) ]]; then
            echo -e "$(( $(date +%s) - start ))\t${BASH_REMATCH[1]}\t${BASH_REMATCH[2]}\t${BASH_REMATCH[3]}\t${BASH_REMATCH[4]}"
        fi
        case $line in *ERROR*|*panicked*|*SUMMARY*) echo "$line" >&2 ;; esac
    done >> "fuzz/logs/$t.tsv"
    cargo fuzz cmin --sanitizer none "$t" "fuzz/corpus/$t" > /dev/null 2>&1
    echo "$t: $(tail -1 "fuzz/logs/$t.tsv" | cut -f1-5) corpus files: $(ls "fuzz/corpus/$t" | wc -l)"
done
