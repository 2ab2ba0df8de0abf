"""Gen4Gen step 3: repaint everything but the objects of step-2 compositions with SDXL inpainting.

For every composition `img_*.png` (+ `mask_*.png`, white on the objects) of `--src-dir` and every
background picked from the scene folders of `--bkg-dir`, the objects are laid over the (blurred)
background photo, or over noise with `--noise-bkg`, and the rest is repainted from a prompt such as
"a realistic photo of a cat, a dog and a houseplant in a garden", `--images-per-pair` times. Writes
`<dest>/<src name>_repaint/<img stem>_repaint-id_<k:06d>+<caption>.png` and the CSV
`<ann-dir>/<src name>_repaint_ann.csv` (directory,image_name,background_prompt). A rerun skips
the images that exist, so an interrupted run resumes, with any number of processes.

    # real model (GPU, downloads ~7 GB from the Hugging Face hub on first use)
    python s3_background_repainting.py \\
        --src-dir data/examples/s2_object_compositions/1_dog+rabbit+flower \\
        --bkg-dir backgrounds --dest data/s3_background_repainting --objects dog rabbit flower
    # one process per GPU, 4 images per pipeline call; the processes split the images
    accelerate launch --multi_gpu --num_processes 8 s3_background_repainting.py ... --batch-size 4
    # noise start images, background phrase from --prompt
    python s3_background_repainting.py --src-dir <step-2 folder> --noise-bkg --prompt "on the beach"
    # offline smoke run with a tiny random pipeline (CPU, seconds)
    python tools/make_tiny_pipeline.py --kind sdxl-inpaint --out /tmp/tiny-sdxl
    python s3_background_repainting.py --src-dir <step-2 folder> --bkg-dir backgrounds \\
        --model /tmp/tiny-sdxl --resolution 64 --num-steps 2
"""
import argparse
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from data.images import check_image_file
from sd.pipelines import (DTYPE_NAMES, INPAINT_MODELS, check_resolution, is_sdxl, load_inpaint_pipeline,
                          pick_device_dtype)
from sd.repaint import (NEGATIVE_PROMPT, build_caption, composite, find_compositions,
                        find_scenes, load_rgb, mask_to_image, noise_start, objects_from_dirname,
                        output_name, photo_start, pick_backgrounds, read_annotations,
                        repaint_mask, scene_phrase, write_annotations)
from utils.cli import Parser, run
from utils.errors import InputError
from utils.files import atomic_write, check_writable_folder

# torch, accelerate and diffusers are imported after the flag and folder checks (in main, repaint
# and the functions of sd/pipelines.py): a wrong path or value is refused in well under a second,
# not after ~5 s of imports. Everything above is light.


