"""The HTML report: its checklist and reproduce command, every kind of record, hostile strings, and a
real render in headless Chromium with the network blocked (no console error, no request leaving the file).

CI needs the Debian package ``chromium`` (/usr/bin/chromium) and the Python package ``playwright``
(its own browser download is not needed); nothing here is skipped when they are missing: it fails.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from engine.analysis.summary import summarize
from engine.artifacts.report import build_report, checklist, reproduce_command
from engine.cli.main import build_parser, main
from engine.cli.run import config_from_args
from engine.config import ExperimentConfig
from tests.test_tuning import dead_record, grid_record, old_record, stopped_record
from tests.trial_records import showcase

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
HOSTILE = '<script>document.title="owned"</script><img src="http://example.invalid/leak.png">'


def write_experiment(folder: Path, record: dict, probe: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiment.json").write_text(json.dumps(record), encoding="utf-8")
    if probe is not None:
        (folder / "probe.json").write_text(json.dumps(probe), encoding="utf-8")
    return folder


def render(url: str, width: int = 1280) -> dict:
    """Load ``url`` in headless Chromium with every non-file request aborted; what the page did."""
    seen: dict = {"requests": [], "console_errors": [], "page_errors": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.on("request", lambda request: seen["requests"].append(request.url))
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                       else route.abort())
            page.on("console", lambda message: message.type == "error" and seen["console_errors"].append(message.text))
            page.on("pageerror", lambda error: seen["page_errors"].append(str(error)))
            page.goto(url)
            page.wait_for_load_state("load")
            seen.update(page.evaluate("""() => ({
                title: document.title,
                scripts: document.querySelectorAll('script').length,
                svgs: Array.from(document.querySelectorAll('figure svg')).map(s => s.getBoundingClientRect().width),
                headings: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
                overflow: document.documentElement.scrollWidth - window.innerWidth,
                text: document.body.innerText })"""))
        finally:
            browser.close()
    return seen


def test_the_detectors_catch_a_page_that_reaches_out(tmp_path: Path) -> None:
    """The render check can fail: a page that loads an image from the network is caught both ways."""
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>', encoding="utf-8")
    seen = render(leaky.as_uri())
    assert "http://example.invalid/x.png" in seen["requests"]
    assert seen["console_errors"]


@pytest.mark.slow  # matplotlib draws 3 figures and Chromium starts: about 20 s on a shared 2-core machine
def test_report_command_writes_one_file_that_renders_offline_without_errors(tmp_path: Path) -> None:
    record, probe = showcase()
    record["id"] = "showcase " + HOSTILE
    record["dataset"]["root"] = HOSTILE
    record["config"]["data_dir"] = HOSTILE
    record["environment"]["device"] = "CPU " + HOSTILE
    record["runs"][-1]["error"] = HOSTILE  # the diverged trial's error
    folder = write_experiment(tmp_path / "exp", record, probe)
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "--to", str(out)]) == 0
    assert out.stat().st_mode & 0o777 == 0o644
    seen = render(out.as_uri())
    assert seen["requests"] == [out.as_uri()]  # nothing but the file itself
    assert seen["console_errors"] == [] and seen["page_errors"] == []
    assert seen["scripts"] == 0 and seen["title"].startswith("BatchLab report: showcase <script>")  # as text
    assert len(seen["svgs"]) == 3 and all(width > 500 for width in seen["svgs"])
    assert seen["overflow"] <= 0  # nothing wider than the window
    assert seen["headings"] == ["Checklist: what a credible comparison reports", "Tuned answer per batch size",
                                "Learning rate × batch size", "Steps and time to target",
                                "Learning curves at each batch size's best learning rate", "Diagnoses",
                                "Every trial", "Environment and how to repeat it"]
    text = seen["text"]
    for expected in ("Target: 90.2% validation accuracy", "✗ missing", "✓ met",
                     "Successive halving trained 396 epochs over all trials, 55% of the 720 a full grid would have "
                     "cost",
                     "leave-one-out: 2% mean absolute error", "dead: training loss ended at 1.6094",
                     "python main.py run " + shlex.quote(HOSTILE) + " --batch-sizes 16 32 64 128 256 512"):
        assert expected in text, expected


def test_checklist_marks_each_item_met_or_missing_with_a_reason() -> None:
    record, probe = showcase()
    items = {item: (met, why) for item, met, why in checklist(record, summarize(record, probe))}
    assert list(items) == ["Learning rate tuned per batch size", "Budget type", "Seeds / repeats",
                           "Time to target on named hardware", "Environment"]
    assert items["Learning rate tuned per batch size"] == (
        False, "3 learning rates each (successive halving), but the best one is at the edge of the grid for batch "
               "size 64 (highest): widen it so the optimum is bracketed")
    assert items["Budget type"] == (True, "equal epochs (20 per trial); batch size 512 got 31 times fewer optimizer "
                                          "updates than 16 (260 against 8,000)")
    assert items["Seeds / repeats"][0] is True
    assert items["Time to target on named hardware"] == (True, "time to 90.2% measured on CPU: AMD EPYC (2 cores)")
    assert items["Environment"] == (True, "Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1, precision bf16 mixed")

    old = old_record()
    del old["environment"]["precision"]
    items = {item: (met, why) for item, met, why in checklist(old, summarize(old))}
    assert items["Learning rate tuned per batch size"] == (
        False, "one learning rate per batch size (0.001): the gap may be the learning rate; run with --lr-grid 3")
    assert items["Seeds / repeats"] == (False, "one seed per configuration: seed-to-seed noise is unknown; run with "
                                               "--repeats 3")
    assert items["Environment"] == (False, "Python 3.11.7, TensorFlow 2.21.0, Keras 3.15.1; missing: precision")
    stopped = stopped_record()
    items = {item: (met, why) for item, met, why in checklist(stopped, summarize(stopped))}
    assert items["Time to target on named hardware"][0] is False
    assert items["Time to target on named hardware"][1].startswith("no target accuracy (no trial finished")


def test_reproduce_command_uses_config_toml_else_rebuilds_flags_that_give_back_the_config(tmp_path: Path) -> None:
    config = ExperimentConfig(data_dir="my data/shapes", batch_sizes=[16, 256], epochs=7, patience=0,
                              image_size=48, val_split=0.2, lr=0.003, seed=4, augment=False, out="runs",
                              precision="fp32", lr_scaling="sqrt", lr_reference_batch=16, warmup_epochs=1.5,
                              budget="time", budget_seconds=60.0, repeats=3, target_accuracy=0.8,
                              noise_scale=True, name="first", devices=["GPU:0", "GPU:1"], parallel=True).validate()
    record = {"config": config.to_dict(), "runs": []}
    command = reproduce_command(record, tmp_path)
    words = shlex.split(command)
    assert words[:4] == ["python", "main.py", "run", "my data/shapes"]
    args = build_parser().parse_args(words[2:])
    again = config_from_args(args).to_dict()
    assert {k: v for k, v in again.items() if k != "name"} == {k: v for k, v in config.to_dict().items() if k != "name"}
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    expected = f"python main.py run --config {shlex.quote(str(tmp_path / 'config.toml'))}"
    assert reproduce_command(record, tmp_path) == expected


@pytest.mark.parametrize("make", [grid_record, dead_record, stopped_record, old_record,
                                  lambda: {"config": {"batch_sizes": []}, "runs": []}])
def test_every_kind_of_record_gives_a_report(make) -> None:
    record = make()
    text = build_report(record, None, "python main.py run --config x/config.toml")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", "")
    summary = summarize(record)
    assert summary.advice.split(". ")[0] in text.replace("&#x27;", "'")


def test_a_dead_comparison_report_says_so_and_names_what_to_try() -> None:
    text = build_report(dead_record())
    assert "This comparison includes dead networks: no trial of batch size 256 learned" in text
    assert "a smaller image size (now 150 px; --image-size 32)" in text
    assert text.count("<figure>") == 3  # heat map, steps (32 reached: measured points), learning curves


def test_report_at_another_target_reanalyses_without_changing_the_record(tmp_path: Path, capsys) -> None:
    record, probe = showcase()
    folder = write_experiment(tmp_path / "exp", record, probe)
    before = (folder / "experiment.json").read_bytes()
    out = tmp_path / "report.html"
    assert main(["report", str(folder), "--to", str(out), "--target-accuracy", "0.5"]) == 0
    assert "Target: 50.0% validation accuracy" in out.read_text(encoding="utf-8")
    assert (folder / "experiment.json").read_bytes() == before
    assert main(["report", str(folder), "--to", str(out)]) == 0
    assert "Target: 90.2% validation accuracy" in out.read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["report", str(folder), "--to", str(out), "--target-accuracy", "75"])
    assert "must be above 0 and at most 1 (0.75 means 75%)" in capsys.readouterr().err
