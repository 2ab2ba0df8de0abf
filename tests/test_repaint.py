"""Tests of Gen4Gen step 3 (s3_background_repainting.py, sd/repaint.py, sd/pipelines.py).

Every CLI run uses tiny random pipelines built by tools/make_tiny_pipeline.py once per session,
on synthetic 64x64 compositions in a temp folder, for 2 denoising steps on CPU. No network. The
multi-process tests run the script under `accelerate launch` with 2 CPU processes (gloo).
"""
import contextlib
import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before diffusers/huggingface_hub read it: never the network

import numpy as np
import psutil  # an accelerate dependency
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import s3_background_repainting as s3  # noqa: E402
from sd.repaint import (build_caption, composite, find_scenes, object_phrase,  # noqa: E402
                          objects_from_dirname, output_name, pick_backgrounds, read_annotations,
                          repaint_mask, scene_phrase, write_annotations)
from sd.pipelines import PipelineLoadError, load_inpaint_pipeline  # noqa: E402
from tools.make_tiny_pipeline import save_tiny_pipeline  # noqa: E402
from utils.errors import InputError  # noqa: E402

SIZE = 64
# Interior of the object square below: farther than --blur-size (5) from its edge, so the soft
# mask is exactly "keep" there.
OBJ, INNER = (slice(16, 48), slice(16, 48)), (slice(24, 40), slice(24, 40))


# --- Fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """Folders of the three tiny pipelines, saved once per session."""
    root = tmp_path_factory.mktemp("tiny_pipelines")
    return {kind: save_tiny_pipeline(kind, root / kind)
            for kind in ("sdxl-inpaint", "sdxl-refiner", "sd-inpaint")}