def parse_args(argv=None):
    parser = Parser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2])
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--src-dir", required=True, type=Path,
                    help="step-2 composition folder with img_*.png and mask_*.png")
    io.add_argument("--bkg-dir", nargs="+", type=Path, default=[],
                    help="folder(s) of scene folders, e.g. backgrounds (garden/, beach/, ...), or "
                         "one scene folder, e.g. backgrounds/garden")
    io.add_argument("-n-bkg", "--max-num-bkg-scenes", type=int, default=3,
                    help="photos picked at random per scene (noise starts per composition with "
                         "--noise-bkg and no --bkg-dir) (default: 3)")
    io.add_argument("--images-per-pair", type=int, default=1,
                    help="images per (composition, background) pair, each with its own seed and "
                         "repaint-id k (default: %(default)s)")
    io.add_argument("--noise-bkg", "--noise_bkg", action="store_true",
                    help="start from uniform noise instead of the background photo")
    io.add_argument("--dest", type=Path, default=Path("data/s3_background_repainting"),
                    help="output root; images go to <dest>/<src name>_repaint "
                         "(default: %(default)s)")
    io.add_argument("--ann-dir", type=Path, default=None,
                    help="CSV folder (default: <dest>/<src name>_repaint/gen_annotations)")
    io.add_argument("--overwrite", action="store_true", help="redo images that already exist")
    prompt = parser.add_argument_group("prompt")
    prompt.add_argument("--objects", nargs="+", default=None,
                        help="objects named in the prompt (default: from the folder name, "
                             "1_cat+dog+houseplant -> cat dog houseplant)")
    prompt.add_argument("--prompt", default="",
                        help='background phrase replacing the scene\'s, e.g. "on the beach"')
    prompt.add_argument("--negative-prompt", default=NEGATIVE_PROMPT,
                        help='negative prompt ("" for none) '
                             "(default: against low quality, cartoon, CGI...)")
    model = parser.add_argument_group("model and sampling")
    model.add_argument("--inpaint-model-name", default="sd-xl-1.0", choices=INPAINT_MODELS,
                       help="default hub model: " + ", ".join(f"{k} = {v}" for k, v in
                                                             INPAINT_MODELS.items()))
    model.add_argument("--model", default=None,
                       help="hub id or local pipeline folder overriding --inpaint-model-name")
    model.add_argument("--refiner", default=None,
                       help="SDXL refiner (hub id stabilityai/stable-diffusion-xl-refiner-1.0 or "
                            "folder) that finishes the base's latents; its output is saved")
    model.add_argument("--refiner-start", type=float, default=0.8,
                       help="fraction of the denoising done by the base before the refiner "
                            "(default: %(default)s)")
    model.add_argument("-gs", "--guidance-scale", type=float, default=6.0,
                       help="classifier-free guidance scale (default: %(default)s)")
    model.add_argument("--strength", type=float, default=0.9,
                       help="how much of the start image is replaced, in (0, 1] "
                            "(default: %(default)s)")
    model.add_argument("--num-steps", type=int, default=60,
                       help="denoising steps (default: %(default)s)")
    model.add_argument("--resolution", type=int, default=1024,
                       help="output side in pixels (default: %(default)s)")
    model.add_argument("--batch-size", type=int, default=1,
                       help="images per pipeline call, to keep a large GPU busy; the images are "
                            "those of --batch-size 1 up to float rounding (default: %(default)s)")
    model.add_argument("-blur-size", "--blur-size", type=int, default=5,
                       help="box-blur radius of the object mask, for soft borders (0 = none) "
                            "(default: %(default)s)")
    model.add_argument("--keep-foreground", action=argparse.BooleanOptionalAction, default=True,
                       help="paste the object pixels back after decoding (default: on)")
    model.add_argument("--seed", type=int, default=0,
                       help="seed of the background picks, noise and sampling "
                            "(default: %(default)s)")
    model.add_argument("--device", default=None,
                       help="cuda, cpu, ... (default: cuda if present); under accelerate launch "
                            "each process takes its own GPU, and --device cpu runs on CPUs (gloo)")
    model.add_argument("--dtype", default=None, choices=DTYPE_NAMES,
                       help="default: float16 on GPU, float32 on CPU "
                            "(float16 is ~30x slower there)")
    model.add_argument("--cpu-offload", action="store_true",
                       help="keep models in RAM, each on the GPU only while it runs (less VRAM)")
    return parser.parse_args(argv)


def check_args(args):
    """Fail fast, before any model is loaded, on flags that cannot work."""
    check_resolution(args.resolution)
    for flag, value in (("--num-steps", args.num_steps), ("--batch-size", args.batch_size),
                        ("--images-per-pair", args.images_per_pair),
                        ("-n-bkg/--max-num-bkg-scenes", args.max_num_bkg_scenes)):
        if value < 1:
            raise InputError(f"{flag} {value}: must be at least 1")
    if not 0.0 < args.strength <= 1.0:
        raise InputError(f"--strength {args.strength}: must be in (0, 1]")
    if int(args.num_steps * args.strength) < 1:  # diffusers runs int(steps * strength) steps
        raise InputError(f"--num-steps {args.num_steps} with --strength {args.strength} runs no "
                         "denoising step: raise --num-steps (2 or more) or --strength")
    if not 0.0 < args.refiner_start < 1.0:
        raise InputError(f"--refiner-start {args.refiner_start}: must be in (0, 1)")
    if args.blur_size < 0:
        raise InputError(f"--blur-size {args.blur_size}: must be 0 or more")
    if not args.bkg_dir and not args.noise_bkg:
        raise InputError("--bkg-dir is missing: pass a folder of scene folders (e.g. backgrounds), "
                         "or use --noise-bkg to start from noise")


def find_inputs(args):
    """(compositions with their masks, those without one, [(scene, photo)] backgrounds)."""
    compositions = find_compositions(args.src_dir)
    unmasked = [img for img, mask in compositions if mask is None]
    compositions = [(img, mask) for img, mask in compositions if mask is not None]
    if not compositions:
        raise InputError(f"--src-dir {args.src_dir}: no img_* image has its mask_* file")
    if args.bkg_dir:
        backgrounds = pick_backgrounds(find_scenes(args.bkg_dir), args.max_num_bkg_scenes,
                                       args.seed)
    else:  # --noise-bkg without photos: n noise starts, phrase from --prompt
        backgrounds = [(None, None)] * args.max_num_bkg_scenes
    return compositions, unmasked, backgrounds


def check_input_images(compositions, backgrounds) -> None:
    """Every composition, mask and picked background photo by its header (data/images.py's rule: a
    decompression bomb, anything over 40 megapixels or under 16 px is refused, naming the file), before
    torch is imported and any model is loaded: a bad file costs well under a second, not a model load."""
    photos = {photo for _, photo in backgrounds if photo is not None}
    for path in sorted({p for pair in compositions for p in pair} | photos):
        check_image_file(path)


