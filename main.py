"""GAN gap filling: train, resume, evaluate, and fill the gap between two photos.

A U-Net generator fills everything but a bottom-left and a top-right square (side crop_ratio * S)
of an image; a 70x70 PatchGAN judges the result (or, --discriminator projected, patch heads on frozen
EfficientNet-Lite0 features; recipes in configs/). Losses: L1 on the hole + SSIM + perceptual
(EfficientNet-Lite0 features by default, or VGG19) + adversarial + discriminator feature matching.
The generator starts from the harmonic fill of the hole and learns a residual (--harmonic_start),
upsamples by resize + convolution, and is evaluated and exported with an EMA of its weights. The
shipped model adds a noise-fed texture head (--texture_noise) trained with the pixel losses on blurred
images (--recon_lowpass) and a phase-free detail loss (--lambda_detail); docs/model_card.md.

    python main.py --mode train --epochs 30                       # on data/scenery/train
    python main.py --mode train --config configs/quickstart.yaml  # a recipe file; flags override it
    python main.py --mode train --checkpoint_path checkpoints/checkpoint_epoch_30.pth --epochs 50
    python main.py --mode eval --test_dir data/scenery/test       # shipped model by default
    python main.py --mode eval_2 --image1 a.jpg --image2 b.jpg    # patches of two photos, at their resolution
    python main.py --image1 a.jpg --image2 b.jpg --output_size 512 --output fill.jpg   # no --mode: eval_2
    python main.py --mode eval --baseline telea --image_size 128  # a training-free floor

N processes: `accelerate launch --multi_gpu --num_processes N main.py --mode train ...` (+ --cpu on CPUs;
docs/gan.md). Every flag also accepts dashes
(--checkpoint-path). Checkpoints hold their config, so eval needs only --checkpoint_path.
"""
import argparse
import copy
import math
import sys
from pathlib import Path

from data.images import check_image_size
from models.options import (AUGMENTATIONS, BASELINE_NAMES, GAN_LOSSES, NORMS, PERCEPTUAL_KINDS, RESIZE_MODES,
                            UPSAMPLING, GeneratorConfig)
from utils.cli import (Parser, add_shared_args, check_input_files, check_shared_args, given_flags, numbers,
                       parse_or_exit, run)
from utils.errors import InputError
from utils.files import file_sha256, stored_path

# What defines the training recipe: on resume these come from the checkpoint, not the command line,
# so that a resumed run is the same run.
RECIPE_KEYS = ("image_size", "crop_ratio", "ngf", "ndf", "batch_size", "lr", "lambda_l1", "lambda_ssim",
               "lambda_perc", "lambda_adv", "gan_loss", "mask_kinds", "repeat", "seed", "train_dir",
               "norm", "upsampling", "res_blocks", "harmonic_start", "lambda_fm", "adv_start_epoch", "ema_decay",
               "min_crop_scale", "perceptual", "lambda_detail", "d_layers", "texture_noise",
               "recon_lowpass", "lambda_mse", "detail_variant", "discriminator", "d_augment", "d_blur_sigma",
               "d_blur_images", "lr_d", "adam_betas", "d_upsample", "attention", "exemplar_texture",
               "exemplar_guide", "exemplar_normalise", "exemplar_coarse", "exemplar_prior", "lr_exemplar",
               "lambda_placement", "noise_injection", "d_head_layers", "context_features", "lambda_layout",
               "layout_steps", "lambda_band", "band_levels", "coarse_stage", "coarse_stage_sha256",
               "coarse_stage_lowpass", "coarse_stage_layout", "color_jitter", "layout_loss",
               "context_upsample", "dropout")
