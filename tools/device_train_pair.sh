#!/usr/bin/env bash
# Two recipes side by side on one lent GPU, in one device call (docs/gan.md, "Training on a lent GPU"): each
# `tools/device_train.sh` run in its own folder, then what comes back packed to fit the tool's 8 files.
#
#   here:    python tools/pack_device_run.py
#   device:  run(command="bash tools/device_train_pair.sh 6.5 'configs/realistic_128.yaml' \
#                'configs/realistic_256.yaml --batch_size 16'", carry=[".device"], timeout_s=600)
#   here:    mkdir -p runs/device_a && tar xzf FILES_AT/a.tgz -C runs/device_a; cat FILES_AT/a/*.part* > runs/device_a/pick.pth (or look.pth)
#
# Arguments: the training minutes of each run, then two recipe specs (a configs/ file and main.py flags, quoted).
# Back under $OUT: a.tgz and b.tgz (train.log, losses.csv, val_metrics.csv, pick.txt, last_samples.png, the run's
# stdout), the two exports' parts under a/ and b/, and the GPU's use every 20 s in the output. Each run gets 6 data
# workers and 3 torch threads: on 2026-12-04 two runs with the default thread count (14 and 9 threads, 12 workers,
# 16 cores) decoded the photos at 20 a second, against 400 on this repository's 2-core VM.
set -u
if [ $# -ne 3 ]; then
    echo "usage: bash tools/device_train_pair.sh MINUTES 'CONFIG_A [flags]' 'CONFIG_B [flags]'" >&2
    exit 2
fi
minutes=$1
out=${OUT:-runs/device_out}
mkdir -p "$out"
(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader -l 20 > "$out/gpu.log" 2>/dev/null &)
run_one() {  # NAME 'CONFIG [flags]'
    local name=$1 config flags
    read -r config flags <<< "$2"
    # shellcheck disable=SC2086  # the flags are split into words on purpose; EXTRA (--cpu ...) is for a dry run
    OUT=$out/$name RUN_DIR=runs/device_$name bash tools/device_train.sh "$config" "$minutes" $flags --threads 3 \
        ${EXTRA:-} > "$out/$name.txt" 2>&1
    local status=$?
    echo "exit $status" >> "$out/$name.txt"
    echo "$status" > "$out/$name.status"
}
run_one a "$2" &
first=$!
run_one b "$3"
wait "$first"
pkill -f "nvidia-smi --query-gpu" 2>/dev/null
for run in a b; do
    echo "== $run"
    tr "\r" "\n" < "$out/$run.txt" | cut -c1-300
    mkdir -p "$out/$run"
    mv "$out/$run.txt" "$out/$run/stdout.txt"
    (cd "$out/$run" && tar czf "../$run.tgz" --remove-files $(ls | grep -v '\.part'))
done
echo "== GPU use, every 20 s"
tr "\n" " " < "$out/gpu.log" 2>/dev/null
echo
rm -f "$out/gpu.log"
failed=""
for run in a b; do
    [ "$(cat "$out/$run.status" 2>/dev/null)" = 0 ] || failed="$failed $run"
    rm -f "$out/$run.status"
done
(cd "$out" && find . -type f -exec ls -l {} +)
if [ -n "$failed" ]; then  # what came back is kept, but the call is not a success
    echo "error: run(s)$failed failed (see their stdout.txt above)" >&2
    exit 1
fi