def pair_seed(seed: int, *keys) -> int:
    """Seed of one output, from the run seed and its name: a resumed run draws the same noise."""
    words = [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence([seed, *words]).generate_state(1)[0])


def plan_images(args, compositions, backgrounds, objects, out_dir):
    """One unit of work per output image: inputs, prompt, repaint-id k, file name and CSV row.

    The list depends only on the flags and the input folders, so every process of a run, and a
    resumed run with any number of processes, plans the same images in the same order.
    """
    units = []
    for img, mask in compositions:
        for i, (scene, photo) in enumerate(backgrounds):
            phrase = args.prompt or (scene_phrase(scene) if scene else "")
            caption = build_caption(objects, phrase)
            for b in range(args.images_per_pair):
                # k numbers the outputs of one composition, 1-based, as Gen4Gen's repaint-id.
                k = i * args.images_per_pair + b + 1
                name = output_name(img.stem, k, caption)
                units.append(dict(img=img, mask=mask, photo=photo, caption=caption, k=k, name=name,
                                  row={"directory": str(out_dir), "image_name": name,
                                       "background_prompt": phrase},
                                  noise_key=(img.stem, "noise", i)))
    return units


def prepare(unit, args):
    """(composition, repaint mask, start image) of one output, at --resolution."""
    size = args.resolution
    objects = load_rgb(unit["img"], size)  # (size, size, 3) uint8 composition
    mask = repaint_mask(Image.open(unit["mask"]), size, args.blur_size)  # 1 = repaint
    if args.noise_bkg:  # one noise start per pair: its images differ by their sampling seed
        rng = np.random.default_rng(pair_seed(args.seed, *unit["noise_key"]))
        background = noise_start(size, rng)
    else:
        background = photo_start(unit["photo"], size)
    return objects, mask, composite(objects, background, mask)


def repaint(pipe, refiner, units, args):
    """One inpainting (and refiner) call for a batch of outputs -> their PIL images, in order.

    The pipeline gets lists of prompts, start images and masks, and one generator per image seeded
    from its name; diffusers draws each image's VAE sample and noise from its own generator, so a
    batch makes the images of --batch-size 1 up to float rounding.
    """
    import torch

    inputs = [prepare(unit, args) for unit in units]
    generators = [torch.Generator().manual_seed(pair_seed(args.seed, unit["img"].stem, unit["k"]))
                  for unit in units]
    call = dict(prompt=[unit["caption"] for unit in units],
                negative_prompt=([args.negative_prompt] * len(units) if args.negative_prompt
                                 else None),
                image=[Image.fromarray(start) for _, _, start in inputs],
                mask_image=[mask_to_image(mask) for _, mask, _ in inputs],
                height=args.resolution, width=args.resolution, guidance_scale=args.guidance_scale,
                num_inference_steps=args.num_steps, strength=args.strength, generator=generators)
    if refiner is None:
        images = pipe(**call).images
    else:
        # Ensemble of expert denoisers (diffusers SDXL docs): the base denoises the first part of
        # the schedule and hands its latents to the refiner, whose decoded output is the result.
        latents = pipe(**call, denoising_end=args.refiner_start, output_type="latent").images
        images = refiner(**{**call, "image": latents}, denoising_start=args.refiner_start).images
    if args.keep_foreground:
        # The VAE round trip changes every pixel; paste the objects back with the soft mask.
        images = [Image.fromarray(composite(objects, np.asarray(image.convert("RGB")), mask))
                  for image, (objects, mask, _) in zip(images, inputs)]
    return images


def files_in(folder) -> set:
    """Names in `folder` (none if it does not exist yet): one listing, not a stat per image."""
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def annotation_rows(kept, units, on_disk):
    """CSV rows, one per image: the kept rows, then those of the planned images that are on disk."""
    rows = dict(kept)
    rows.update((unit["name"], unit["row"]) for unit in units if unit["name"] in on_disk)
    return rows.values()