DETAIL_VARIANTS = ("auto", "image", "highpass", "highpass_total")  # what --lambda_detail compares (detail_term)
VAL_COLUMNS = ("epoch", "step", "psnr_hole", "psnr_lowpass", "swd", "swd_levels", "sharpness", "placement",
               "checkerboard", "stripes", "chroma", "kid_effnet", "effnet_distance", "fid_effnet", "ssim_hole", "l1_hole",
               "psnr", "ssim")


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    groups = add_shared_args(parser, default_size=256, default_batch=16, default_lr=2e-4, default_precision="auto")
    run, training = groups["run"], groups["training"]
    run.add_argument("--baseline", choices=sorted(BASELINE_NAMES),
                     help="eval/eval_2 with a training-free fill instead of the GAN (mean colour, harmonic, OpenCV "
                          "Telea; OpenCV contrib's fsr and the exemplar-based shiftmap), at --image_size / "
                          "--crop_ratio: the floors of the model card")
    training.add_argument("--val_dir", default=None,
                          help="score the (EMA) generator on this folder at every checkpoint: "
                               "<results_dir>/train/val_metrics.csv; pick the checkpoint there, not on the test set")
    training.add_argument("--init_from", default=None,
                          help="start a NEW run (new recipe, epoch 0, fresh optimizers) from the weights of this "
                               "training checkpoint or generator export; its architecture must match, but a texture "
                               "head, an attention or an exemplar layer may be added and a texture head dropped")
    training.add_argument("--min_crop_scale", type=float, default=0.3,
                          help="training crops span this fraction to all of a photo's shorter side "
                               "(scale augmentation)")
    training.add_argument("--color_jitter", type=float, default=0.0,
                          help="scale each training crop's brightness, contrast and saturation by random factors in "
                               "[1 - J, 1 + J] (0: off)")
    training.add_argument("--export", help="train: also write a generator-only file (fp16 weights + config) here at "
                                           "the end; with a --checkpoint_path already at --epochs, only export it")
    training.add_argument("--texture_scale", type=float, default=1.0,
                          help="with --export: multiply the texture head's output by this (strength of the detail, "
                               "picked on a validation split with benchmarks/score.py --texture_scales)")
    training.add_argument("--detail_smoothing", type=float, default=None,
                          help="with --export: smooth the fill's detail amplitude across 8-px blocks with a Gaussian "
                               "of this sigma in blocks (0: off; picked on a validation split with "
                               "benchmarks/score.py --detail_smoothing)")
    training.add_argument("--detail_smoothing_bands", type=int, default=1,
                          help="with --detail_smoothing: how many of the finest Laplacian bands it rescales")
    training.add_argument("--exemplar_scale", type=exemplar_scales, default="1,1",
                          help="with --export: multiply the exemplar layer's gates by FINE,MID[,COARSE] for its fine, "
                               "mid (and coarse) band (picked on a validation split with "
                               "benchmarks/probe_exemplar_strength.py)")
    training.add_argument("--compile", action="store_true",
                          help="torch.compile the generator and discriminator for training (docs/speed.md says when "
                               "it pays)")

    generator = parser.add_argument_group("generator architecture (defaults: the shipped model's)")
    architecture = GeneratorConfig()
    generator.add_argument("--ngf", type=int, default=architecture.ngf,
                           help="generator width (channels of the first level)")
    generator.add_argument("--norm", choices=NORMS, default=architecture.norm, help="generator normalisation")
    generator.add_argument("--upsampling", choices=UPSAMPLING, default=architecture.upsampling,
                           help="decoder: resize (nearest x2 + 3x3 conv: no checkerboard grid), bilinear (bilinear x2 "
                                "+ 3x3 conv: no block grid either; --init_from may switch between the two) or pix2pix's "
                                "transposed conv")
    generator.add_argument("--res_blocks", type=int, default=architecture.res_blocks,
                           help="dilated residual blocks at the S/16 level")
    generator.add_argument("--harmonic_start", action=argparse.BooleanOptionalAction, default=architecture.harmonic,
                           help="start the hole from the harmonic fill and learn a residual "
                                "(--no-harmonic_start: grey)")
    generator.add_argument("--texture_noise", type=int, default=architecture.texture_noise,
                           help="noise channels of the generator's full-resolution texture head (0: no head)")
    generator.add_argument("--noise_injection", type=int, default=architecture.noise_injection, metavar="N",
                           help="noise added to the decoder's N finest maps (1: S/2; 3: S/2, S/4, S/8) with learned "
                                "per-channel strengths that start at zero (StyleGAN); a no-op at the start, so "
                                "--init_from may add it (0: none)")
    generator.add_argument("--context_features", action=argparse.BooleanOptionalAction,
                           default=architecture.context_features,
                           help="add frozen EfficientNet-Lite0 features of the start image to the generator's encoder "
                                "(pretrained context, S/4 to S/32); starts as a no-op, so --init_from may add it")
    generator.add_argument("--context_upsample", type=int, choices=(1, 2), default=architecture.context_upsample,
                           help="with --context_features: show the feature network the start image at this many "
                                "times its size (its maps average-pooled back; ImageNet models see 224 px)")
    generator.add_argument("--dropout", type=float, default=architecture.dropout, metavar="P",
                           help="dropout at rate P after the generator's three innermost decoder blocks, in training "
                                "only (pix2pix); no weights, so --init_from may add it (0: none)")
    generator.add_argument("--coarse_stage", default="", metavar="FILE",
                           help="a trained generator file (e.g. checkpoints/gan_scenery_128.pth) whose fill, without its "
                                "texture head, replaces the harmonic start: this generator is then the second, "
                                "refining stage; the first stays frozen and is read from FILE (checked by its hash)")
    generator.add_argument("--coarse_stage_lowpass", type=int, default=2, metavar="L",
                           help="with --coarse_stage: keep only the coarse fill's layout, its content below 1/2^L of "
                                "the image size (L pyrDowns and back; 0: the whole fill)")
    generator.add_argument("--coarse_stage_layout", type=float, default=0.0, metavar="A",
                           help="with --coarse_stage: take this share (0-1) of the fill's layout, its 16-px pyramid "
                                "level, from the coarse stage's fill (1: the first stage owns the layout, this one "
                                "draws the finer bands; 0: off)")
    parser.set_defaults(coarse_stage_sha256="")  # set from --coarse_stage's file (models/options.py)
    generator.add_argument("--attention", action=argparse.BooleanOptionalAction, default=architecture.attention,
                           help="contextual attention on the generator's S/4 decoder map: hole features copied from "
                                "the known squares' (DeepFill); starts as a no-op, so --init_from may add it")
    generator.add_argument("--exemplar_texture", action=argparse.BooleanOptionalAction, default=architecture.exemplar,
                           help="add the known squares' own fine and mid-scale detail, copied in cross-faded "
                                "patches and gated per pixel by the generator (models/exemplar.py); starts as a no-op, so "
                                "--init_from may add it")
    generator.add_argument("--exemplar_guide", type=float, default=architecture.exemplar_guide,
                           help="with --exemplar_texture: draw each patch by how well its mean colour matches the "
                                "U-Net's own fill there, at this colour temperature (RMS difference in [-1, 1] "
                                "units; 0: random patches)")
    generator.add_argument("--exemplar_normalise", action=argparse.BooleanOptionalAction,
                           default=architecture.exemplar_normalise,
                           help="with --exemplar_texture: lay every copied patch at its source's average detail "
                                "strength, so that the generator's gates, not the draw, decide how much goes where")
    generator.add_argument("--exemplar_coarse", action=argparse.BooleanOptionalAction,
                           default=architecture.exemplar_coarse,
                           help="with --exemplar_texture: also copy a coarser band of the squares' detail (structure "
                                "of about 5-20 px), in patches twice as large")
    generator.add_argument("--exemplar_prior", action=argparse.BooleanOptionalAction,
                           default=architecture.exemplar_prior,
                           help="with --exemplar_texture: the gates also see how much detail of each band the squares "
                                "have near each hole pixel (carried in harmonically), a cue to where detail goes")

    losses = parser.add_argument_group("losses and optimisation")
    losses.add_argument("--lambda_l1", type=float, default=100.0, help="L1 on the hole")
    losses.add_argument("--lambda_ssim", type=float, default=1.0, help="1 - SSIM")
    losses.add_argument("--lambda_perc", type=float, default=1.0, help="perceptual loss (--perceptual)")
    losses.add_argument("--lambda_adv", type=float, default=1.0, help="adversarial term")
    losses.add_argument("--lambda_fm", type=float, default=10.0, help="discriminator feature matching (pix2pixHD)")
    losses.add_argument("--recon_lowpass", type=float, default=0.0,
                        help="L1, squared error and SSIM compare Gaussian-blurred images (this sigma, px), "
                             "leaving the finer detail to the adversarial and texture terms (0: full images)")
    losses.add_argument("--perceptual", choices=PERCEPTUAL_KINDS, default="effnet",
                        help="perceptual loss network: EfficientNet-Lite0 (weights ship with pip; effnet_deep: its "
                             "stages at strides 8-32 only), VGG19 (needs --perceptual_weights or torchvision's "
                             "cache) or none")
    losses.add_argument("--perceptual_weights", help="weights file for --perceptual (default: found offline)")
    losses.add_argument("--gan_loss", choices=GAN_LOSSES, default="bce",
                        help="adversarial loss (bce: pix2pix's; --discriminator projected needs hinge)")
    losses.add_argument("--adv_start_epoch", type=int, default=0,
                        help="train G on reconstruction only (no D) up to this epoch, then add the GAN terms")
    losses.add_argument("--ema_decay", type=float, default=0.999,
                        help="EMA of the generator's weights used for samples, val, eval and export (0: off)")
    losses.add_argument("--lr_decay_start", type=int, default=None,
                        help="from this epoch, decay the learning rate linearly to 0 at --epochs (default: constant); "
                             "may be set when resuming, to end a constant-rate run")
    losses.add_argument("--lr_d", type=float, default=None, help="discriminator learning rate (default: --lr)")
    losses.add_argument("--lr_exemplar", type=float, default=None,
                        help="learning rate of the exemplar layer's gates (default: --lr): a zero-initialised layer "
                             "in a fine-tuned generator may need more than the rest to leave zero in a short run")
    losses.add_argument("--adam_betas", default="0.5,0.999",
                        help="Adam's beta1,beta2 for both networks (pix2pix 0.5,0.999; Projected GAN / StyleGAN "
                             "0,0.99)")

    critic = parser.add_argument_group("discriminator")
    critic.add_argument("--discriminator", choices=("patch", "projected"), default="patch",
                        help="patch: a PatchGAN trained from scratch (pix2pix); projected: patch heads on frozen "
                             "EfficientNet-Lite0 features with a masked hinge loss (models/projected.py)")
    critic.add_argument("--ndf", type=int, default=64, help="discriminator width (projected: its heads' width)")
    critic.add_argument("--d_augment", default="",
                        help="DiffAugment of every discriminator input, comma-separated from "
                             f"{','.join(AUGMENTATIONS)} ('' for none)")
    critic.add_argument("--d_blur_sigma", type=float, default=0.0,
                        help="Gaussian blur (px) of the discriminator's inputs at the start, fading to 0 over "
                             "--d_blur_images training images")
    critic.add_argument("--d_blur_images", type=int, default=0, help="length of the --d_blur_sigma fade, in images")
    critic.add_argument("--d_upsample", type=int, default=1,
                        help="projected discriminator: enlarge its input this many times (2: a 128^2 image is seen "
                             "at 256^2, so its finest features fall at 2 px instead of 4)")

    ablation = parser.add_argument_group("ablation-only knobs (see docs/model_card.md and docs/realistic_fills.md)")
    ablation.add_argument("--d_layers", type=int, default=3,
                          help="PatchGAN depth: 3 judges 70x70 patches (pix2pix), 1 judges 16x16 (fine texture only)")
    ablation.add_argument("--d_head_layers", type=int, default=1,
                          help="projected discriminator: 3x3 layers per patch head, each dilated twice the last "
                               "(1: the Projected GAN head; 3: a 15-position window on every feature scale)")
    ablation.add_argument("--lambda_mse", type=float, default=0.0,
                          help="squared error on the hole (what PSNR measures), beside or instead of L1")
    ablation.add_argument("--lambda_layout", type=float, default=0.0,
                          help="squared error on the hole at the pyramid's coarse level only (--layout_steps "
                               "pyrDowns; losses.pyramid_hole_mse): the layout without pulling the finer bands "
                               "towards the blurry mean, as --lambda_mse on --recon_lowpass images does")
    ablation.add_argument("--layout_steps", type=int, default=3,
                          help="pyrDowns before --lambda_layout compares (3: the 16-px level at 128²)")
    ablation.add_argument("--layout_loss", choices=("mse", "db"), default="mse",
                          help="what --lambda_layout takes of the hole's error at that level: its squared error "
                               "over the batch (mse), or per image in dB, averaged (db: minus the low-pass "
                               "PSNR that eval averages over images; losses.pyramid_hole_db)")
    ablation.add_argument("--lambda_band", type=float, default=0.0,
                          help="the hole's detail amplitude in the Laplacian bands --band_levels, phase-free "
                               "(losses.band_energy_loss): the mid-scale detail that the layout terms pull "
                               "towards the blurry mean and the detail loss (the finest band) does not ask back")
    ablation.add_argument("--band_levels", default="1,2",
                          help="the bands --lambda_band compares, comma-separated (0: the finest; 1, 2: at S/2, "
                               "S/4: the patch SWD's 64- and 32-px levels at 128²)")
    ablation.add_argument("--lambda_detail", type=float, default=0.0,
                          help="local detail (texture) energy in the hole, phase-free (losses.detail_loss)")
    ablation.add_argument("--lambda_placement", type=float, default=0.0,
                          help="where the hole's detail goes: 1 - the correlation of the fill's and the truth's "
                               "block detail (losses.placement_loss)")
    ablation.add_argument("--detail_variant", choices=DETAIL_VARIANTS, default="auto",
                          help="what --lambda_detail compares (see main.detail_term); auto: the high band and the "
                               "hole's total with --recon_lowpass, the whole image at 2 scales without")
    args = parser.parse_args(argv)
    check_shared_args(parser, args, eval_flags={"baseline"}, eval_only_flags={"baseline"})
    if args.texture_scale != 1 and not args.export:
        parser.error("--texture_scale applies to the exported generator: add --export FILE")
    if any(scale != 1 for scale in args.exemplar_scale) and not args.export:
        parser.error("--exemplar_scale applies to the exported generator: add --export FILE")
    if args.detail_smoothing is not None and not args.export:
        parser.error("--detail_smoothing applies to the exported generator: add --export FILE")
    if args.detail_smoothing is not None and args.detail_smoothing < 0:
        parser.error(f"--detail_smoothing is a sigma in 8-px blocks >= 0 (0: off), got {args.detail_smoothing}")
    if args.detail_smoothing_bands < 1:
        parser.error(f"--detail_smoothing_bands must be >= 1, got {args.detail_smoothing_bands}")
    if args.mode == "train":
        check_discriminator_args(args)
        if args.lr_exemplar is not None and not args.exemplar_texture:
            raise InputError("--lr_exemplar is the exemplar layer's learning rate: add --exemplar_texture")
        if args.lambda_layout and not 1 <= args.layout_steps <= math.log2(args.image_size) - 2:
            raise InputError(f"--layout_steps {args.layout_steps}: the pyramid of a {args.image_size}² image has "
                             f"levels 1 to {int(math.log2(args.image_size)) - 2} (at least 4 x 4 px)")
        if args.lambda_band:
            band_levels(args.band_levels, args.image_size)  # raises InputError with the fix
        if args.coarse_stage:
            if not Path(args.coarse_stage).is_file():
                raise InputError(f"--coarse_stage {args.coarse_stage}: no such file (give a generator file, e.g. "
                                 "checkpoints/gan_scenery_128.pth)")
            args.coarse_stage_sha256 = file_sha256(args.coarse_stage)
            args.coarse_stage = stored_path(args.coarse_stage)
        else:
            args.coarse_stage_lowpass = 0  # nothing to low-pass
        try:  # the generator's flags must build a network (models/options.py), before torch is imported
            GeneratorConfig.from_flags(vars(args))
        except ValueError as exc:
            raise InputError(f"generator flags: {exc}") from None
    return args