def make_compositions(folder: Path, n: int = 2, missing_mask: bool = False) -> Path:
    """n step-2 compositions: a textured square on black + its mask (white on the object)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n + missing_mask):
        img = np.zeros((SIZE, SIZE, 3), np.uint8)
        img[OBJ] = rng.integers(0, 256, (32, 32, 3))  # texture the VAE cannot reproduce exactly
        Image.fromarray(img).save(folder / f"img_{101 + i:06d}.png")
        if i < n:
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[OBJ] = 255
            Image.fromarray(mask).save(folder / f"mask_{101 + i:06d}.png")
    return folder


def make_backgrounds(root: Path, scenes=("garden", "beach")) -> Path:
    """backgrounds/<scene>/<scene>1.jpg, one 80x64 photo per scene (non-square on purpose)."""
    for j, scene in enumerate(scenes):
        (root / scene).mkdir(parents=True)
        color = np.full((SIZE, 80, 3), 40 * (j + 1), np.uint8)
        Image.fromarray(color).save(root / scene / f"{scene}1.jpg")
    return root


@pytest.fixture
def comps(tmp_path):
    return make_compositions(tmp_path / "1_cat+dog")


@pytest.fixture
def bkgs(tmp_path):
    return make_backgrounds(tmp_path / "backgrounds")


def run(tiny, src, dest, *extra, kind="sdxl-inpaint"):
    """Run the CLI in-process with test-sized settings; return the output folder."""
    argv = ["--src-dir", str(src), "--dest", str(dest), "--model", str(tiny[kind]),
            "--resolution", str(SIZE), "--num-steps", "2", "--device", "cpu", *map(str, extra)]
    return s3.main(s3.parse_args(argv))


def csv_rows(out_dir: Path, src_name="1_cat+dog"):
    with open(out_dir / "gen_annotations" / f"{src_name}_repaint_ann.csv", newline="") as f:
        return list(csv.reader(f))


def pngs(out_dir: Path):
    return sorted(p.name for p in out_dir.glob("*.png"))


# --- Pure functions -----------------------------------------------------------------------------
def test_prompts():
    assert object_phrase(["cat", "dog", "houseplant"]) == "a cat, a dog and a houseplant"
    assert object_phrase(["owl", "teddy_bear"]) == "an owl and a teddy bear"
    assert build_caption(["cat", "dog", "houseplant"], scene_phrase("garden")) == \
        "a realistic photo of a cat, a dog and a houseplant in a garden"
    assert build_caption([], "on the beach") == "a realistic photo on the beach"
    assert scene_phrase("beach") == "on the beach"
    assert scene_phrase("Old_Mill") == "in the old mill"  # unknown scene: no KeyError
    assert objects_from_dirname("1_cat+dog+houseplant") == ["cat", "dog", "houseplant"]
    assert objects_from_dirname("misc") == []


def test_repaint_mask_inverts_blurs_and_resizes():
    obj = np.zeros((SIZE, SIZE), np.uint8)
    obj[OBJ] = 255
    sharp = repaint_mask(Image.fromarray(obj), SIZE, blur_size=0)
    np.testing.assert_array_equal(sharp, 1.0 - obj / 255.0)
    soft = repaint_mask(Image.fromarray(obj), SIZE, blur_size=5)
    assert soft.dtype == np.float32 and soft.min() >= 0 and soft.max() <= 1
    assert (soft[INNER] == 0).all() and soft[0, 0] == 1  # keep the objects, repaint the rest
    assert 0 < soft[16, 32] < 1  # soft border
    assert repaint_mask(Image.fromarray(obj), 32, 5).shape == (32, 32)


def test_composite_is_exact_where_mask_is_zero():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    mask = rng.random((8, 8)).astype(np.float32)
    mask[:4] = 0
    out = composite(a, b, mask)
    np.testing.assert_array_equal(out[:4], a[:4])
    np.testing.assert_array_equal(composite(a, b, np.ones((8, 8), np.float32)), b)


def test_scenes_picks_and_names(tmp_path):
    root = make_backgrounds(tmp_path / "bk", scenes=("garden",))
    for i in range(2, 6):
        Image.new("RGB", (8, 8)).save(root / "garden" / f"garden{i}.jpg")
    scenes = find_scenes([root])
    assert [s for s, _ in scenes] == ["garden"] and len(scenes[0][1]) == 5
    assert find_scenes([root / "garden"])[0][0] == "garden"  # the document's --bkg-dir form
    picks = pick_backgrounds(scenes, 3, seed=7)
    assert len(picks) == 3 and picks == pick_backgrounds(scenes, 3, seed=7)
    assert output_name("img_000101", 2, "a cat/dog") == "img_000101_repaint-id_000002+a cat-dog.png"


def test_annotations_round_trip_with_commas(tmp_path):
    rows = [{"directory": "d", "image_name": 'a, "b".png', "background_prompt": "in a garden"}]
    write_annotations(tmp_path / "a.csv", rows)
    assert read_annotations(tmp_path / "a.csv") == {rows[0]["image_name"]: rows[0]}


# --- CLI runs -----------------------------------------------------------------------------------
def test_run_writes_images_and_csv(tiny, tmp_path, capsys):
    src = make_compositions(tmp_path / "1_cat+dog", missing_mask=True)  # img_000103: no mask
    bkg = make_backgrounds(tmp_path / "backgrounds", scenes=("garden", "beach", "old_mill"))
    out = run(tiny, src, tmp_path / "out", "--bkg-dir", bkg)
    assert out == tmp_path / "out" / "1_cat+dog_repaint"
    assert "img_000103.png has no mask" in capsys.readouterr().err
    # Scenes in name order: beach, garden, old_mill -> repaint-id 1, 2, 3 per composition.
    expected = [f"img_{i}_repaint-id_{k:06d}+a realistic photo of a cat and a dog {phrase}.png"
                for i in ("000101", "000102")
                for k, phrase in enumerate(("on the beach", "in a garden", "in the old mill"), 1)]
    assert pngs(out) == expected
    rows = csv_rows(out)
    assert rows[0] == ["directory", "image_name", "background_prompt"]
    assert [r[1] for r in rows[1:]] == expected  # quoted: names contain commas
    assert {r[2] for r in rows[1:]} == {"on the beach", "in a garden", "in the old mill"}
    assert all(Image.open(out / n).size == (SIZE, SIZE) for n in expected)


def test_foreground_pixels_preserved(tiny, comps, bkgs, tmp_path):
    out = run(tiny, comps, tmp_path / "keep", "--bkg-dir", bkgs / "garden")
    name = "img_000101_repaint-id_000001+a realistic photo of a cat and a dog in a garden.png"
    objects = np.asarray(Image.open(comps / "img_000101.png"))
    kept = np.asarray(Image.open(out / name))
    np.testing.assert_array_equal(kept[INNER], objects[INNER])
    assert (kept[:8, :8] != objects[:8, :8]).any()  # the background was repainted
    raw = np.asarray(Image.open(run(tiny, comps, tmp_path / "raw", "--bkg-dir", bkgs / "garden",
                                    "--no-keep-foreground") / name))
    assert (raw[INNER] != objects[INNER]).any()  # without the paste the VAE alters the objects


def test_rerun_skips_existing_and_resumes(tiny, comps, bkgs, tmp_path):
    out = run(tiny, comps, tmp_path / "out", "--bkg-dir", bkgs)
    names = pngs(out)
    assert len(names) == 4 and len(csv_rows(out)) == 5
    first = {n: np.asarray(Image.open(out / n)) for n in names}
    # Nothing to do: the model is not even loaded (a wrong --model path would fail otherwise).
    s3.main(s3.parse_args(["--src-dir", str(comps), "--dest", str(tmp_path / "out"),
                           "--bkg-dir", str(bkgs), "--model", str(tmp_path / "nope")]))
    # An interrupted run: one image lost, the CSV cut short.
    (out / names[1]).unlink()
    ann = out / "gen_annotations" / "1_cat+dog_repaint_ann.csv"
    ann.write_text("".join(ann.read_text().splitlines(keepends=True)[:2]))
    mtimes = {n: (out / n).stat().st_mtime_ns for n in names if n != names[1]}
    run(tiny, comps, tmp_path / "out", "--bkg-dir", bkgs)
    assert pngs(out) == names
    assert all((out / n).stat().st_mtime_ns == t for n, t in mtimes.items())  # not redone
    assert sorted(r[1] for r in csv_rows(out)[1:]) == names  # every row once
    # Per-output seeds: the redone image is the one the first run made.
    np.testing.assert_array_equal(np.asarray(Image.open(out / names[1])), first[names[1]])
    run(tiny, comps, tmp_path / "out", "--bkg-dir", bkgs, "--overwrite")
    assert all((out / n).stat().st_mtime_ns != t for n, t in mtimes.items())
    assert len(csv_rows(out)) == 5


def test_noise_bkg_without_bkg_dir(tiny, comps, tmp_path):
    # The document spells it --noise_bkg; the phrase comes from --prompt, -n-bkg starts each.
    out = run(tiny, comps, tmp_path, "--noise_bkg", "--prompt", "on the moon", "-n-bkg", "2",
              "--images-per-pair", "2", "--objects", "cat", "owl")
    caption = "a realistic photo of a cat and an owl on the moon"
    assert pngs(out) == [f"img_{i}_repaint-id_{k:06d}+{caption}.png"
                         for i in ("000101", "000102") for k in range(1, 5)]
    assert {r[2] for r in csv_rows(out)[1:]} == {"on the moon"}


def test_noise_bkg_with_bkg_dir_uses_scene_phrases_not_photos(tiny, comps, bkgs, tmp_path,
                                                              monkeypatch):
    def no_photo(*_):
        raise AssertionError("--noise-bkg must not start from the photo")
    monkeypatch.setattr(s3, "photo_start", no_photo)
    out = run(tiny, comps, tmp_path, "--noise-bkg", "--bkg-dir", bkgs)
    assert {r[2] for r in csv_rows(out)[1:]} == {"on the beach", "in a garden"}
    assert len(pngs(out)) == 4


def test_refiner_output_is_saved(tiny, comps, bkgs, tmp_path, monkeypatch):
    calls = []
    real_load = s3.load_inpaint_pipeline

    class Spy:
        """Stands in for the refiner pipeline and records how the script calls it."""
        def __init__(self, pipe):
            self.pipe = pipe

        def __call__(self, **kwargs):
            calls.append(kwargs)
            return self.pipe(**kwargs)

    def spy_load(*args, **kwargs):
        pipe = real_load(*args, **kwargs)
        return Spy(pipe) if kwargs.get("share_from") is not None else pipe
    monkeypatch.setattr(s3, "load_inpaint_pipeline", spy_load)
    base = run(tiny, comps, tmp_path / "base", "--bkg-dir", bkgs / "garden", "--num-steps", 4)
    refined = run(tiny, comps, tmp_path / "refined", "--bkg-dir", bkgs / "garden",
                  "--num-steps", 4, "--refiner", tiny["sdxl-refiner"], "--refiner-start", 0.5)
    assert len(calls) == 2 and all(kw["denoising_start"] == 0.5 for kw in calls)
    assert calls[0]["image"].shape[1] == 4  # the base's latents, not a decoded image
    name = pngs(base)[0]
    assert pngs(refined) == pngs(base)
    assert (np.asarray(Image.open(base / name)) != np.asarray(Image.open(refined / name))).any()


def test_sd15_pipeline_and_refiner_needs_sdxl(tiny, comps, bkgs, tmp_path):
    out = run(tiny, comps, tmp_path / "sd", "--bkg-dir", bkgs, "--inpaint-model-name", "sd-1.5",
              kind="sd-inpaint")
    assert len(pngs(out)) == 4
    with pytest.raises(InputError, match="--refiner needs an SDXL base"):
        run(tiny, comps, tmp_path / "sd2", "--bkg-dir", bkgs, "--refiner",
            tiny["sdxl-refiner"], kind="sd-inpaint")


# --- Errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--src-dir", "missing_dir"], "--src-dir missing_dir is not a folder"),
    (["--bkg-dir", "missing_bkg"], "--bkg-dir missing_bkg is not a folder"),
    ([], "--bkg-dir is missing"),
    (["--resolution", "60"], "--resolution 60"),
    (["--strength", "0"], "--strength"),
    (["--model", "/no/such/pipeline"], "--model /no/such/pipeline: no such folder"),
    (["--model", "."], "not a diffusers pipeline folder"),
])
def test_bad_inputs_fail_clearly(tiny, comps, bkgs, tmp_path, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    argv = ["--src-dir", str(comps), "--dest", str(tmp_path / "o"), "--device", "cpu"]
    if "--bkg-dir" not in extra and message != "--bkg-dir is missing":
        argv += ["--bkg-dir", str(bkgs)]
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        s3.main(s3.parse_args(argv + extra))


def test_missing_masks_only_is_an_error(tmp_path, bkgs):
    src = tmp_path / "1_cat"
    src.mkdir()
    Image.new("RGB", (SIZE, SIZE)).save(src / "img_000101.png")
    with pytest.raises(InputError, match="no img_\\* image has its mask_\\* file"):
        s3.main(s3.parse_args(["--src-dir", str(src), "--bkg-dir", str(bkgs),
                               "--dest", str(tmp_path / "o")]))


def test_load_error_message_names_hub_and_model_flag(tmp_path):
    with pytest.raises(PipelineLoadError) as err:
        load_inpaint_pipeline(str(tmp_path / "x"), "cpu", torch.float32)
    assert "--model" in str(err.value)


def test_hub_reachable_asks_once_and_quickly(monkeypatch):
    import socket
    from sd import pipelines

    def refused(address, timeout):
        assert timeout <= 5 and address == ("huggingface.co", 443)
        raise OSError("network is unreachable")

    def must_not_connect(*args, **kwargs):
        raise AssertionError("connected although the answer was known")

    monkeypatch.setattr(socket, "create_connection", refused)  # no test touches the network
    for name in ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert pipelines.hub_reachable() is False
    monkeypatch.setattr(socket, "create_connection", must_not_connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pipelines.hub_reachable() is False
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert pipelines.hub_reachable() is True


def test_an_unreachable_hub_loads_from_the_local_cache_only(monkeypatch):
    # Offline, a hub id goes to diffusers with local_files_only (no ~30 s of retries), and the error says why.
    import diffusers
    from sd import pipelines
    seen = {}

    def from_pretrained(name, **kwargs):
        seen.update(kwargs, name=name)
        raise OSError(f"{name} does not appear to have a file named model_index.json.")

    monkeypatch.setattr(pipelines, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(diffusers.AutoPipelineForInpainting, "from_pretrained", from_pretrained)
    with pytest.raises(PipelineLoadError, match="unreachable from here and the model is not in its local cache"):
        load_inpaint_pipeline("owner/some-inpainting-model", "cpu", torch.float32)
    assert seen["local_files_only"] is True and seen["name"] == "owner/some-inpainting-model"


def _cli(*argv, cwd):
    """Run the script as a user would, offline and with an empty Hugging Face cache."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(cwd / "hf_home_empty"))
    return subprocess.run([sys.executable, str(ROOT / "s3_background_repainting.py"), *argv],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_help(tmp_path):
    proc = _cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for flag in ("--src-dir", "--bkg-dir", "-n-bkg", "--noise-bkg", "--refiner", "--model"):
        assert flag in proc.stdout


def test_cli_unreachable_hub_is_one_clear_line(comps, bkgs, tmp_path):
    # No --model: the real hub id is tried offline (with an empty HF cache) and must fail cleanly.
    proc = _cli("--src-dir", str(comps), "--bkg-dir", str(bkgs), "--dest", str(tmp_path / "o"),
                "--device", "cpu", cwd=tmp_path)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: could not load the inpainting pipeline "
                           "diffusers/stable-diffusion-xl-1.0-inpainting-0.1")
    assert "hub may be unreachable" in last and "--model DIR" in last
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()  # a failed load leaves no half-made output folder