def main(args):
    # Checks: flags and input folders, before torch is imported.
    check_args(args)
    compositions, unmasked, backgrounds = find_inputs(args)
    check_input_images(compositions, backgrounds)
    src_name = args.src_dir.resolve().name
    objects = args.objects if args.objects is not None else objects_from_dirname(src_name)
    out_dir = args.dest / f"{src_name}_repaint"
    ann_dir = args.ann_dir or out_dir / "gen_annotations"
    ann_path = ann_dir / f"{src_name}_repaint_ann.csv"
    check_writable_folder(out_dir, "--dest")  # before the models load (minutes for SDXL)
    check_writable_folder(ann_dir, "--ann-dir" if args.ann_dir else "--dest")

    # Plan: every process lists the same images and finds the same ones done. Nothing is written
    # before all processes have planned (the barrier below), so they all split the same to-do list.
    units = plan_images(args, compositions, backgrounds, objects, out_dir)
    on_disk = files_in(out_dir)
    todo = units if args.overwrite else [u for u in units if u["name"] not in on_disk]

    # Setup: device, precision and processes are decided once, here.
    import torch
    from accelerate import PartialState

    device, dtype = pick_device_dtype(args.device, args.dtype)
    # One process under plain python; under accelerate launch / torchrun, cpu=True makes the
    # processes talk over gloo, as the NCCL default needs GPUs.
    state = PartialState(cpu=device.type == "cpu")
    if state.num_processes > 1 and device.type == "cuda":
        device = state.device  # cuda:<local rank>: one GPU per process
    is_main = state.is_main_process
    if not is_main:  # one copy of the loading bars and library warnings: the main process's
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging
        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
    if is_main:
        for img in unmasked:
            print(f"warning: {img} has no mask_{img.stem[4:]} beside it, skipped", file=sys.stderr)
        if dtype == torch.float16 and device.type == "cpu":
            print("warning: float16 on CPU is ~30x slower than --dtype float32", file=sys.stderr)
        split = (f", split between {state.num_processes} processes"
                 if state.num_processes > 1 else "")
        print(f"{len(compositions)} compositions x {len(backgrounds)} backgrounds x "
              f"{args.images_per_pair} images -> {out_dir} ({len(units) - len(todo)} of "
              f"{len(units)} already done{split})")
    # Only the main process writes the CSV. It keeps the rows of an earlier CSV whose image exists,
    # also of images this plan does not make (an earlier run with a larger -n-bkg, say).
    kept = ({n: r for n, r in read_annotations(ann_path).items() if n in on_disk}
            if is_main else {})
    if not todo:  # still add the rows that an interrupted run had not written
        if is_main:
            ann_dir.mkdir(parents=True, exist_ok=True)
            write_annotations(ann_path, annotation_rows(kept, units, on_disk))
            print(f"0 images made, {len(units)} skipped as already done; annotations {ann_path}")
        return out_dir

    # Create model(s) (before any folder is made, so a failed load leaves nothing behind).
    name = args.model or INPAINT_MODELS[args.inpaint_model_name]
    pipe = load_inpaint_pipeline(name, device, dtype, cpu_offload=args.cpu_offload)
    refiner = None
    if args.refiner:
        if not is_sdxl(pipe):
            raise InputError(f"--refiner needs an SDXL base model, but {name} is not one")
        refiner = load_inpaint_pipeline(args.refiner, device, dtype, share_from=pipe,
                                        cpu_offload=args.cpu_offload, flag="--refiner")
    state.wait_for_everyone()  # every process has planned: writing may start
    started = time.time()

    # Repaint: process r makes images r, r + N, r + 2N, ... of the to-do list, --batch-size a call.
    # Images are written atomically (temp file, then rename): a killed run leaves no truncated PNG
    # that a rerun would skip. Folders are made with exist_ok by whichever process gets there first.
    if is_main:
        ann_dir.mkdir(parents=True, exist_ok=True)
        write_annotations(ann_path, annotation_rows(kept, units, files_in(out_dir)))
    mine = todo[state.process_index::state.num_processes]
    bar = tqdm(total=len(todo), desc="repaint", unit="image", disable=not is_main)
    pending = {u["name"] for u in todo}  # to-do images the bar has not counted yet
    for i in range(0, len(mine), args.batch_size):
        batch = mine[i:i + args.batch_size]
        for unit, image in zip(batch, repaint(pipe, refiner, batch, args)):
            atomic_write(out_dir / unit["name"],
                         lambda tmp, image=image: image.save(tmp, format="PNG"))
        if is_main:
            present = files_in(out_dir)
            write_annotations(ann_path, annotation_rows(kept, units, present))
            # The bar counts the to-do images of every process on disk; under --overwrite the
            # earlier run's files are there too, so only those written since the barrier count.
            made = pending & present
            if args.overwrite:
                made = {n for n in made if (out_dir / n).stat().st_mtime >= started}
            pending -= made
            bar.update(len(made))
    state.wait_for_everyone()  # every process has written its share
    if is_main:
        bar.update(len(pending))
        bar.close()
        write_annotations(ann_path, annotation_rows(kept, units, files_in(out_dir)))
        seconds = (time.time() - started) / len(todo)
        print(f"{len(todo)} images made, {len(units) - len(todo)} skipped as already done, "
              f"{seconds:.2f} s/image (wall clock, {state.num_processes} process"
              f"{'es' if state.num_processes > 1 else ''}) -> {out_dir}; annotations {ann_path}")
    return out_dir


if __name__ == "__main__":
    sys.exit(run(main, parse_args))  # bad paths/flags: one line `error: ...`, exit status 2 (utils/cli.py)
