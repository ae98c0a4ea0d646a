"""The panel's page in headless Chromium: it renders the state ChimeraX gives it, and each
control emits the segment command expected; those commands then run in headless ChimeraX."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from chimerax.medseg.chimerax_ui.panel import PAGE, PanelController
from chimerax.medseg.chimerax_ui.volumes import open_image_volumes
from chimerax.medseg.images import read_case

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files", "--virtual-time-budget=5000"]

# What a user does, in the page's own terms; the emitted commands are collected in order.
ACTIONS = """
const emitted = [];
medsegPanel.send = (command) => emitted.push(command);
medsegPanel.update(STATE);
const click = (id) => document.getElementById(id).click();
const change = (element, value) => { if (value !== undefined) element.value = value;
                                     element.dispatchEvent(new Event("change")); };
document.getElementById("fast").click();                    // fast on (mirroring goes off)
document.getElementById("folds").value = "0 1";
click("run");
const rows = document.querySelectorAll("#structures tbody tr");
const show = rows[0].querySelector("input.show"); show.checked = false; change(show);
change(rows[1].querySelector("input.color"), "#00ff00");
document.getElementById("save-path").value = SAVE_PATH;
click("save");
medsegPanel.update(Object.assign({}, STATE, {running: {title: "Segmentation of x", percent: 40, message: "tile 3/8",
                                                        seconds: 20, seconds_left: 30}}));
click("stop");
const out = document.createElement("pre");
out.id = "emitted";
out.textContent = JSON.stringify({emitted,
  channels: [...document.querySelectorAll("#channels select")].map((s) => [s.dataset.channel, s.value]),
  rows: [...rows].map((r) => r.dataset.name), progress: document.getElementById("progress-text").textContent,
  models: [...document.querySelectorAll("#model option")].map((o) => o.value)});
document.body.append(out);
"""


def _render(state: dict, save_path: str, folder: Path, screenshot: Path | None = None) -> dict:
    """Load the real page (its own HTML, CSS and JS) with the actions above; return what they saw."""
    page = PAGE.read_text()
    page = page.replace('href="panel.css"', f'href="{(PAGE.parent / "panel.css").as_uri()}"')
    page = page.replace('src="panel.js"', f'src="{(PAGE.parent / "panel.js").as_uri()}"')
    script = (f"<script>document.addEventListener('DOMContentLoaded', () => {{ const STATE = {json.dumps(state)};"
              f" const SAVE_PATH = {json.dumps(save_path)};\n{ACTIONS}\n}});</script>")
    harness = folder / "harness.html"
    harness.write_text(page.replace("</body>", script + "</body>"))
    common = FLAGS + [f"--user-data-dir={folder / 'profile'}"]
    dom = subprocess.run([CHROMIUM, *common, "--dump-dom", harness.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    if screenshot is not None:
        subprocess.run([CHROMIUM, *common, f"--screenshot={screenshot}", "--window-size=440,720", harness.as_uri()],
                       capture_output=True, timeout=120)
    found = re.search(r'<pre id="emitted">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture
def real_state(session, run, example_case):
    """The state PanelController gives after a real segmentation of the example case."""
    image = read_case([str(p) for p in example_case])
    volumes = open_image_volumes(session, image, ["case_t1", "case_t1ce", "case_t2", "case_flair"])
    panel = PanelController(session)
    panel.run(f"segment example {' '.join('#' + v.id_string for v in volumes)} device cpu fast true")
    return panel, panel.state(), volumes


def test_page_renders_the_state_and_emits_segment_commands_that_run(real_state, tmp_path):
    assert CHROMIUM, "needs Debian's chromium: scripts/test.sh installs it (apt-get install chromium)"
    panel, state, volumes = real_state
    save_path = str(tmp_path / "from page.nii.gz")
    shot = tmp_path / "panel.png"
    seen = _render(state, save_path, tmp_path, screenshot=shot)
    ids = " ".join("#" + v.id_string for v in volumes)
    volume = state["result"]["volume"]
    names = [r["name"] for r in state["result"]["rows"]]
    assert seen["models"] == [m["name"] for m in state["models"]]
    assert seen["channels"] == [["T1", volumes[0].id_string], ["T1ce", volumes[1].id_string],
                                ["T2", volumes[2].id_string], ["Flair", volumes[3].id_string]]
    assert seen["rows"] == names
    assert "40%" in seen["progress"] and "30 s left" in seen["progress"]
    assert seen["emitted"] == [
        f"segment example {ids} device auto fast true mirroring false folds 0,1 wait false",
        f'segment labels #{volume} names "{names[0]}" show false',
        f'segment labels #{volume} names "{names[1]}" color #00ff00',
        f'segment save #{volume} "{save_path}" format nifti wait false',
        "segment stop",
    ]
    assert shot.is_file() and shot.stat().st_size > 1000
    # The page's commands are real commands: they run in ChimeraX and change what the page shows.
    for command in seen["emitted"][1:4]:
        task = panel.run(command)
    task.wait()
    rows = {r["name"]: r for r in panel.state()["result"]["rows"]}
    assert not rows[names[0]]["shown"] and rows[names[1]]["color"] == "#00ff00"
    assert Path(save_path).is_file()
    job = panel.run(seen["emitted"][0].replace("device auto", "device cpu"))
    assert panel.run("segment stop") == 1 and job.state == "cancelled"