def check_discriminator_args(args) -> None:
    """Refuse discriminator settings that cannot work together (before anything heavy is imported or built)."""
    augment = tuple(filter(None, (a.strip() for a in args.d_augment.split(","))))
    unknown = sorted(set(augment) - set(AUGMENTATIONS))
    if unknown:
        raise InputError(f"--d_augment: unknown {', '.join(unknown)}; choose from {','.join(AUGMENTATIONS)}")
    if args.discriminator == "projected" and args.lambda_fm:
        raise InputError("--lambda_fm matches PatchGAN activations; the projected discriminator has none to "
                         "match: pass --lambda_fm 0")
    if args.discriminator == "projected" and args.gan_loss != "hinge":
        raise InputError("the projected discriminator trains with the masked hinge loss: pass --gan_loss hinge")
    adam_betas(args.adam_betas)
    if args.ndf < 1 or args.d_layers < 1:
        raise InputError(f"--ndf and --d_layers must be >= 1, got {args.ndf} and {args.d_layers}")
    if args.lr_d is not None and not args.lr_d >= 0:
        raise InputError(f"--lr_d must be >= 0, got {args.lr_d:g}")
    if args.d_upsample < 1:
        raise InputError(f"--d_upsample must be >= 1, got {args.d_upsample}")
    if args.d_head_layers < 1:
        raise InputError(f"--d_head_layers must be >= 1, got {args.d_head_layers}")