def test_cli_bad_src_dir(tmp_path):
    proc = _cli("--src-dir", str(tmp_path / "nope"), "--noise-bkg", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: --src-dir {tmp_path / 'nope'} is not a folder: pass a step-2 composition folder "
        "such as data/examples/s2_object_compositions/1_dog+rabbit+flower"]


@pytest.mark.parametrize("argv, message", [
    (["--src-dir", "nope", "--noise-bkg"], "--src-dir nope is not a folder"),
    (["--src-dir", "empty", "--noise-bkg"], "--src-dir empty holds no img_*.png compositions"),
    (["--src-dir", "1_cat+dog"], "--bkg-dir is missing"),
    (["--src-dir", "1_cat+dog", "--bkg-dir", "nope"], "--bkg-dir nope is not a folder"),
    (["--src-dir", "1_cat+dog", "--noise-bkg", "--batch-size", "0"], "--batch-size 0: must be"),
    (["--src-dir", "1_cat+dog", "--noise-bkg", "--images-per-pair", "0"], "--images-per-pair 0"),
])
def test_cli_refuses_bad_input_before_importing_torch(comps, tmp_path, argv, message):
    # torch alone takes seconds to import; the refusal must not wait for it (budget 1 s, with room
    # for a loaded machine).
    (tmp_path / "empty").mkdir()
    start = time.perf_counter()
    proc = _cli(*argv, cwd=tmp_path)
    wall = time.perf_counter() - start
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith(f"error: {message}")
    assert wall < 2.0, f"refusal took {wall:.1f} s"


