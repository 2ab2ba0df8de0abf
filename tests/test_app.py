"""app.py, the web page (issue 12): it builds, /fill_two answers gradio_client with the photos' own squares,
the painted-mask fill keeps the unpainted pixels, bad uploads get a one-line message, Stable Diffusion says why
it is missing, and headless Chromium fills two photos on the real page. `python app.py` itself, stopped with
SIGTERM or Ctrl-C, removes its temporary files; benchmarks/load_app.py's checks pass with tiny counts.

One server per module on a free 127.0.0.1 port, with the shipped 128 px GAN and the training-free fills; its
gradio cache, outputs and the client's downloads live in a temp folder that is removed afterwards; the two
tests of `python app.py` run it in a subprocess whose TMPDIR is their tmp_path. Nothing touches the network
beyond 127.0.0.1. UPDATE_SCREENSHOT=1 writes the browser test's screenshot to docs/app_screenshot.png.
"""
import os
import shutil
import signal
import socket
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # before gradio imports huggingface_hub: never the network

import numpy as np
import pytest
from PIL import Image

import app
from data.datasets import eval_transform
from data.images import load_image
from data.masks import known_squares
from utils.files import repo_path

PHOTOS = [str(repo_path("data/scenery/test/mate_yellow_flower.jpg")),
          str(repo_path("data/scenery/test/lomiri_picos_mountains.jpg"))]