def number_pair(text: str, flag: str, example: str) -> tuple:
    """A flag's "a,b" -> (a, b) as floats, or InputError naming the flag and an example value."""
    try:
        first, second = (float(v) for v in text.split(","))
    except ValueError:
        raise InputError(f"{flag} must be two comma-separated numbers, e.g. {example}; got {text!r}") from None
    return first, second


def exemplar_scales(text: str) -> tuple:
    """--exemplar_scale "fine,mid[,coarse]" -> 2 or 3 floats (argparse type: a bad value is a one-line error)."""
    scales = numbers(text)
    if len(scales) not in (2, 3):
        raise argparse.ArgumentTypeError(f"two or three comma-separated numbers (fine,mid[,coarse]), e.g. 1,1.5; "
                                         f"got {text!r}")
    return tuple(scales)


def band_levels(text: str, image_size: int) -> tuple:
    """--band_levels "1,2" -> (1, 2), or InputError: Laplacian bands above the pyramid's 16-px residual."""
    top = int(math.log2(image_size)) - 5  # at 128²: bands 0 (128 px), 1 (64), 2 (32); the residual at 16
    try:
        levels = tuple(sorted({int(v) for v in text.split(",")}))
    except ValueError:
        raise InputError(f"--band_levels must be comma-separated integers, got {text!r}") from None
    if not levels or not all(0 <= level <= top for level in levels):
        raise InputError(f"--band_levels {text}: a {image_size}² image has bands 0 to {top} above the 16-px "
                         f"residual")
    return levels


def adam_betas(text: str) -> tuple:
    """--adam_betas "b1,b2" -> (b1, b2), or InputError."""
    beta1, beta2 = number_pair(text, "--adam_betas", "0,0.99")
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise InputError(f"--adam_betas must lie in [0, 1), got {text!r}")
    return beta1, beta2


if __name__ == "__main__":
    # Bad flags, values and input files are refused here, before the imports below (torch alone takes
    # seconds): one line `error: ...`, exit status 2, in well under a second (utils/cli.parse_or_exit).
    CLI_ARGS = parse_or_exit(parse_args, check_input_files)

import torch  # noqa: E402

from losses import (AdversarialLoss, band_energy_loss, build_perceptual_loss, detail_loss,  # noqa: E402
                    feature_matching_loss, hole_l1, hole_mse, lowpass, masked_hinge_discriminator,
                    masked_hinge_generator, placement_loss, pyramid_hole_db, pyramid_hole_mse, ssim_loss)
from models.baselines import BASELINES  # noqa: E402
from models.gan import PatchDiscriminator  # noqa: E402
from models.projected import ProjectedDiscriminator, blur, blur_sigma_at, diff_augment  # noqa: E402
from utils.checkpoint import (epoch_checkpoint_path, load_checkpoint, rng_state, save_checkpoint,  # noqa: E402
                              set_rng_state)
from utils.ema import ModelEMA  # noqa: E402
from utils.evaluation import (eval_device, evaluate_folder, format_swd, read_csv_rows, run_eval_mode,  # noqa: E402
                              write_csv_atomic)
from utils.hardware import (configure_threads, emulated_bf16, keep_freed_memory,  # noqa: E402
                            resolve_mixed_precision)
from utils.loading import (SHIPPED_MODEL, build_generator, export_generator, generator_config,  # noqa: E402,F401
                           load_generator, model_args, scale_exemplar, scale_texture,
                           with_detail_smoothing)
from utils.loading import generator_fill as make_fill  # noqa: E402
from utils.training import (EpochLog, LossLog, TimeBudget, checkpoint_on_interrupt,  # noqa: E402
                            fixed_sample_batch, make_accelerator, make_train_loader, run_config, save_samples,
                            start_run)