@pytest.mark.parametrize("bad", ["bomb composition", "1x1 background"])
def test_cli_refuses_bad_images_by_their_headers_before_importing_torch(tmp_path, bad):
    """The image rule of the command lines (data/images.py) holds for the repainting inputs too: a
    decompression bomb or a 1x1 photo is refused in one line, before torch or a model is loaded."""
    from tests.test_image_limits import png_header

    src, bkgs = make_compositions(tmp_path / "1_cat+dog"), make_backgrounds(tmp_path / "backgrounds")
    if bad == "bomb composition":
        png_header(src / "img_000101.png", 20000, 20000)
        message = f"error: {src / 'img_000101.png'} has more than"
    else:
        Image.new("RGB", (1, 1)).save(bkgs / "garden" / "garden1.jpg")
        message = f"error: {bkgs / 'garden' / 'garden1.jpg'} is 1x1: too small"
    start = time.perf_counter()
    proc = _cli("--src-dir", str(src), "--bkg-dir", str(bkgs), cwd=tmp_path)
    wall = time.perf_counter() - start
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert wall < 2.0, f"refusal took {wall:.1f} s"


def test_parse_check_and_plan_do_not_import_torch(comps, bkgs, tmp_path):
    code = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import s3_background_repainting as s3
from utils.cli import run
args = s3.parse_args(["--src-dir", {str(comps)!r}, "--bkg-dir", {str(bkgs)!r},
                      "--images-per-pair", "2"])