SCREENSHOT = repo_path("docs/app_screenshot.png")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(url, gradio_client.Client, temp folder) of the app serving in this process."""
    from gradio_client import Client
    root = tmp_path_factory.mktemp("app")
    env = pytest.MonkeyPatch()
    env.setenv("GRADIO_TEMP_DIR", str(root / "gradio"))  # gradio's upload cache: read when components are made
    demo = app.build_app(app.Page(app.Methods(), root / "outputs"))
    url = app.launch(demo, "127.0.0.1", free_port())
    try:
        yield url, Client(url, download_files=str(root / "client"), verbose=False), root
    finally:
        demo.close()
        env.undo()
        shutil.rmtree(root, ignore_errors=True)


def pixels(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(int)


def assert_known_squares(output: np.ndarray, crop_ratio: float = 0.4):
    """The two known squares are the photos' own pixels, resized and cropped as eval_2 does (PNG: exact; 1 level
    of slack)."""
    size = output.shape[0]
    for (top, left, side), path in zip(known_squares(size, crop_ratio), PHOTOS):
        reference = eval_transform(load_image(path), size).permute(1, 2, 0).numpy().astype(int)
        square = (slice(top, top + side), slice(left, left + side))
        assert np.abs(output[square] - reference[square]).max() <= 1, f"the square of {Path(path).name} changed"


def test_app_builds_with_the_fill_two_endpoint(server):
    _, client, _ = server
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = endpoints["/fill_two"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["image1", "image2", "crop_ratio", "method", "output_size",
                                                     "steps"]
    assert [p["parameter_has_default"] for p in params] == [False, False, True, True, True, True]
    assert len(endpoints["/fill_two"]["returns"]) == 1, "the API returns the filled image only"
    assert "/fill_mask" in endpoints


def test_fill_two_with_the_client_keeps_the_photos_squares(server):
    from gradio_client import handle_file
    _, client, _ = server
    start = time.perf_counter()
    result = client.predict(handle_file(PHOTOS[0]), handle_file(PHOTOS[1]), api_name="/fill_two")  # the GAN
    seconds = time.perf_counter() - start
    output = pixels(result)
    side = min(min(load_image(p).size) for p in PHOTOS)
    assert output.shape == (side, side, 3), "default: the photos' resolution, as main.py's eval_2"
    assert_known_squares(output)
    centre = output[side // 2 - 16:side // 2 + 16, side // 2 - 16:side // 2 + 16]
    assert np.abs(centre - 127.5).mean() > 5, "the hole is painted, not left grey"
    print(f"/fill_two with the GAN at {side}x{side}: {seconds:.2f} s")
    # The model's resolution, another crop ratio, a training-free fill.
    result = client.predict(handle_file(PHOTOS[0]), handle_file(PHOTOS[1]), 0.3, "harmonic", "model",
                            api_name="/fill_two")
    output = pixels(result)
    assert output.shape == (128, 128, 3)
    assert_known_squares(output, 0.3)


def test_fill_mask_keeps_the_unpainted_pixels(server, tmp_path):
    from gradio_client import handle_file
    _, client, _ = server
    photo = load_image(PHOTOS[1])
    layer = np.zeros((photo.size[1], photo.size[0], 4), np.uint8)
    layer[-photo.size[1] // 3:, -photo.size[0] // 3:] = (255, 0, 255, 255)  # paint the bottom-right third
    Image.fromarray(layer, "RGBA").save(tmp_path / "layer.png")
    editor = {"background": handle_file(PHOTOS[1]), "layers": [handle_file(str(tmp_path / "layer.png"))],
              "composite": None}
    output = pixels(client.predict(editor, "telea", "model", api_name="/fill_mask"))
    reference = eval_transform(photo, 128).permute(1, 2, 0).numpy().astype(int)
    assert output.shape == (128, 128, 3)
    assert np.abs(output[:64, :64] - reference[:64, :64]).max() <= 1, "unpainted pixels are kept"
    assert np.abs(output[-20:, -20:] - reference[-20:, -20:]).mean() > 1, "the painted part is filled"
    with pytest.raises(Exception, match="nothing painted"):
        client.predict({"background": handle_file(PHOTOS[1]), "layers": [], "composite": None}, "telea", "model",
                       api_name="/fill_mask")


def test_bad_uploads_get_a_message_not_a_traceback(server, tmp_path):
    from gradio_client import handle_file
    _, client, _ = server
    (tmp_path / "notes.txt").write_text("not a photo")
    photo1, photo2 = handle_file(PHOTOS[0]), handle_file(PHOTOS[1])
    cases = [((handle_file(str(tmp_path / "notes.txt")), photo2), r"photo 1 \(notes.txt\) is not an image"),
             ((photo1, photo2, 0.7), "crop_ratio must be in"),
             ((photo1, photo2, 0.4, "magic"), "choose one of gan, harmonic"),
             ((photo1, photo2, 0.4, "sd"), "Stable Diffusion is unavailable.*--sd_model")]
    for inputs, message in cases:
        with pytest.raises(Exception, match=message):
            client.predict(*inputs, api_name="/fill_two")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(tiny)
    with pytest.raises(Exception, match=r"photo 2 \(tiny.png\) is 8x8: too small"):
        client.predict(handle_file(PHOTOS[0]), handle_file(str(tiny)), api_name="/fill_two")


def test_slow_methods_fill_through_the_same_page_code(tmp_path):
    """The shipped diffusion baseline (2 DDIM steps), and Stable Diffusion: unavailable, with the reason, when
    not configured or not loadable; from a pipeline folder (tools/make_tiny_pipeline.py's tiny random one, 64 px,
    2 steps) a fill that keeps the known squares."""
    from tools.make_tiny_pipeline import save_tiny_pipeline
    photos = [{"path": p} for p in PHOTOS]
    methods = app.Methods()
    assert methods.sd is None and "--sd_model" in methods.sd_reason
    path, details = app.Page(methods, tmp_path / "outputs").fill_two(*photos, 0.4, "diffusion", "model", 2)
    assert pixels(path).shape == (64, 64, 3) and "diffusion" in details["text"]
    assert_known_squares(pixels(path))
    missing = app.Methods(sd_model=str(tmp_path / "missing"))
    assert missing.sd is None and "--sd_model" in missing.sd_reason and "no such folder" in missing.sd_reason
    methods = app.Methods(sd_model=str(save_tiny_pipeline("sd-inpaint", tmp_path / "pipe")))
    assert methods.sd is not None, methods.sd_reason
    path, details = app.Page(methods, tmp_path / "outputs").fill_two(*photos, 0.4, "sd", "model", 2)
    assert pixels(path).shape == (64, 64, 3) and "Stable Diffusion" in details["text"]
    assert_known_squares(pixels(path))


def test_a_closed_page_saves_no_more_fills(tmp_path):
    """A fill that ends after the server has stopped must not recreate the folder that is being removed."""
    page = app.Page(app.Methods(), tmp_path / "outputs")
    page.close()
    with pytest.raises(Exception, match="shutting down"):
        page.fill_two(*({"path": p} for p in PHOTOS), 0.4, "harmonic", "model")
    assert not (tmp_path / "outputs").exists()


def test_sigterm_stops_app_py_and_removes_its_files(tmp_path):
    """`python app.py` stopped as a service manager stops it (SIGTERM), after one fill and during another (the
    diffusion baseline, whose thread outlives the server): it ends with status 0 within seconds, and nothing of
    its temporary folder (drwx------: the fills, gradio's copies, the uploads) is left."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status
    from benchmarks.load_app import AppServer
    with AppServer(tmp_path, [], deadline=time.perf_counter() + 120) as server:
        client = Client(server.url, download_files=str(tmp_path / "client"), verbose=False)
        assert_known_squares(pixels(client.predict(*map(handle_file, PHOTOS), api_name="/fill_two")))
        folder, = server.tmp.glob("gan_paint_app_*")
        assert folder.stat().st_mode & 0o777 == 0o700, "only the user may open the page's folder"
        assert list(folder.glob("job_*/*.png")) and list(folder.glob("gradio/*/*_fill.png")), \
            "the fill and gradio's copy of it are in that folder"
        running = client.submit(*map(handle_file, PHOTOS), 0.4, "diffusion", "model", 1000, api_name="/fill_two")
        limit = time.perf_counter() + 60
        while running.status().code != Status.PROCESSING:
            assert time.perf_counter() < limit, "the diffusion fill did not start"
            time.sleep(0.05)
        seconds, status = server.stop(signal.SIGTERM)
        log = server.log_path.read_text()
    print(f"SIGTERM during a fill: app.py ended in {seconds:.1f} s")
    assert status == 0, f"app.py did not end by itself (status {status}):\n{log}"
    assert "SIGTERM: server closed, temporary files removed" in log and "Traceback" not in log, log
    assert not folder.exists() and server.files_left() == []


def test_load_app_checks_pass_with_two_clients(tmp_path):
    """benchmarks/load_app.py's whole run with tiny counts (2 clients x 2 calls, a burst of 3 on a queue of 1),
    ending with Ctrl-C's SIGINT: every check passes."""
    from benchmarks import load_app
    args = load_app.parse_args(["--clients", "2", "--calls", "2", "--queue_size", "1", "--blocker_steps", "10",
                                "--stop_signal", "SIGINT", "--timeout", "180"])
    assert load_app.load_test(args, tmp_path) == []


def browser_paths():
    """(chromium, chromedriver) or a reason to skip."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        return None, ("headless Chromium not installed: `apt-get install -y chromium chromium-driver` (Debian; "
                      ".ci/run does it) to run the browser test")
    return (chromium, driver), None


def test_browser_fills_two_photos_on_the_page(server, tmp_path):
    paths, reason = browser_paths()
    if paths is None:
        pytest.skip(reason)
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in requirements.txt: pip install it")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    url, _, _ = server
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]  # with the driver's path given, Selenium Manager (network) is skipped
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                 "--window-size=1400,1000", "--disable-background-networking", "--disable-component-update"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(paths[1]), options=options)
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(url)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image2 input[type=file]"))
        for element, photo in zip(("image1", "image2"), PHOTOS):
            driver.find_element(By.CSS_SELECTOR, f"#{element} input[type=file]").send_keys(photo)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#image1 img, #image2 img")) == 2)
        driver.find_element(By.ID, "fill_two").click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#two_result img, #two_input img")
                   and " s" in d.find_element(By.ID, "two_info").text)
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('#two_result img, #two_input img')].every(i => i.complete)"))
        driver.execute_script("window.scrollTo(0, 0)")
        time.sleep(0.5)  # let the page settle after the scroll
        info = driver.find_element(By.ID, "two_info").text
        result = driver.find_element(By.CSS_SELECTOR, "#two_result img")
        natural = driver.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", result)
        box = result.rect
        driver.save_screenshot(str(tmp_path / "page.png"))
    finally:
        driver.quit()
    side = min(min(load_image(p).size) for p in PHOTOS)
    assert natural == [side, side], "the page shows the full-resolution result"
    assert f"{side}x{side}" in info and " s" in info, "the page says the size and the time taken"
    # The screenshot shows the result: its box is on screen and holds a picture, not an empty frame.
    shot = pixels(tmp_path / "page.png")
    top, left = int(box["y"]), int(box["x"])
    shown = shot[top:top + int(box["height"]), left:left + int(box["width"])]
    assert shown.size and top + box["height"] <= shot.shape[0] and shown.std() > 10
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(tmp_path / "page.png", SCREENSHOT)