def train_step(batch, generator, discriminator, opt_g, opt_d, adversarial, perceptual, args, accelerator,
               adversarial_on: bool = True, images_seen: int = 0) -> dict:
    """One pix2pix-style step: D on real vs fake, then G. Returns the losses as floats.

    With adversarial_on False (epochs up to --adv_start_epoch) D is neither run nor updated and G
    learns from the reconstruction terms alone. images_seen (training images before this step) sets the
    blur of the projected discriminator's inputs (--d_blur_sigma).
    """
    if args.discriminator == "projected":
        return projected_train_step(batch, generator, discriminator, opt_g, opt_d, perceptual, args, accelerator,
                                    adversarial_on, images_seen)
    image = batch["image"].contiguous(memory_format=torch.channels_last)  # (B, 3, S, S) in [-1, 1]
    mask = batch["mask"].contiguous(memory_format=torch.channels_last)  # (B, 1, S, S), 1 = generate
    masked = image * (1.0 - mask)
    fake = generator(masked, mask)  # the only generator forward of the step
    zero = torch.zeros((), device=fake.device)
    d_real = d_fake = g_gan = g_fm = zero

    if adversarial_on:
        # Discriminator: real vs fake (fake detached: D's loss must not reach G).
        discriminator.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        real_logits, real_features = discriminator(masked, mask, image, return_features=True)
        d_real, d_fake = adversarial.discriminator(real_logits, discriminator(masked, mask, fake.detach()))
        accelerator.backward(0.5 * (d_real + d_fake))
        opt_d.step()
        discriminator.requires_grad_(False)  # G's backward needs no gradient for D's weights
        fake_logits, fake_features = discriminator(masked, mask, fake, return_features=True)
        g_gan = adversarial.generator(fake_logits)
        d_real, d_fake = d_real.detach(), d_fake.detach()
        g_fm = feature_matching_loss(fake_features, real_features) if args.lambda_fm else zero

    return generator_update(fake, image, mask, g_gan, g_fm, d_real, d_fake, opt_g, perceptual, args, accelerator)


def generator_update(fake, image, mask, g_gan, g_fm, d_real, d_fake, opt_g, perceptual, args, accelerator) -> dict:
    """G's step: match the truth on the hole (L1, squared error), in structure (SSIM) and in features, and
    fool D (g_gan, g_fm: the adversarial terms already computed). With --recon_lowpass the pixel terms see
    blurred images (losses.lowpass): their gradient is blurred too, so they set the layout and colours and
    leave the fine detail to the adversarial, perceptual and detail terms. Returns the losses as floats."""
    zero = torch.zeros((), device=fake.device)
    opt_g.zero_grad(set_to_none=True)
    fake_low, image_low = lowpass(fake, args.recon_lowpass), lowpass(image, args.recon_lowpass)
    g_l1 = hole_l1(fake_low, image_low, mask)
    g_ssim = ssim_loss(fake_low, image_low) if args.lambda_ssim else zero
    g_mse = hole_mse(fake_low, image_low, mask) if args.lambda_mse else zero
    g_perc = perceptual(fake, image) if perceptual is not None else zero
    g_detail = detail_term(fake, image, mask, args) if args.lambda_detail else zero
    g_place = placement_loss(fake, image, mask) if args.lambda_placement else zero
    layout_term = pyramid_hole_db if args.layout_loss == "db" else pyramid_hole_mse
    g_layout = layout_term(fake, image, mask, args.layout_steps) if args.lambda_layout else zero
    g_band = (band_energy_loss(fake, image, mask, band_levels(args.band_levels, args.image_size))
              if args.lambda_band else zero)
    g_total = (args.lambda_l1 * g_l1 + args.lambda_mse * g_mse + args.lambda_ssim * g_ssim
               + args.lambda_perc * g_perc + args.lambda_adv * g_gan + args.lambda_fm * g_fm
               + args.lambda_detail * g_detail + args.lambda_placement * g_place + args.lambda_layout * g_layout
               + args.lambda_band * g_band)
    accelerator.backward(g_total)
    opt_g.step()
    losses = {"G_total": g_total.item(), "G_L1": g_l1.item(), "G_MSE": g_mse.item(), "G_SSIM": g_ssim.item(),
              "G_perc": g_perc.item(), "G_detail": g_detail.item(), "G_GAN": g_gan.item(), "G_FM": g_fm.item(),
              "D_real": d_real.item(), "D_fake": d_fake.item()}
    if args.lambda_placement:  # a column only where the term exists: older runs' losses.csv resume unchanged
        losses["G_place"] = g_place.item()
    if args.lambda_layout:
        losses["G_layout"] = g_layout.item()
    if args.lambda_band:
        losses["G_band"] = g_band.item()
    return losses


def projected_train_step(batch, generator, discriminator, opt_g, opt_d, perceptual, args, accelerator,
                         adversarial_on: bool, images_seen: int) -> dict:
    """train_step with the projected discriminator: masked hinge loss on blurred (fading), augmented inputs.

    Real and fake go through D separately, each with its own DiffAugment draw; the fake's mask is augmented
    with it (translation moves both), so the masked hinge knows which logits lie over the hole.
    """
    image = batch["image"].contiguous(memory_format=torch.channels_last)  # (B, 3, S, S) in [-1, 1]
    mask = batch["mask"].contiguous(memory_format=torch.channels_last)  # (B, 1, S, S), 1 = generate
    masked = image * (1.0 - mask)
    fake = generator(masked, mask)
    zero = torch.zeros((), device=fake.device)
    d_real = d_fake = g_gan = zero
    if adversarial_on:
        sigma = blur_sigma_at(images_seen, args.d_blur_sigma, args.d_blur_images)
        augment = tuple(filter(None, (a.strip() for a in args.d_augment.split(","))))

        def judge(picture):  # D's logits on one (blurred, augmented) picture, and the mask as augmented
            seen, seen_mask = diff_augment(blur(picture, sigma), mask, augment)
            return discriminator(seen * (1 - seen_mask), seen_mask, seen), seen_mask

        heads = accelerator.unwrap_model(discriminator).trainable_parameters()
        for p in heads:
            p.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        real_logits, _ = judge(image)
        fake_logits, fake_mask = judge(fake.detach())
        d_real, d_fake = masked_hinge_discriminator(real_logits, fake_logits, fake_mask)
        accelerator.backward(d_real + d_fake)
        d_real, d_fake = d_real.detach(), d_fake.detach()
        opt_d.step()
        for p in heads:  # G's backward needs no gradient for D's heads
            p.requires_grad_(False)
        fake_logits, fake_mask = judge(fake)
        g_gan = masked_hinge_generator(fake_logits, fake_mask)
    return generator_update(fake, image, mask, g_gan, zero, d_real, d_fake, opt_g, perceptual, args, accelerator)


