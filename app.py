"""A web page for gap filling: drop two photos and get the fill (main.py's eval_2), or paint a hole on one photo.

    python app.py                                     # http://127.0.0.1:7860, the shipped GAN
    python app.py --port 7861 --checkpoint_path checkpoints/checkpoint_epoch_50.pth
    python app.py --sd_model DIR                      # also offer a pretrained SD inpainting pipeline (a folder)
    python app.py --queue_size 8                      # refuse a fill when 8 are already waiting (default 32)

The page's Fill button is the API endpoint /fill_two (image1, image2; optional crop_ratio, method,
output_size, steps) and returns the filled PNG:

    from gradio_client import Client, handle_file
    client = Client("http://127.0.0.1:7860")
    path = client.predict(handle_file("a.jpg"), handle_file("b.jpg"), api_name="/fill_two")

Every fill runs the CLI's code (utils/evaluation.fill_two_photos, utils/loading.py, models/baselines.py,
utils/fullres.py, sd/fill.py); one fill at a time (a queue), nothing leaves the machine. The fills, gradio's
copies and the uploads (unless GRADIO_TEMP_DIR names another folder for those) live in one temporary folder
that only the user can open; Ctrl-C (SIGINT) or `kill` (SIGTERM, as a service manager stops it) closes the
server and removes that folder.
"""
import itertools
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from utils.cli import Parser, parse_or_exit, run
from utils.errors import InputError, warn
from utils.files import check_checkpoint_path, repo_path

QUEUE_SIZE = 32  # fills waiting behind the running one; one more is refused with gradio's "queue is full"


def parse_args(argv=None):
    parser = Parser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every network interface)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--checkpoint_path", default=None,
                        help="GAN checkpoint or generator export (default: the shipped gan_scenery_128.pth)")
    parser.add_argument("--sd_model", default=None,
                        help="a diffusers inpainting pipeline folder (or a hub id, with internet) for the "
                             "Stable Diffusion method; without it that method is unavailable")
    parser.add_argument("--queue_size", type=int, default=QUEUE_SIZE,
                        help=f"fills that may wait behind the running one (default {QUEUE_SIZE}); a request beyond "
                             "them is refused at once with gradio's \"queue is full\" message")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    if args.queue_size < 1:
        parser.error(f"--queue_size must be at least 1, got {args.queue_size}")
    return args


def check_app_args(args) -> None:
    """Refuse a checkpoint that is not there and a --host that is no address, before gradio and torch are
    imported (seconds): one line, exit status 2."""
    import socket
    if args.checkpoint_path:
        check_checkpoint_path(args.checkpoint_path, "--checkpoint_path")
    try:
        socket.getaddrinfo(args.host, args.port)
    except socket.gaierror:
        raise InputError(f"--host {args.host}: not an address of this machine (127.0.0.1: this machine only, "
                         "0.0.0.0: every network interface)") from None


if __name__ == "__main__":
    # Bad flags and a missing checkpoint are refused here, before gradio and torch are imported below.
    CLI_ARGS = parse_or_exit(parse_args, check_app_args)

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # read by gradio at import: no telemetry, no version check

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from data.datasets import eval_transform  # noqa: E402
from data.images import load_image  # noqa: E402
from data.masks import apply_mask, check_crop_ratio  # noqa: E402
from models.baselines import BASELINES  # noqa: E402
from utils.loading import (SHIPPED_DIFFUSION, SHIPPED_MODEL, diffusion_fill, generator_fill,  # noqa: E402
                           load_diffusion_model, load_generator)
from utils.evaluation import eval_device, fill_two_photos  # noqa: E402
from utils.hardware import configure_threads, resolve_mixed_precision  # noqa: E402
from utils.images import save_png, to_float  # noqa: E402
from sd.fill import at_resolution, make_sd_fill, native_size, to_pil  # noqa: E402

