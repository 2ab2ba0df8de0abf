#!/usr/bin/env bash
# Train one recipe on a lent GPU machine in a single device call, pick its checkpoint on val, and send back what
# fits (docs/gan.md, "Training on a lent GPU").
#
#   here:    python tools/pack_device_run.py
#   device:  run(command="bash tools/device_train.sh configs/realistic_128.yaml 6.5", carry=[".device"],
#                timeout_s=600)
#   here:    mkdir -p runs/device && cat FILES_AT/pick.pth.part* > runs/device/pick.pth
#            python benchmarks/score.py --test_dir data/scenery_large/val --checkpoint runs/device/pick.pth
#
# Arguments: a configs/ recipe, the training minutes (main.py --max_minutes: the run stops after the epoch that
# passes them, so leave a minute or two of the call for the start, the last checkpoint, val and the pick), then
# any main.py flags, which override the recipe. --epochs is set high so that the minutes decide (recipes with
# --lr_decay_start need an explicit --epochs).
# Back under $OUT (8 files at most, 16 MiB each): train.log, losses.csv, val_metrics.csv, pick.txt,
# last_samples.png and the picked generator export in 15 MiB parts (pick.pth.part0, part1, ...; look.pth.part* when
# no checkpoint passes the rule: the lowest val SWD, to look at, not a pick). The training
# checkpoints (about 170 MB each) stay behind: the device machine is bare on every start.
# RUN_DIR (default runs/device) and OUT name the run's folder and the output folder, so that two recipes can train
# side by side in one call.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash tools/device_train.sh CONFIG MINUTES [main.py flags]" >&2
    exit 2
fi
config=$1 minutes=$2
shift 2
[ -d .device/train ] || { echo "error: .device/train missing: run python tools/pack_device_run.py here and carry .device" >&2; exit 2; }
out=${OUT:-runs/device_out}
run=${RUN_DIR:-runs/device}
mkdir -p "$out"
# The pack's packages (pytorch_msssim, pytorch_fid, the EfficientNet-Lite0 weights) first, then the machine's own.
export PYTHONPATH="$PWD/.device/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}

# The smallest crop: the recipe's image size over the packed photos' shorter side, so that no crop is enlarged
# (0.4 for 128² at the pack's 320 px, 0.8 for 256²).
short=$(cat .device/short_side.txt 2>/dev/null || echo 320)
min_scale=$("$python" -c 'import sys, main
args = main.parse_args(["--mode", "train", "--config", *sys.argv[2:]])
print(min(1.0, args.image_size / int(sys.argv[1])))' "$short" "$config" "$@")

# Training: the log to $OUT/train.log, the lines that matter to the call's output.
status=0
"$python" main.py --mode train --config "$config" --train_dir .device/train --val_dir .device/val \
    --checkpoint_dir "$run" --results_dir "$run" --overwrite --epochs 100000 --save_every 4 --num_workers 6 \
    --min_crop_scale "$min_scale" --max_minutes "$minutes" "$@" > "$out/train.log" 2>&1 || status=$?
grep -a -E "^(using|initialised|saved|val epoch|stopped|error)|Error" "$out/train.log" | tail -n 40 || true
cp "$run/train/losses.csv" "$run/train/val_metrics.csv" "$out/" 2>/dev/null || true
last=$(ls "$run"/train/samples/*.png 2>/dev/null | tail -n 1 || true)
[ -z "$last" ] || cp "$last" "$out/last_samples.png"
[ "$status" -eq 0 ] || { echo "training failed (exit $status): the end of $out/train.log:" >&2; tr "\r" "\n" < "$out/train.log" | tail -n 20 >&2; exit "$status"; }

# The pick by the rule on val (the line: the harmonic fill on the same photos + 0.5 dB; chroma and stripe shares
# at most the truth's + 0.03 / + 0.10), exported and split.
# When no checkpoint passes the rule (the line or the share bounds), the lowest-SWD one comes back as
# look.pth.part*, to be looked at, not a pick.
name=pick
"$python" tools/select_checkpoint.py --val_metrics "$run/train/val_metrics.csv" --harmonic_dir .device/val \
    --harmonic_cache .device/val_harmonic.json \
    --export "$run/pick.pth" > "$out/pick.txt" 2>&1 || status=$?
if [ "$status" -ne 0 ] && grep -q "no checkpoint passes the rule" "$out/pick.txt"; then
    name=look status=0
    echo "no checkpoint passes the rule: the lowest val SWD of all comes back as look.pth (not a pick)" >> "$out/pick.txt"
    "$python" tools/select_checkpoint.py --val_metrics "$run/train/val_metrics.csv" --min_lowpass=-1e9 \
        --export "$run/$name.pth" >> "$out/pick.txt" 2>&1 || status=$?
fi
tr "\r" "\n" < "$out/pick.txt" | grep -a -E "^(the truth|pick|exported|error|no checkpoint)" || true
[ "$status" -eq 0 ] || exit "$status"
split -b 15M -d -a 1 "$run/$name.pth" "$out/$name.pth.part"
ls -l "$out"