def detail_term(fake, image, mask, args) -> torch.Tensor:
    """losses.detail_loss as --detail_variant says: "image" (2 scales of the whole image), "highpass"
    (the band x - lowpass(x, --recon_lowpass), finest scale), "highpass_total" (the same + the hole's
    total energy); "auto" is highpass_total with --recon_lowpass, else image."""
    variant = args.detail_variant
    if variant == "auto":
        variant = "highpass_total" if args.recon_lowpass else "image"
    if variant == "image":
        return detail_loss(fake, image, mask)
    if not args.recon_lowpass:
        raise InputError(f"--detail_variant {variant} needs --recon_lowpass > 0 (the band it judges)")
    return detail_loss(fake, image, mask, levels=1, highpass_sigma=args.recon_lowpass,
                       hole_total=variant == "highpass_total")


def build_training_networks(config: dict) -> tuple:
    """(generator, discriminator) as main.py trains them, from a run's config; the benchmarks use it too.

    channels_last (both networks and the batches, see train_step) speeds up the convolutions on CPU
    (oneDNN) and GPU (tensor cores); docs/speed.md has the measurement. The batches make the difference;
    the discriminator is channels_last too so that no layout is converted back and forth.
    """
    generator = build_generator(config).to(memory_format=torch.channels_last)
    if config.get("discriminator", "patch") == "projected":
        from models.effnet import load_effnet_lite0
        features, reason = load_effnet_lite0()
        if features is None:
            raise InputError(f"--discriminator projected needs the EfficientNet-Lite0 weights: {reason}")
        discriminator = ProjectedDiscriminator(features, head_channels=config["ndf"],
                                               upsample=config.get("d_upsample", 1),
                                               head_layers=config.get("d_head_layers", 1))
    else:
        discriminator = PatchDiscriminator(ndf=config["ndf"], n_layers=config.get("d_layers", 3))
    return generator, discriminator.to(memory_format=torch.channels_last)


def training_optimizers(generator, discriminator, args) -> tuple:
    """(opt_g, opt_d): Adam with --adam_betas, G's parameter groups at --lr (and --lr_exemplar), D's trainable
    parameters (the projected D's heads only) at --lr_d (default --lr)."""
    betas = adam_betas(args.adam_betas)
    opt_g = torch.optim.Adam(generator_parameter_groups(generator, args.lr, args.lr_exemplar), lr=args.lr, betas=betas)
    d_parameters = [p for p in discriminator.parameters() if p.requires_grad]
    return opt_g, torch.optim.Adam(d_parameters, lr=args.lr_d or args.lr, betas=betas)


def compiled_networks(generator, discriminator, accelerator) -> tuple:
    """--compile: (compiled G, D to train with), sharing the plain modules' parameters. The projected D compiles its
    frozen feature network in place and keeps its heads eager (ProjectedDiscriminator.compile_features says why)."""
    plain_d = accelerator.unwrap_model(discriminator)
    if hasattr(plain_d, "compile_features"):
        plain_d.compile_features()
        return torch.compile(generator), discriminator
    return torch.compile(generator), torch.compile(discriminator)


def generator_parameter_groups(generator, lr: float, lr_exemplar: float = None) -> list:
    """Adam parameter groups: one at `lr`, or, with `lr_exemplar`, the exemplar layer's gates in a group of their
    own at that rate ("base_lr": what the schedule scales)."""
    trainable = [p for p in generator.parameters() if p.requires_grad]  # not a frozen context network
    if lr_exemplar is None or generator.exemplar is None:
        return [{"params": trainable, "base_lr": lr}]
    exemplar = {id(p) for p in generator.exemplar.parameters()}
    return [{"params": [p for p in trainable if id(p) not in exemplar], "base_lr": lr},
            {"params": list(generator.exemplar.parameters()), "lr": lr_exemplar, "base_lr": lr_exemplar}]


def learning_rate(args, epoch: int, base: float) -> float:
    """`base` constant, then (from --lr_decay_start) linear decay reaching 0 after --epochs (pix2pix)."""
    if args.lr_decay_start is None or epoch <= args.lr_decay_start:
        return base
    return base * (args.epochs - epoch + 1) / (args.epochs - args.lr_decay_start + 1)