MAX_FILE_SIZE = "30mb"
KEEP_JOBS = 8  # jobs whose PNG stays in the app's folder (gradio serves its own copies)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
NOT_AN_IMAGE = "is not an image this page can read: upload a .jpg, .png, .webp or .bmp"
TEST = "data/scenery/test/"  # embedded example pairs (credits: data/scenery/CREDITS.md, backgrounds/CREDITS.md)
EXAMPLES = [("flower | mountains", TEST + "mate_yellow_flower.jpg", TEST + "lomiri_picos_mountains.jpg"),
            ("meadow | stream", TEST + "mate_green_meadow.jpg", TEST + "lomiri_forest_stream.jpg"),
            ("mountain | meadow", "backgrounds/mountain/mountain1.jpg", "backgrounds/meadow/meadow2.jpg"),
            ("beach | forest", "backgrounds/beach/beach1.jpg", "backgrounds/forest/forest1.jpg")]


class Methods:
    """The page's fill methods: fill(masked, mask) callables and the size each fills at."""

    def __init__(self, checkpoint_path=None, sd_model=None):
        self.device = eval_device()
        self.checkpoint_path = checkpoint_path or SHIPPED_MODEL
        generator, self.config = load_generator(self.checkpoint_path)
        self.gan = generator_fill(generator, self.device, resolve_mixed_precision("auto", self.device.type == "cpu"))
        self.size = self.config["image_size"]
        self._diffusion = None  # the shipped diffusion baseline, loaded on first use
        self.sd, self.sd_reason = load_sd(sd_model, self.device)
        self.labels = {"gan": f"GAN ({Path(self.checkpoint_path).name})",
                       "harmonic": "harmonic (training-free)", "telea": "Telea (training-free)",
                       "mean": "mean colour (training-free)", "diffusion": "diffusion baseline (slow)",
                       "sd": "Stable Diffusion inpainting" + (" (unavailable)" if self.sd is None else " (slow)")}

    def get(self, method: str, steps: int) -> tuple:
        """(fill, the size it fills at) for a method name, or InputError."""
        if method == "gan":
            return self.gan, self.size
        if method in BASELINES:  # at the GAN's size, so that the methods compare
            return BASELINES[method], self.size
        if method == "diffusion":
            if self._diffusion is None:
                self._diffusion = load_diffusion_model(SHIPPED_DIFFUSION)
            model, config, schedule = self._diffusion
            if not 1 <= steps <= schedule["num_train_timesteps"]:
                raise InputError(f"steps must be in 1..{schedule['num_train_timesteps']}, got {steps}")
            return diffusion_fill(model, schedule, self.device, "ddim", int(steps)), config["image_size"]
        if method == "sd":
            if self.sd is None:
                raise InputError(f"Stable Diffusion is unavailable: {self.sd_reason}")
            return make_sd_fill(self.sd, num_steps=max(1, int(steps))), native_size(self.sd)
        raise InputError(f"method {method!r}: choose one of {', '.join(self.labels)}")


def load_sd(name, device) -> tuple:
    """(pipeline, None), or (None, why Stable Diffusion is unavailable)."""
    if not name:
        return None, "start the page with --sd_model DIR (a diffusers inpainting pipeline folder)"
    from sd.pipelines import load_inpaint_pipeline, pick_device_dtype  # diffusers: only when asked for
    device, dtype = pick_device_dtype(device.type)
    try:
        pipe = load_inpaint_pipeline(name, device, dtype, flag="--sd_model")
    except InputError as exc:  # the page still serves the other methods, and says why this one is missing
        warn(f"Stable Diffusion unavailable: {exc}")
        return None, str(exc)
    pipe.set_progress_bar_config(disable=False, desc="Stable Diffusion")  # gr.Progress follows tqdm bars
    return pipe, None


def refuse(message: str) -> gr.Error:
    """A message in the page (and to API clients) for bad input; the server log stays free of tracebacks."""
    return gr.Error(message, print_exception=False)


def open_photo(payload, label: str) -> tuple:
    """A raw gr.Image upload -> (RGB PIL image, its file name); gr.Error naming the photo when it cannot be used."""
    if not payload or not payload.get("path"):
        raise refuse(f"{label}: upload a photo first")
    path, name = payload["path"], payload.get("orig_name") or Path(payload["path"]).name
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path):  # the header only: is it an image at all?
                pass
    except Image.DecompressionBombError:  # an image, far too large: load_image says so below
        pass
    except Exception:  # PIL raises several types
        raise refuse(f"{label} ({name}) {NOT_AN_IMAGE}") from None
    try:  # the command line's rule (data/datasets.py): size limits from the header, before decoding
        return load_image(path, name=f"{label} ({name})"), name
    except InputError as exc:
        raise refuse(str(exc)) from None