s3.check_args(args)
compositions, _, backgrounds = s3.find_inputs(args)
assert len(s3.plan_images(args, compositions, backgrounds, ["cat"], args.dest)) == 8
assert run(s3.main, s3.parse_args, ["--src-dir", "nope", "--noise-bkg"]) == 2
print(sorted(m for m in sys.modules if m.split(".")[0] in
             ("torch", "diffusers", "transformers", "accelerate")))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --- Scale: several processes, resume with another number, batched pipeline calls ---------------
@pytest.fixture(scope="module")
def scale(tiny, tmp_path_factory):
    """Inputs, flags and the reference output of one in-process run: 2 compositions x 2 scenes x
    6 images = 24, at 32x32 (the later --resolution wins over run()'s), one image per call."""
    root = tmp_path_factory.mktemp("scale")
    src, bkgs = make_compositions(root / "1_cat+dog"), make_backgrounds(root / "backgrounds")
    args = ("--bkg-dir", bkgs, "--images-per-pair", 6, "--resolution", 32)
    return dict(src=src, bkgs=bkgs, args=args, out=run(tiny, src, root / "reference", *args))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def launch(processes, tiny, src, dest, *extra, log):
    """The CLI under `accelerate launch` with CPU processes (gloo), offline, output to `log`.

    Yields the launcher's Popen; on exit, kills whatever of its process tree is still alive (the
    workers run in sessions of their own, so the launcher's process group does not reach them).
    """
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           str(ROOT / "s3_background_repainting.py"), "--src-dir", str(src), "--dest", str(dest),
           "--model", str(tiny["sdxl-inpaint"]), "--num-steps", "2", "--device", "cpu",
           *map(str, extra)]
    # An empty HF_HOME: no accelerate config of this machine's user changes the launch.
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
               HF_HOME=str(log.parent / "hf_home_empty"))
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=log.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        kill_tree(proc)


