"""Gen4Gen step 3: repaint everything but the objects of step-2 compositions with SDXL inpainting.

For every composition `img_*.png` (+ `mask_*.png`, white on the objects) of `--src-dir` and every
background picked from the scene folders of `--bkg-dir`, the objects are laid over the (blurred)
background photo, or over noise with `--noise-bkg`, and the rest is repainted from a prompt such as
"a realistic photo of a cat, a dog and a houseplant in a garden". Writes
`<dest>/<src name>_repaint/<img stem>_repaint-id_<k:06d>+<caption>.png` and the CSV
`<ann-dir>/<src name>_repaint_ann.csv` (directory,image_name,background_prompt). A rerun skips
the images that exist, so an interrupted run resumes.

    # real model (GPU, downloads ~7 GB from the Hugging Face hub on first use)
    python s3_background_repainting.py \\
        --src-dir data/examples/s2_object_compositions/1_dog+rabbit+flower \\
        --bkg-dir backgrounds --dest data/s3_background_repainting --objects dog rabbit flower
    # noise start images, background phrase from --prompt
    python s3_background_repainting.py --src-dir <step-2 folder> --noise-bkg --prompt "on the beach"
    # offline smoke run with a tiny random pipeline (CPU, seconds)
    python tools/make_tiny_pipeline.py --kind sdxl-inpaint --out /tmp/tiny-sdxl
    python s3_background_repainting.py --src-dir <step-2 folder> --bkg-dir backgrounds \\
        --model /tmp/tiny-sdxl --resolution 64 --num-steps 2
"""
import argparse
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from sd.repaint import (NEGATIVE_PROMPT, build_caption, composite, find_compositions,
                          find_scenes, load_rgb, mask_to_image, noise_start, objects_from_dirname,
                          output_name, photo_start, pick_backgrounds, read_annotations,
                          repaint_mask, scene_phrase, write_annotations)
from sd.pipelines import (INPAINT_MODELS, is_sdxl, load_inpaint_pipeline,
                              pick_device_dtype)
from utils.cli import run
from utils.errors import InputError
from utils.files import atomic_write


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--src-dir", required=True, type=Path,
                    help="step-2 composition folder with img_*.png and mask_*.png")
    io.add_argument("--bkg-dir", nargs="+", type=Path, default=[],
                    help="folder(s) of scene folders, e.g. backgrounds (garden/, beach/, ...), or "
                         "one scene folder, e.g. backgrounds/garden")
    io.add_argument("-n-bkg", "--max-num-bkg-scenes", type=int, default=3,
                    help="photos picked at random per scene (noise starts per composition with "
                         "--noise-bkg and no --bkg-dir) (default: 3)")
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
                       help="images per (composition, background) pair, in one pipeline call "
                            "(default: %(default)s)")
    model.add_argument("-blur-size", "--blur-size", type=int, default=5,
                       help="box-blur radius of the object mask, for soft borders (0 = none) "
                            "(default: %(default)s)")
    model.add_argument("--keep-foreground", action=argparse.BooleanOptionalAction, default=True,
                       help="paste the object pixels back after decoding (default: on)")
    model.add_argument("--seed", type=int, default=0,
                       help="seed of the background picks, noise and sampling "
                            "(default: %(default)s)")
    model.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda if present)")
    model.add_argument("--dtype", default=None, choices=["float16", "bfloat16", "float32"],
                       help="default: float16 on GPU, float32 on CPU "
                            "(float16 is ~30x slower there)")
    model.add_argument("--cpu-offload", action="store_true",
                       help="keep models in RAM, each on the GPU only while it runs (less VRAM)")
    return parser.parse_args(argv)


