// The MedSeg panel: a view on the `segment` commands. Every control builds a command string
// and sends it to ChimeraX (medsegPanel.send); ChimeraX answers with the new state
// (medsegPanel.update). Nothing here changes anything by itself.
"use strict";

const medsegPanel = (() => {
  let state = null;
  const $ = (id) => document.getElementById(id);

  // ChimeraX's HTML tool intercepts the medseg: scheme and runs the command (panel_tool.py).
  const panel = {
    send(command) { window.location.href = "medseg:" + encodeURIComponent(command); },
  };

  // Structure names and paths are always quoted (they may hold spaces); model names only when needed.
  const quoted = (text) => '"' + String(text).replace(/"/g, '\\"') + '"';
  const quote = (text) => (/^[^\s"';,#]+$/.test(text) ? text : quoted(text));

  function selectedModel() {
    return state && state.models.find((m) => m.name === $("model").value);
  }

  // --- commands -------------------------------------------------------------------------------
  function segmentCommand() {
    const model = selectedModel();
    const ids = [...document.querySelectorAll("#channels select")].map((s) => s.value);
    if (!model || ids.length === 0 || ids.some((id) => !id)) return null;
    const words = ["segment", quote(model.name), ids.map((id) => "#" + id).join(" "),
                   "device", $("device").value, "fast", String($("fast").checked)];
    if (!$("mirroring").checked) words.push("mirroring", "false");
    const folds = $("folds").value.trim().replace(/[\s,]+/g, ",");
    if (folds) words.push("folds", folds);
    if (state.options.includes("adaptive") && $("adaptive").checked) words.push("adaptive", "true");
    words.push("wait", "false");
    return words.join(" ");
  }

  function labelsCommand(volume, name, what, value) {
    return `segment labels #${volume} names ${quoted(name)} ${what} ${value}`;
  }

  function saveCommand() {
    const path = $("save-path").value.trim();
    if (!path || !state.result) return null;
    return `segment save #${state.result.volume} ${quoted(path)} format ${$("save-format").value} wait false`;
  }

  // --- drawing --------------------------------------------------------------------------------
  function option(value, text, selected) {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; o.selected = !!selected;
    return o;
  }

  function renderModels() {
    const select = $("model"), current = select.value;
    select.replaceChildren(...state.models.map((m) => option(m.name,
      `${m.name} (${m.status}${m.size_mb != null ? ", " + m.size_mb + " MB" : ""})`, m.name === current)));
    if (!current && state.models.length) {
      const usable = state.models.find((m) => m.usable);
      select.value = (usable || state.models[0]).name;
    }
    renderModelInfo();
  }

  function renderModelInfo() {
    const m = selectedModel();
    if (!m) return;
    $("model-info").textContent = [m.task, m.modality, m.licence && "licence " + m.licence]
      .filter(Boolean).join(" · ");
    $("run").hidden = !m.usable;
    $("fetch").hidden = m.usable || m.status !== "available";
    const volumes = state.volumes;
    $("channels").replaceChildren(...m.channels.map((channel, i) => {
      const label = document.createElement("label");
      label.textContent = channel + " ";
      const select = document.createElement("select");
      select.dataset.channel = channel;
      select.append(option("", "(choose a volume)", !m.assignment[i]));
      volumes.forEach((v) => select.append(option(v.id, `#${v.id} ${v.name}`, v.id === m.assignment[i])));
      label.append(select);
      return label;
    }));
  }

  function renderProgress() {
    const running = state.running;
    $("progress-box").hidden = !running;
    $("stop").disabled = !running;
    $("run").disabled = !!running;
    if (!running) return;
    $("progress").value = running.percent;
    const left = running.seconds_left == null ? "" : `, about ${formatSeconds(running.seconds_left)} left`;
    $("progress-text").textContent = `${running.title}: ${running.percent.toFixed(0)}% (${running.message})${left}`;
  }

  function formatSeconds(s) {
    return s >= 90 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;
  }

  function renderResult() {
    const result = state.result;
    $("result").hidden = !(result && result.rows);
    if (!result || !result.rows) return;
    $("result-title").textContent = `#${result.volume} ${result.name}: ${result.model}, ${result.seconds} s`;
    for (const f of ["dicom-seg", "rtstruct"]) $("save-format").querySelector(`option[value="${f}"]`).disabled = !result.dicom;
    $("structures").tBodies[0].replaceChildren(...result.rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.name = row.name;
      const show = document.createElement("input");
      show.type = "checkbox"; show.checked = row.shown; show.disabled = !row.has_surface; show.className = "show";
      show.addEventListener("change", () => panel.send(labelsCommand(result.volume, row.name, "show", show.checked)));
      const color = document.createElement("input");
      color.type = "color"; color.value = row.color; color.disabled = !row.has_surface; color.className = "color";
      color.addEventListener("change", () => panel.send(labelsCommand(result.volume, row.name, "color", color.value)));
      const cells = [show, row.name, color, row.volume_ml.toFixed(3)];
      cells.forEach((content, i) => {
        const td = document.createElement("td");
        if (i === 3) td.className = "number";
        td.append(content);
        tr.append(td);
      });
      return tr;
    }));
  }

  function render() {
    $("device").replaceChildren(...state.devices.map((d) => option(d, d, d === ($("device").value || "auto"))));
    $("adaptive-box").hidden = !state.options.includes("adaptive");
    renderModels();
    renderProgress();
    renderResult();
    $("error").hidden = !state.error;
    $("error").textContent = state.error || "";
  }

  // --- wiring ---------------------------------------------------------------------------------
  panel.update = (newState) => { state = newState; render(); };
  panel.segmentCommand = segmentCommand;
  panel.start = () => {
    $("model").addEventListener("change", renderModelInfo);
    $("run").addEventListener("click", () => { const c = segmentCommand(); if (c) panel.send(c); });
    $("fetch").addEventListener("click", () => panel.send(`segment fetch ${quote($("model").value)} wait false`));
    $("stop").addEventListener("click", () => panel.send("segment stop"));
    $("save").addEventListener("click", () => { const c = saveCommand(); if (c) panel.send(c); });
    $("fast").addEventListener("change", () => { if ($("fast").checked) $("mirroring").checked = false; });
  };
  return panel;
})();
