#!/usr/bin/env python3
"""The web page in a real browser: Debian's chromium, headless, driven by chromedriver through Selenium, against a
vidgen-server and a worker group on the demo model started here. Logs in, submits, sees the progress bar advance,
sees the finished video play (its duration > 0), cancels a second job and sees it end cancelled, runs a job with the
step-distilled LoRA (its schedule filled in) and an image-to-video job from an uploaded PNG; saves screenshots.

Exit status 77 (ctest's skip) when chromium, chromedriver or Selenium is missing."""
import argparse
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

KEY = "acme-key-0123456789abcdef"
SKIP = 77

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.select import Select
except ImportError:
    print("skipped: python3-selenium is not installed")
    sys.exit(SKIP)


def wait_for(what, condition, timeout=120, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def read_port(path):
    wait_for(f"{path}", lambda: os.path.exists(path) and open(path).read().strip(), timeout=30)
    return int(open(path).read())


def api(port, path):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {KEY}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def write_png(path, width, height):
    """An RGB gradient as a PNG, written by hand (no imaging library needed)."""
    rows = b"".join(b"\0" + b"".join(bytes((255 * x // width, 255 * y // height, 96)) for x in range(width))
                    for y in range(height))
    chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data +
                                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    with open(path, "wb") as png:
        png.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
                  chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--server-bin", "--worker-bin", "--model-dir", "--lora-dir", "--i2v-model-dir", "--out-dir"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    chromium, driver_bin = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_bin:
        print("skipped: chromium and chromium-driver are not installed")
        return SKIP

    os.makedirs(args.out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="vidgen-browser-")
    processes = []
    try:
        with open(f"{work}/keys.json", "w") as keys:
            json.dump([{"tenant": "acme", "key": KEY}], keys)
        with open(f"{work}/worker.token", "w") as token:
            token.write("worker-token-0123456789abcdef")
        log = open(f"{work}/processes.log", "w")
        processes.append(subprocess.Popen(
            [args.server_bin, "--listen", "127.0.0.1:0", "--port-file", f"{work}/grpc.port", "--data-dir",
             f"{work}/server", "--keys-file", f"{work}/keys.json", "--worker-token-file", f"{work}/worker.token",
             "--http-listen", "127.0.0.1:0", "--http-port-file", f"{work}/http.port", "--heartbeat-seconds", "1"],
            stdout=log, stderr=log, start_new_session=True))
        grpc_port, http_port = read_port(f"{work}/grpc.port"), read_port(f"{work}/http.port")
        processes.append(subprocess.Popen(
            [args.worker_bin, "--server", f"127.0.0.1:{grpc_port}", "--worker-token-file", f"{work}/worker.token",
             "--model-dir", args.model_dir, "--model-name", "demo", "--dtype", "fp32", "--threads", "1",
             "--lora-dir", args.lora_dir, "--work-dir", f"{work}/worker"],
            stdout=log, stderr=log, start_new_session=True))
        processes.append(subprocess.Popen(
            [args.worker_bin, "--server", f"127.0.0.1:{grpc_port}", "--worker-token-file", f"{work}/worker.token",
             "--model-dir", args.i2v_model_dir, "--model-name", "wan-i2v", "--dtype", "fp32", "--threads", "1",
             "--work-dir", f"{work}/worker-i2v"],
            stdout=log, stderr=log, start_new_session=True))
        for model in ("demo", "wan-i2v"):
            wait_for(f"the {model} model's worker group", lambda: any(
                m["id"] == model and m["worker_groups"] > 0 for m in api(http_port, "/v1/models")["data"]))
        write_png(f"{work}/first.png", 70, 45)

        options = webdriver.ChromeOptions()
        options.binary_location = chromium
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--autoplay-policy=no-user-gesture-required", "--window-size=420,900"):
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(driver_bin), options=options)
        try:
            run_page(browser, http_port, args.out_dir, f"{work}/first.png")
        finally:
            browser.quit()
        print("passed")
        return 0
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
        if os.path.exists(f"{work}/processes.log"):
            with open(f"{work}/processes.log") as log:
                sys.stdout.write(log.read()[-4000:])
        shutil.rmtree(work, ignore_errors=True)


def run_page(browser, port, out_dir, image):
    find = lambda id: browser.find_element(By.ID, id)
    browser.get(f"http://127.0.0.1:{port}/")
    find("key").send_keys(KEY)
    find("login-button").click()
    wait_for("the app after logging in", lambda: find("app").is_displayed())
    # The model's defaults filled in (the demo model's trained size).
    assert find("model").get_attribute("value") == "demo"
    assert find("size").get_attribute("value") == "32x32", find("size").get_attribute("value")

    find("prompt").send_keys("a red circle moving left on a gray background")
    steps = find("steps")
    steps.clear()
    steps.send_keys("200")  # the demo model steps in about 10 ms: long enough to see the bar move
    find("submit").click()
    progress = lambda: float(find("progress").get_attribute("value") or 0)
    seen = set()
    def advanced():
        seen.add(round(progress(), 3))
        return len([value for value in seen if 0 < value < 1]) >= 2
    wait_for("the progress bar to advance", advanced, every=0.02)
    browser.save_screenshot(os.path.join(out_dir, "progress.png"))
    duration = lambda: browser.execute_script(
        "const v = document.getElementById('video'); return !v.hidden && v.duration > 0 ? v.duration : 0;")
    wait_for("the finished video to play", duration)
    assert find("status").text == "succeeded", find("status").text
    assert find("download").is_displayed()
    print(f"progress values seen: {sorted(seen)}; video duration {duration():.3f} s")
    browser.save_screenshot(os.path.join(out_dir, "finished.png"))

    # A long second job, cancelled while it runs.
    steps.clear()
    steps.send_keys("200")
    find("submit").click()
    wait_for("the second job to run", lambda: find("status").text == "running" and progress() > 0, every=0.02)
    find("cancel").click()
    wait_for("the second job to end cancelled", lambda: find("status").text == "cancelled")
    rows = wait_for("the jobs table", lambda: [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#jobs tr")
                                                if "cancelled" in row.text or "succeeded" in row.text] or None)
    assert any("cancelled" in row for row in rows) and any("succeeded" in row for row in rows), rows
    browser.save_screenshot(os.path.join(out_dir, "cancelled.png"))

    def run_to_video(what):
        followed = lambda: browser.execute_script("return current;")
        before = followed()
        find("submit").click()
        job_id = wait_for(f"{what} to be followed", lambda: followed() != before and followed())
        wait_for(f"{what} to play", duration, timeout=240)
        assert find("status").text == "succeeded", find("status").text
        return api(port, f"/v1/videos/{job_id}")

    # The step-distilled LoRA: ticking it shows its schedule's 4 steps (and unticking the model's again), and the job,
    # which leaves them unset, runs that schedule. A text-to-video model shows no image inputs.
    assert not find("images").is_displayed() and find("loras").is_displayed()
    model_steps = str(next(m for m in api(port, "/v1/models")["data"] if m["id"] == "demo")["defaults"].get("steps", ""))
    steps_shown = lambda: find("steps").get_attribute("value")
    for tick, expected in ((True, "4"), (False, model_steps), (True, "4")):
        find("lora-distill").click()
        assert steps_shown() == expected, (tick, steps_shown())
    job = run_to_video("the LoRA job")
    assert job["spec"]["loras"] == [{"name": "distill", "scale": 1.0}], job["spec"]
    assert job["spec"]["timesteps"] == [1000, 750, 500, 250] and job["total_steps"] == 4, job
    browser.save_screenshot(os.path.join(out_dir, "lora.png"))

    # Image-to-video from an uploaded PNG: the video's sides follow the image's aspect ratio within its area.
    Select(find("model")).select_by_value("wan-i2v")
    wait_for("the image input", lambda: find("images").is_displayed())
    assert not find("last-image-field").is_displayed() and not find("loras").is_displayed()
    find("image").send_keys(image)
    for field, value in (("size", "64x32"), ("frames", "5"), ("steps", "2")):
        find(field).clear()
        find(field).send_keys(value)
    job = run_to_video("the image-to-video job")
    assert job["model"] == "wan-i2v", job
    # 70×45 in 64×32 = 2048 pixels: 48×32.
    sides = browser.execute_script("const v = document.getElementById('video'); return [v.videoWidth, v.videoHeight];")
    assert sides == [48, 32], sides
    browser.save_screenshot(os.path.join(out_dir, "image.png"))


if __name__ == "__main__":
    sys.exit(main())