def check_args(args):
    """Fail fast, before any model is loaded, on flags that cannot work."""
    if args.resolution < 8 or args.resolution % 8:
        raise InputError(f"--resolution {args.resolution}: use a multiple of 8 (the VAE's factor)")
    for flag, value in (("--num-steps", args.num_steps), ("--batch-size", args.batch_size),
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


def pair_seed(seed: int, *keys) -> int:
    """Seed of one output, from the run seed and its name: a resumed run draws the same noise."""
    words = [zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence([seed, *words]).generate_state(1)[0])


def plan_jobs(args, compositions, backgrounds, objects, out_dir):
    """One job per (composition, background): inputs, prompt, output names and CSV rows."""
    jobs = []
    for img, mask in compositions:
        for i, (scene, photo) in enumerate(backgrounds):
            phrase = args.prompt or (scene_phrase(scene) if scene else "")
            caption = build_caption(objects, phrase)
            # k numbers the outputs of one composition, 1-based, as Gen4Gen's repaint-id.
            ks = [i * args.batch_size + b + 1 for b in range(args.batch_size)]
            names = [output_name(img.stem, k, caption) for k in ks]
            rows = [{"directory": str(out_dir), "image_name": n, "background_prompt": phrase}
                    for n in names]
            jobs.append(dict(img=img, mask=mask, photo=photo, caption=caption, ks=ks,
                             names=names, rows=rows, noise_key=(img.stem, "noise", i)))
    return jobs


def repaint(pipe, refiner, job, args):
    """Run the inpainting (and refiner) pipeline for one job -> list of PIL images."""
    size = args.resolution
    objects = load_rgb(job["img"], size)  # (size, size, 3) uint8 composition
    mask = repaint_mask(Image.open(job["mask"]), size, args.blur_size)  # 1 = repaint
    if args.noise_bkg:
        rng = np.random.default_rng(pair_seed(args.seed, *job["noise_key"]))
        background = noise_start(size, rng)
    else:
        background = photo_start(job["photo"], size)
    start = Image.fromarray(composite(objects, background, mask))
    batch = len(job["ks"])
    generators = [torch.Generator().manual_seed(pair_seed(args.seed, job["img"].stem, k))
                  for k in job["ks"]]
    call = dict(prompt=[job["caption"]] * batch,
                negative_prompt=[args.negative_prompt] * batch if args.negative_prompt else None,
                image=start, mask_image=mask_to_image(mask), height=size, width=size,
                guidance_scale=args.guidance_scale, num_inference_steps=args.num_steps,
                strength=args.strength, generator=generators)
    if refiner is None:
        images = pipe(**call).images
    else:
        # Ensemble of expert denoisers (diffusers SDXL docs): the base denoises the first part of
        # the schedule and hands its latents to the refiner, whose decoded output is the result.
        latents = pipe(**call, denoising_end=args.refiner_start, output_type="latent").images
        images = refiner(**{**call, "image": latents}, denoising_start=args.refiner_start).images
    if args.keep_foreground:
        # The VAE round trip changes every pixel; paste the objects back with the soft mask.
        images = [Image.fromarray(composite(objects, np.asarray(im.convert("RGB")), mask))
                  for im in images]
    return images


def main(args):
    # Setup: device and precision are decided once, here.
    device, dtype = pick_device_dtype(args.device, args.dtype)
    check_args(args)
    if dtype == torch.float16 and device.type == "cpu":
        print("warning: float16 on CPU is ~30x slower than --dtype float32", file=sys.stderr)

    # Inputs: compositions with masks, and the (scene, photo) pairs to repaint each one with.
    compositions = find_compositions(args.src_dir)
    for img, mask in compositions:
        if mask is None:
            print(f"warning: {img} has no mask_{img.stem[4:]} beside it, skipped", file=sys.stderr)
    compositions = [(img, mask) for img, mask in compositions if mask is not None]
    if not compositions:
        raise InputError(f"--src-dir {args.src_dir}: no img_* image has its mask_* file")
    if args.bkg_dir:
        scenes = find_scenes(args.bkg_dir)
        backgrounds = pick_backgrounds(scenes, args.max_num_bkg_scenes, args.seed)
    else:  # --noise-bkg without photos: n noise starts, phrase from --prompt
        backgrounds = [(None, None)] * args.max_num_bkg_scenes
    src_name = args.src_dir.resolve().name
    objects = args.objects if args.objects is not None else objects_from_dirname(src_name)

    # Outputs: rows of the existing CSV whose image exists are kept, so reruns resume.
    out_dir = args.dest / f"{src_name}_repaint"
    ann_dir = args.ann_dir or out_dir / "gen_annotations"
    ann_path = ann_dir / f"{src_name}_repaint_ann.csv"
    rows = {n: r for n, r in read_annotations(ann_path).items() if (out_dir / n).is_file()}
    jobs = plan_jobs(args, compositions, backgrounds, objects, out_dir)
    for job in jobs:
        job["done"] = not args.overwrite and all((out_dir / n).is_file() for n in job["names"])
        if job["done"]:
            rows.update({r["image_name"]: r for r in job["rows"]})
    todo = [job for job in jobs if not job["done"]]
    print(f"{len(compositions)} compositions x {len(backgrounds)} backgrounds x {args.batch_size}"
          f" -> {out_dir} ({len(jobs) - len(todo)} of {len(jobs)} pairs already done)")
    if not todo:  # still add the rows that an interrupted run had not written
        ann_dir.mkdir(parents=True, exist_ok=True)
        write_annotations(ann_path, rows.values())
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

    out_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    write_annotations(ann_path, rows.values())

    # Repaint: one pipeline call per (composition, background) pair.
    for job in tqdm(jobs, desc="repaint", unit="pair"):
        if job["done"]:
            continue
        images = repaint(pipe, refiner, job, args)
        for image, out_name, row in zip(images, job["names"], job["rows"]):
            # Write then rename: a run killed mid-save leaves no truncated PNG that a rerun skips.
            atomic_write(out_dir / out_name, lambda tmp, image=image: image.save(tmp, format="PNG"))
            rows[out_name] = row
        write_annotations(ann_path, rows.values())
    print(f"wrote {sum(len(j['names']) for j in todo)} images to {out_dir}, annotations {ann_path}")
    return out_dir


if __name__ == "__main__":
    sys.exit(run(main, parse_args))  # bad paths/flags: one line `error: ...`, exit status 2 (utils/cli.py)