def kill_tree(proc):
    """SIGKILL a launcher and its workers, workers first, as a crash or a lost machine would."""
    if proc.poll() is not None:  # it has exited and been reaped: its pid may be another's now
        return
    # Until it is reaped (below), the launcher's pid cannot be reused, even if it exits meanwhile.
    with contextlib.suppress(psutil.Error):
        launcher = psutil.Process(proc.pid)
        tree = launcher.children(recursive=True) + [launcher]
        for p in tree:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(tree, timeout=30)
    proc.wait(timeout=30)


def same_images(out, reference):
    names = pngs(out)
    assert names == pngs(reference)
    for name in names:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def csv_table(out):
    """Header and sorted rows of the CSV, with each row's directory checked and dropped."""
    header, *rows = csv_rows(out)
    assert {r[0] for r in rows} == {str(out)}
    return header, sorted(r[1:] for r in rows)


def test_two_processes_make_the_images_and_csv_of_one(tiny, scale, tmp_path):
    log = tmp_path / "launch.log"
    with launch(2, tiny, scale["src"], tmp_path / "out", *scale["args"], log=log) as proc:
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    out = tmp_path / "out" / "1_cat+dog_repaint"
    same_images(out, scale["out"])  # byte for byte: the seeds come from the names, not the rank
    assert csv_table(out) == csv_table(scale["out"])
    assert len(csv_rows(out)) == 25  # every image exactly once
    text = log.read_text()
    assert "split between 2 processes" in text and "24 images made, 0 skipped" in text