def train(args, hardware: str = ""):
    # Setup: one process per device (`accelerate launch`); the main one prints and writes. Resume first, so
    # that the recipe comes from the checkpoint.
    accelerator = make_accelerator(args.mixed_precision, args.cpu)
    if hardware:  # "using N threads; autocast: ...", from main()
        accelerator.print(hardware)
    resume, mask_kinds = start_run(args, "gan", RECIPE_KEYS, accelerator)
    if resume and resume["epoch"] >= args.epochs:  # nothing to train: no photos needed; --export still exports
        accelerator.print(f"nothing to train: the checkpoint is at epoch {resume['epoch']} and --epochs is "
                          f"{args.epochs}")
        if args.export and accelerator.is_main_process:
            generator, _ = load_generator(args.checkpoint_path)  # its EMA weights, as training would export
            print(f"exported generator to {export(generator, resume['config'], args)}")
        return
    torch.manual_seed(args.seed)
    config = run_config(args)

    # Data: decoded once, kept in memory.
    loader = make_train_loader(args, mask_kinds, show_progress=accelerator.is_main_process)
    samples = fixed_sample_batch(args)

    # Models, losses, optimizers (Adam; --adam_betas: pix2pix's 0.5,0.999 by default).
    generator, discriminator = build_training_networks(config)
    ema = ModelEMA(generator, args.ema_decay) if args.ema_decay > 0 else None
    opt_g, opt_d = training_optimizers(generator, discriminator, args)
    adversarial = AdversarialLoss(args.gan_loss)
    perceptual, perceptual_note = (None, "--lambda_perc is 0") if args.lambda_perc == 0 else \
        build_perceptual_loss(args.perceptual, args.perceptual_weights)
    if perceptual is None and args.lambda_perc != 0 and args.perceptual != "none":
        accelerator.print(f"warning: training without the perceptual loss: {perceptual_note}", file=sys.stderr)
    config["perceptual_loss"] = perceptual is not None
    config["perceptual_loss_note"] = perceptual_note or f"{args.perceptual} ImageNet weights loaded"

    start_epoch, step = 0, 0
    if args.init_from and not resume:
        trained_d = init_weights_from(args.init_from, config, generator, discriminator, ema, log=accelerator.print)
        accelerator.print(f"initialised the generator and discriminator from {args.init_from}")
        if trained_d and args.d_blur_images:
            # The fading blur of D's inputs is for a fresh D (TriA-GAN: one that would overpower the generator at
            # once). A trained D restarted on blurred inputs judges no fine texture for those images, and the
            # generator's texture drifts meanwhile. Recorded in the config, so that a resumed fork does the same.
            args.d_blur_images = config["d_blur_images"] = 0
            accelerator.print("--init_from: the discriminator is carried trained, so its inputs are not blurred "
                              "(--d_blur_images 0)")
    if resume:
        generator.load_state_dict(resume["generator"])
        discriminator.load_state_dict(resume["discriminator"])
        opt_g.load_state_dict(resume["opt_g"])
        opt_d.load_state_dict(resume["opt_d"])
        if ema is not None:
            ema.load_state_dict(resume["generator_ema"])
        start_epoch, step = resume["epoch"], resume["step"]
        set_rng_state(resume["rng"])
        accelerator.print(f"resumed from {args.checkpoint_path}: epoch {start_epoch}, step {step}")
    generator, discriminator, opt_g, opt_d, loader = accelerator.prepare(generator, discriminator, opt_g, opt_d, loader)
    if perceptual is not None:
        perceptual = perceptual.to(accelerator.device)
    if ema is not None:
        ema.module.to(accelerator.device)
    plain_generator = accelerator.unwrap_model(generator)
    eval_generator = ema.module if ema else plain_generator  # what samples, val, eval and export use

    # Loop. Compiled copies share the parameters; checkpoints and samples use the plain modules.
    train_g, train_d = compiled_networks(generator, discriminator, accelerator) if args.compile else \
        (generator, discriminator)
    loss_log = LossLog(Path(args.results_dir) / "train" / "losses.csv", resume_step=step) \
        if accelerator.is_main_process else None
    images_seen, epoch = step * args.batch_size * accelerator.num_processes, start_epoch

    def training_state(epoch_done: int) -> dict:
        return {"kind": "gan", "config": config, "model_args": model_args(plain_generator), "epoch": epoch_done,
                "step": step, "rng": rng_state(), "generator": plain_generator.state_dict(),
                "generator_ema": ema.state_dict() if ema else None,
                "discriminator": accelerator.unwrap_model(discriminator).state_dict(),
                "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}

    budget = TimeBudget(args.max_minutes)
    with checkpoint_on_interrupt(accelerator, lambda: training_state(epoch - 1), args.checkpoint_dir, loss_log):
        for epoch in range(start_epoch + 1, args.epochs + 1):
            generator.train(), discriminator.train()
            for optimizer, base in ((opt_g, args.lr), (opt_d, args.lr_d or args.lr)):
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(args, epoch, group.get("base_lr", base))
            epoch_log = EpochLog(loader, epoch, args.epochs, loss_log, args.log_interval, accelerator)
            for batch in epoch_log:
                losses = train_step(batch, train_g, train_d, opt_g, opt_d, adversarial, perceptual, args, accelerator,
                                    adversarial_on=epoch > args.adv_start_epoch, images_seen=images_seen)
                if ema is not None:
                    ema.update(plain_generator)
                step, images_seen = step + 1, images_seen + len(batch["image"]) * accelerator.num_processes
                epoch_log.record(step, losses, len(batch["image"]))
            out_of_time = budget.spent(accelerator)
            if not accelerator.is_main_process:
                if out_of_time:
                    break
                continue

            # End of epoch: the sample grid; every --save_every epochs, at the last and when --max_minutes is
            # spent, a checkpoint and val.
            loss_log.flush()
            eval_generator.eval()
            fill = make_fill(eval_generator, accelerator.device, args.mixed_precision)
            masked_s, mask_s, image_s = (t.to(accelerator.device) for t in samples)
            save_samples(Path(args.results_dir) / "train" / "samples" / f"epoch_{epoch:04d}.png", masked_s,
                         fill(masked_s, mask_s), image_s)
            if epoch % args.save_every == 0 or epoch == args.epochs or out_of_time:
                path = save_checkpoint(training_state(epoch), epoch_checkpoint_path(args.checkpoint_dir, epoch))
                print(f"saved {path}")
                if args.val_dir:
                    log_validation(fill, args, epoch, step, accelerator.device)
            if out_of_time:
                print(budget.stop_message(epoch, args.epochs, path))
                break

    # Save.
    if accelerator.is_main_process and args.export:
        print(f"exported generator to {export(eval_generator, config, args)}")


def export(generator, config: dict, args):
    """--export: the generator-only file, the texture head scaled by --texture_scale, the exemplar layer's gates
    by --exemplar_scale (both recorded in the config) and the detail smoothing of --detail_smoothing (in its
    model_args)."""
    if args.texture_scale != 1:
        generator = scale_texture(copy.deepcopy(generator), args.texture_scale)
        config = {**config, "texture_scale": args.texture_scale}
    if any(scale != 1 for scale in args.exemplar_scale):
        generator = scale_exemplar(copy.deepcopy(generator), *args.exemplar_scale)
        config = {**config, "exemplar_scale": list(args.exemplar_scale)}
    if args.detail_smoothing is not None:
        generator = with_detail_smoothing(generator, args.detail_smoothing, args.detail_smoothing_bands)
    return export_generator(generator, config, args.export)


def init_weights_from(path, config: dict, generator, discriminator, ema, log=print) -> bool:
    """--init_from: copy G, D (and the EMA copy) from a training checkpoint of the same architecture
    (a discriminator of another kind, depth or width is not copied), or G alone from a generator export
    (e.g. the shipped model; its EMA weights start both copies, D starts fresh). `log` prints the notes (the
    main process's accelerator.print under `accelerate launch`). Returns whether D was copied (trained)."""
    state = load_checkpoint(path, kinds=("gan", "gan_generator"))
    source, target = generator_config(state["config"], state.get("model_args")), generator.config
    # A texture head, an attention or an exemplar layer, noise strengths and the pretrained context may be added
    # (all start as no-ops), a texture head dropped (the U-Net's own fill remains), the resize upsampling swapped
    # between nearest and bilinear (the same weights), the start changed (harmonic or a coarse stage: the residual's
    # weights are the same); a head is not resized, and everything else must match.
    flag = {"harmonic": "harmonic_start"}
    different = [f"--{flag.get(k, k)} {getattr(source, k)} (not {getattr(target, k)})"
                 for k in ("image_size", "ngf", "norm", "upsampling", "res_blocks", "harmonic")
                 if getattr(source, k) != getattr(target, k)
                 and not (k == "upsampling" and {source.upsampling, target.upsampling} <= set(RESIZE_MODES))]
    if source.texture_noise not in (0, target.texture_noise) and target.texture_noise != 0:
        different.append(f"--texture_noise {source.texture_noise} (not {target.texture_noise})")
    if source.attention and not target.attention:
        different.append("--attention (not --no-attention)")
    if source.exemplar and not target.exemplar:
        different.append("--exemplar_texture (not --no-exemplar_texture)")
    if source.context_features and not target.context_features:
        different.append("--context_features (not --no-context_features)")
    if source.context_features and source.context_upsample != target.context_upsample:
        different.append(f"--context_upsample {source.context_upsample} (not {target.context_upsample})")
    if source.noise_injection not in (0, target.noise_injection):
        different.append(f"--noise_injection {source.noise_injection} (not {target.noise_injection})")
    if different:
        raise InputError(f"--init_from {path} has another architecture: pass {', '.join(different)}")
    load_generator_weights(generator, state["generator"], source, log)
    same_d = all(state["config"].get(k, default) == config.get(k, default)
                 for k, default in (("d_layers", 3), ("discriminator", "patch"), ("ndf", 64),
                                              ("d_head_layers", 1)))
    carried_d = same_d and "discriminator" in state
    if carried_d:
        discriminator.load_state_dict(state["discriminator"])
    else:  # another discriminator: it starts fresh, the generator (and its EMA) carry over
        log(f"--init_from: {path} holds no discriminator of this kind, depth and width; it starts from scratch")
    if ema is not None:
        weights = (state.get("generator_ema") or {}).get("module", state["generator"])
        load_generator_weights(ema.module, weights, source, lambda note: None)  # noted above
        # The average starts from trained weights: without this, the warm-up (decay (1+n)/(10+n)) would make it
        # follow the raw generator within a few steps, and a fork's val scores would be a short average's. Not
        # when the fork swaps the upsampling: the same weights then draw another fill (at first without its
        # texture), and an average at full decay would keep that fill for thousands of steps (runs 62-64).
        if source.upsampling == target.upsampling:
            ema.skip_warmup()
        else:
            log(f"--init_from: --upsampling {source.upsampling} -> {target.upsampling}: the EMA copy restarts its "
                "warm-up")
    return carried_d


def load_generator_weights(generator, weights: dict, source: GeneratorConfig, log=print) -> None:
    """Load weights of the `source` architecture: strict, except that the parts `generator` adds (a texture head,
    an attention or an exemplar layer, noise strengths, the pretrained context) keep their no-op initialisation, and
    a texture head it drops is left out (what remains is the U-Net's fill without the noise-driven grain)."""
    if source.texture_noise and generator.texture is None:
        log("--init_from: the source's texture head is dropped (--texture_noise 0)")
        weights = {k: v for k, v in weights.items() if not k.startswith("texture.")}
    added = tuple(prefix for prefix, there, here in (("texture.", source.texture_noise, generator.texture),
                                                      ("attention.", source.attention, generator.attention),
                                                      ("exemplar.", source.exemplar, generator.exemplar),
                                                      ("noise_strength.", source.noise_injection,
                                                       generator.noise_strength),
                                                      ("pretrained_context.", source.context_features,
                                                       generator.pretrained_context))
                  if here is not None and not there)
    missing, unexpected = generator.load_state_dict(weights, strict=False)
    if unexpected or [k for k in missing if not k.startswith(added)]:  # startswith(()) is False
        raise InputError(f"--init_from: generator weights do not match (missing {missing}, unexpected {unexpected})")


def log_validation(fill, args, epoch: int, step: int, device) -> None:
    """Score the generator on --val_dir and append a row to <results_dir>/train/val_metrics.csv."""
    summary = evaluate_folder(fill, args.val_dir, args.image_size, args.crop_ratio,
                              Path(args.results_dir) / "train" / "val" / f"epoch_{epoch:04d}", device,
                              batch_size=args.batch_size, save_images=False, desc=f"val epoch {epoch}")
    path = Path(args.results_dir) / "train" / "val_metrics.csv"
    rows = read_csv_rows(path)
    levels = "/".join(f"{v:.2f}" for v in summary["swd_levels"])  # finest level first
    rows = [r for r in rows if int(r["epoch"]) < epoch] + [{"epoch": epoch, "step": step, **summary,
                                                            "swd_levels": levels}]
    write_csv_atomic(rows, VAL_COLUMNS, path)
    print(f"val epoch {epoch}: hole PSNR {summary['psnr_hole']:.2f} dB, low-pass {summary['psnr_lowpass']:.2f} dB, "
          f"patch SWD {format_swd(summary)}, sharpness {summary['sharpness']:.2f}, placement "
          f"{summary['placement']:.2f}, checkerboard {summary['checkerboard']:.2f}, stripes {summary['stripes']:.2f}, "
          f"chroma {summary['chroma']:.2f}")


def main(args):
    # Hardware choices, once: threads from the free cores, bf16 autocast where it is native.
    threads = configure_threads(args.threads)
    args.mixed_precision = resolve_mixed_precision(args.mixed_precision, args.cpu)
    if emulated_bf16(args.mixed_precision, args.cpu):
        print("note: --mixed_precision bf16 on a CPU without native bf16 (no avx512_bf16 / amx_bf16 in "
              "/proc/cpuinfo) is emulated, far slower than fp32: pass --mixed_precision auto or no", file=sys.stderr)
    if args.mode == "train":
        keep_freed_memory()  # no page faults on every step's large buffers (utils/hardware.py)
        return train(args, hardware=f"using {threads}; autocast: {args.mixed_precision}")
    device = eval_device(args.cpu)
    if args.baseline:
        unused = sorted({"checkpoint_path", "mixed_precision"} & given_flags(args))
        if unused:
            raise InputError(f"--baseline fills without a model: drop {', '.join('--' + f for f in unused)}")
        fill, config = BASELINES[args.baseline], {"image_size": check_image_size(args.image_size),
                                                  "crop_ratio": args.crop_ratio}
    else:
        generator, config = load_generator(args.checkpoint_path or SHIPPED_MODEL)
        fill = make_fill(generator, device, args.mixed_precision)
    run_eval_mode(fill, args, config["image_size"], config["crop_ratio"], device,
                  model=f"--baseline {args.baseline}" if args.baseline else args.checkpoint_path or SHIPPED_MODEL)


if __name__ == "__main__":
    sys.exit(run(main, parse_args, args=CLI_ARGS))