def painted_mask(editor) -> tuple:
    """gr.ImageEditor's value -> (RGB photo, (H, W) bool array: where the brush painted), or gr.Error."""
    if not editor or editor.get("background") is None:
        raise refuse("upload a photo first, then paint the part to fill with the brush")
    photo = editor["background"].convert("RGB")
    layers = [layer for layer in editor.get("layers") or [] if layer is not None]
    if any(layer.size != photo.size for layer in layers):
        raise refuse("the painted mask and the photo differ in size: paint on the uploaded photo")
    painted = np.zeros(photo.size[::-1], bool)
    for layer in layers:
        painted |= np.asarray(layer.convert("RGBA"))[..., 3] > 0
    if not painted.any():
        raise refuse("nothing painted: paint over the part of the photo to fill with the brush")
    return photo, painted


def stem(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", Path(name).stem)[:40] or "photo"


class Page:
    """The handlers behind the page and its API; they write the result PNG into `workdir` until close()."""

    def __init__(self, methods: Methods, workdir):
        self.methods, self.workdir, self.jobs = methods, Path(workdir), itertools.count()
        self.saving, self.closed = threading.Lock(), False

    def close(self) -> None:
        """No more PNGs: a fill still running when the server stops (its thread outlives the server) would
        otherwise recreate the folder after its removal, with the umask's permissions, and leave it behind."""
        with self.saving:
            self.closed = True

    def run(self, method: str, steps, output_size: str, work, name: str, progress) -> tuple:
        """Time work(fill, size) -> (input, filled) for the chosen method, save the filled PNG:
        (its path, {input, text, file} for the page). Bad input: gr.Error."""
        try:
            if output_size not in ("photos", "model"):
                raise InputError(f"output_size {output_size!r}: choose photos or model")
            fill, size = self.methods.get(method, steps)
            progress(0, desc=f"filling with {self.methods.labels[method]}")
            start = time.perf_counter()
            shown, filled = work(fill, size)
            seconds = time.perf_counter() - start
        except InputError as exc:
            raise refuse(str(exc)) from None
        side = filled.shape[-1]
        how = "" if side == size else f"; filled at {size}x{size}, upsampled into the hole, known pixels kept exact"
        text = f"**{side}x{side}** with {self.methods.labels[method]} in **{seconds:.2f} s**{how}"
        with self.saving:
            if self.closed:
                raise refuse("the page is shutting down: this fill was not saved")
            for old in sorted(self.workdir.glob("job_*"), key=lambda p: int(p.name[4:]))[:1 - KEEP_JOBS]:
                shutil.rmtree(old, ignore_errors=True)  # served already: gradio keeps its own copy
            path = str(save_png(filled, self.workdir / f"job_{next(self.jobs)}" / f"{name}_{method}_fill.png"))
        return path, {"input": to_pil(shown), "text": text, "file": path}

    def fill_two(self, image1, image2, crop_ratio=0.4, method="gan", output_size="photos", steps=50,
                 progress=gr.Progress(track_tqdm=True)):
        """Two photos -> (the filled PNG's path, details for the page): main.py's eval_2."""
        (photo1, name1), (photo2, name2) = open_photo(image1, "photo 1"), open_photo(image2, "photo 2")

        def work(fill, size):
            ratio, trained = check_crop_ratio(crop_ratio), self.methods.config["crop_ratio"]
            if method == "gan" and ratio != trained:  # as main.py's warning
                gr.Warning(f"the GAN was trained with crop ratio {trained}: the fill may be worse")
            _, _, shown, filled = fill_two_photos(fill, [photo1, photo2], size, ratio, self.methods.device,
                                                  output_size, names=(name1, name2))
            return shown, filled
        return self.run(method, steps, output_size, work, f"{stem(name1)}_{stem(name2)}", progress)

    def fill_mask(self, editor, method="gan", output_size="photos", steps=50, progress=gr.Progress(track_tqdm=True)):
        """One photo + the hole painted on it -> (the filled PNG's path, details for the page)."""
        photo, painted = painted_mask(editor)

        def work(fill, size):
            # Square and centre-cropped as in eval_2: the models fill squares. A pixel the brush touched is hole.
            side = size if output_size == "model" else min(photo.size)
            image = to_float(eval_transform(photo, side))
            mask = (eval_transform(Image.fromarray(painted).convert("RGB"), side)[:1] > 0).float()
            if mask.all() or not mask.any():
                raise InputError("the painted hole covers all of the square crop, or none of it: paint a part of it")
            masked, device = apply_mask(image, mask), self.methods.device
            # utils/sd_fill.at_resolution: fill at the method's size, resize back, paste the known pixels exactly
            filled = at_resolution(fill, size)(masked[None].to(device), mask[None].to(device))
            return masked, filled[0].float().cpu()
        return self.run(method, steps, output_size, work, "photo", progress)


def show(details):
    """Second step of a fill: the input beside the result, the time, the download."""
    return details["input"], details["text"], gr.DownloadButton(value=details["file"], visible=True)


def controls(methods: Methods, with_crop: bool) -> list:
    """Crop ratio (two photos only), method, output size, steps: the inputs both tabs share, in the API's order."""
    with gr.Row():
        method = gr.Dropdown([(label, key) for key, label in methods.labels.items()], value="gan", label="method")
        size = gr.Radio([("the photos'", "photos"), (f"the model's ({methods.size}x{methods.size})", "model")],
                        value="photos", label="output resolution")
    with gr.Row():
        crop = gr.Slider(0.1, 0.5, value=methods.config["crop_ratio"], step=0.05, label="crop ratio",
                         info="side of each known square / side of the image") if with_crop else None
        steps = gr.Slider(1, 200, value=50, step=1, label="steps", info="diffusion and Stable Diffusion only")
    if methods.sd is None:
        gr.Markdown(f"Stable Diffusion is unavailable: {methods.sd_reason}")
    return ([crop] if with_crop else []) + [method, size, steps]


def fill_tab(prefix: str, make_inputs, handler, button_text: str, **click) -> None:
    """make_inputs() on the left with the button, input | result, the time and the download on the right; the
    button is the API endpoint /fill_<prefix> (the State output is not part of the API)."""
    with gr.Row():
        with gr.Column(scale=5):
            inputs = make_inputs()
            button = gr.Button(button_text, variant="primary", elem_id=f"fill_{prefix}")
        with gr.Column(scale=6):
            with gr.Row():
                shown = gr.Image(label="input (grey: to fill)", format="png", interactive=False,
                                 elem_id=f"{prefix}_input")
                result = gr.Image(label="result", format="png", interactive=False, elem_id=f"{prefix}_result")
            info = gr.Markdown(elem_id=f"{prefix}_info")
            download = gr.DownloadButton("Download the full-resolution PNG", visible=False)
    details = gr.State()
    button.click(handler, inputs, [result, details], api_name=f"fill_{prefix}", concurrency_id="fill",
                 **click).then(show, details, [shown, info, download], api_visibility="private")


def two_photos_inputs(methods: Methods) -> list:
    labels, pairs = zip(*[(label, [str(repo_path(a)), str(repo_path(b))]) for label, a, b in EXAMPLES])
    with gr.Row():
        image1, image2 = (gr.Image(type="filepath", label=f"photo {i}: its {corner} square", height=220,
                                   elem_id=f"image{i}") for i, corner in ((1, "bottom-left"), (2, "top-right")))
    gr.Examples(list(pairs), [image1, image2], label="embedded photos", example_labels=list(labels),
                cache_examples=False)
    return [image1, image2] + controls(methods, with_crop=True)


def mask_inputs(methods: Methods) -> list:
    mask_kinds = methods.config.get("mask_kinds", "gap")
    trained_on = (f"The loaded GAN was trained on the gap mask only (its checkpoint's mask_kinds: {mask_kinds}), so "
                  "other holes are new to it; harmonic and Telea take any hole (`python main.py --mode train "
                  "--mask_kinds gap,box,stroke,outpaint` trains a GAN for boxes and strokes)." if mask_kinds == "gap"
                  else f"The loaded GAN was trained on these masks: {mask_kinds}.")
    gr.Markdown(f"Paint the part to fill; the photo is centre-cropped to a square. {trained_on}")
    editor = gr.ImageEditor(type="pil", label="photo: paint the hole", elem_id="editor", layers=False,
                            transforms=(), brush=gr.Brush(colors=["#ff00ff"], color_mode="fixed"), height=420)
    photos = [str(repo_path(a)) for _, a, _ in EXAMPLES]
    gr.Examples([[a] for a in photos], [editor], label="embedded photos", cache_examples=False,
                example_labels=[Path(a).stem for a in photos])
    return [editor] + controls(methods, with_crop=False)


def build_app(page: Page, queue_size: int = QUEUE_SIZE) -> gr.Blocks:
    """The page served by `page`'s handlers; at most `queue_size` fills wait behind the running one."""
    methods = page.methods
    with gr.Blocks(title="GAN Paint", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## GAN Paint: fill the gap between two photos\nThe bottom-left square of photo 1 and the "
                    "top-right square of photo 2 are kept exactly; the rest is painted (as `python main.py --image1 "
                    "A --image2 B`). Or paint a hole on one photo in the second tab.")
        with gr.Tab("Two photos"):
            # Raw uploads (preprocess=False, after gradio has checked they are its own uploads): open_photo names
            # the photo that is not an image, where gr.Image's own decoding answers a bare "Error".
            fill_tab("two", lambda: two_photos_inputs(methods), page.fill_two, "Fill", preprocess=False)
        with gr.Tab("One photo + your mask"):
            fill_tab("mask", lambda: mask_inputs(methods), page.fill_mask, "Fill the painted hole")
    # One fill at a time: both tabs share concurrency_id "fill" (two CPU jobs at once are each ~2x slower).
    return demo.queue(default_concurrency_limit=1, max_size=queue_size)


def launch(demo: gr.Blocks, host: str, port: int) -> str:
    """Serve without blocking; returns the page's URL. Offline: no share link, no server-side rendering."""
    try:
        demo.launch(server_name=host, server_port=port, share=False, ssr_mode=False, quiet=True, show_error=False,
                    max_file_size=MAX_FILE_SIZE, prevent_thread_lock=True)
    except OSError:
        raise InputError(f"cannot serve on {host}:{port}: another server uses --port {port}, or --host {host} is "
                         "not an address of this machine; pass another --port or --host") from None
    return demo.local_url


class Stop(BaseException):
    """SIGINT or SIGTERM, raised in the main thread. Not a KeyboardInterrupt, which gradio's block_thread() catches
    to close the server itself, waiting 5 s for a connected client's heartbeat; demo.close() ends the heartbeats
    first and returns in a fraction of a second."""


def stop(signum, frame):
    for sig in STOP_SIGNALS:  # a second Ctrl-C or kill must not cut the cleanup short
        signal.signal(sig, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def main(args):
    # SIGTERM's default action ends the process on the spot, skipping every cleanup below; both signals raise
    # Stop instead. A signal the parent ignores (SIGINT, for a job a script starts with `&`) stays ignored.
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, stop)
    try:
        serve(args)
    except Stop as exc:
        print(f"{exc}: server closed, temporary files removed", flush=True)
        # The server and its folder are gone, but a fill still running in its thread (torch code) would abort the
        # interpreter's teardown ("terminate called without an active exception", status 134): end here.
        sys.stderr.flush()
        os._exit(0)


def serve(args):
    print(f"using {configure_threads('auto')}")
    methods = Methods(args.checkpoint_path, args.sd_model)
    # mkdtemp's folder is drwx------: the fills inside are the user's only, whatever their own mode.
    with tempfile.TemporaryDirectory(prefix="gan_paint_app_") as workdir:
        # Gradio's cache (uploads, its copies of the fills) goes there too, unless the user chose a folder.
        os.environ.setdefault("GRADIO_TEMP_DIR", str(Path(workdir) / "gradio"))
        page = Page(methods, workdir)
        demo = build_app(page, args.queue_size)
        try:
            url = launch(demo, args.host, args.port)
            print(f"GAN Paint page: {url}  (Ctrl-C or kill stops it)", flush=True)
            demo.block_thread()
        finally:
            demo.close()
            page.close()


if __name__ == "__main__":
    sys.exit(run(main, parse_args, args=CLI_ARGS))