def test_interrupted_two_process_run_resumes_with_one(tiny, scale, tmp_path, capsys):
    out = tmp_path / "out" / "1_cat+dog_repaint"
    log = tmp_path / "launch.log"
    with launch(2, tiny, scale["src"], tmp_path / "out", *scale["args"], log=log) as proc:
        deadline = time.monotonic() + 300
        while not any(out.glob("*.png")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        kill_tree(proc)  # at the first image: 23 are left to the 2 processes, ~0.1 s each
    made = pngs(out)
    assert 0 < len(made) < 24, log.read_text()[-3000:]
    if (out / "gen_annotations").is_dir():  # a whole CSV, naming only images that exist
        assert {r[1] for r in csv_rows(out)[1:]} <= set(made)
    run(tiny, scale["src"], tmp_path / "out", *scale["args"])  # resumed by one process
    assert f"{24 - len(made)} images made, {len(made)} skipped" in capsys.readouterr().out
    same_images(out, scale["out"])
    names = [r[1] for r in csv_rows(out)[1:]]
    assert sorted(names) == pngs(scale["out"])  # every image once, no duplicate row
    assert csv_table(out) == csv_table(scale["out"])


def test_batch_size_makes_the_images_of_batch_size_1(tiny, scale, tmp_path, monkeypatch):
    calls = []
    real_repaint = s3.repaint

    def spy(pipe, refiner, units, args):
        calls.append(len(units))
        return real_repaint(pipe, refiner, units, args)
    monkeypatch.setattr(s3, "repaint", spy)
    # 2 x 2 x 2 = 8 images: batches of 3 straddle pairs, so they mix start images and masks.
    flags = ("--bkg-dir", scale["bkgs"], "--images-per-pair", 2, "--resolution", 32)
    out = run(tiny, scale["src"], tmp_path / "b3", *flags, "--batch-size", 3)
    assert calls == [3, 3, 2]
    single = run(tiny, scale["src"], tmp_path / "b1", *flags)
    assert pngs(out) == pngs(single)
    for name in pngs(out):
        a = np.asarray(Image.open(out / name)).astype(int)
        b = np.asarray(Image.open(single / name)).astype(int)
        assert np.abs(a - b).max() <= 2, name  # float rounding of batched kernels, 2/255 at most


def test_background_photos_load_upright(tmp_path):
    """Photos go through the project's loader: EXIF orientation is applied before the square crop."""
    from sd.repaint import load_rgb
    stored = np.zeros((40, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: red ends up on top
    Image.fromarray(stored).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    shown = load_rgb(tmp_path / "rotated.jpg", 40).astype(int)
    assert shown[5, 20, 0] > 200 and shown[35, 20, 0] < 60


def test_tiny_pipelines_are_written_with_the_permissions_of_any_new_file(tiny):
    from utils.files import current_umask
    files = [p for p in tiny["sd-inpaint"].rglob("*") if p.is_file()]
    assert any(p.suffix == ".safetensors" for p in files)
    assert {p.stat().st_mode & 0o777 for p in files} == {0o666 & ~current_umask()}  # 0644 under umask 022
