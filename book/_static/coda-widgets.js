// Draw the ipywidgets of an executed notebook from its saved widget state, without a
// kernel and without any download (the course site works offline). Written for the
// widgets the coda-edu explorers use: boxes, HTML/Label, sliders, dropdowns, toggles,
// checkboxes, buttons and Output widgets (whose saved outputs hold the figure).
// The controls are drawn as they were saved and disabled: moving them needs Python.
(function () {
  "use strict";
  var STATE_TYPE = "application/vnd.jupyter.widget-state+json";
  var VIEW_TYPE = "application/vnd.jupyter.widget-view+json";

  function readState() {
    var models = {};
    document.querySelectorAll('script[type="' + STATE_TYPE + '"]').forEach(function (el) {
      try {
        var saved = JSON.parse(el.textContent);
        Object.assign(models, saved.state || {});
      } catch (err) {
        console.warn("coda-widgets: unreadable widget state", err);
      }
    });
    return models;
  }

  function ref(value) {
    return typeof value === "string" && value.indexOf("IPY_MODEL_") === 0 ? value.slice(10) : value;
  }

  function element(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function labelled(state, control) {
    var row = element("div", "coda-widget coda-widget-row");
    if (state.description) row.appendChild(element("label", "coda-widget-label", state.description));
    row.appendChild(control);
    return row;
  }

  function formatNumber(value, fmt) {
    var m = /\.(\d+)f/.exec(fmt || "");
    return m ? Number(value).toFixed(Number(m[1])) : String(value);
  }

  function renderOutputs(outputs) {
    var box = element("div", "coda-widget coda-widget-output");
    (outputs || []).forEach(function (out) {
      var data = out.data || {};
      if (out.output_type === "stream") {
        box.appendChild(element("pre", "coda-widget-stream", out.text || ""));
      } else if (data["image/png"]) {
        var img = element("img", "coda-widget-image");
        img.src = "data:image/png;base64," + data["image/png"];
        img.alt = (data["text/plain"] || "figure").toString();
        box.appendChild(img);
      } else if (data["text/html"]) {
        var html = element("div", "coda-widget-html");
        html.innerHTML = [].concat(data["text/html"]).join("");
        box.appendChild(html);
      } else if (data["text/plain"]) {
        box.appendChild(element("pre", "coda-widget-stream", [].concat(data["text/plain"]).join("")));
      }
    });
    return box;
  }

  function render(models, id, depth) {
    var model = models[ref(id)];
    if (!model || depth > 20) return element("span", "coda-widget coda-widget-missing", "[widget not saved]");
    var name = model.model_name, s = model.state || {};
    var el;
    switch (name) {
      case "VBoxModel":
      case "HBoxModel":
      case "BoxModel":
      case "GridBoxModel":
        el = element("div", "coda-widget " + (name === "HBoxModel" ? "coda-widget-hbox" : "coda-widget-vbox"));
        (s.children || []).forEach(function (child) { el.appendChild(render(models, child, depth + 1)); });
        return el;
      case "HTMLModel":
      case "HTMLMathModel":
        el = element("div", "coda-widget coda-widget-htmltext");
        el.innerHTML = s.value || "";
        return s.description ? labelled(s, el) : el;
      case "LabelModel":
        return element("span", "coda-widget coda-widget-label", s.value || "");
      case "FloatSliderModel":
      case "IntSliderModel":
      case "FloatLogSliderModel":
        el = element("span", "coda-widget-slider");
        var input = element("input");
        input.type = "range";
        input.min = s.min; input.max = s.max; input.step = s.step; input.value = s.value;
        input.disabled = true;
        input.title = "saved value " + s.value + " (run the notebook to move it)";
        input.setAttribute("aria-label", s.description || "slider");
        el.appendChild(input);
        if (s.readout !== false) el.appendChild(element("span", "coda-widget-readout", formatNumber(s.value, s.readout_format)));
        return labelled(s, el);
      case "SelectionSliderModel":
      case "SelectionRangeSliderModel":
        // a slider over labelled options: the saved position is the index of the chosen label
        el = element("span", "coda-widget-slider");
        var labels = s._options_labels || [];
        var at = Array.isArray(s.index) ? s.index[0] : s.index;
        var range = element("input");
        range.type = "range";
        range.min = 0; range.max = Math.max(labels.length - 1, 0); range.step = 1; range.value = at;
        range.disabled = true;
        range.title = "saved value " + (labels[at] || "") + " (run the notebook to move it)";
        range.setAttribute("aria-label", s.description || "slider");
        el.appendChild(range);
        var shown = Array.isArray(s.index) ? s.index.map(function (i) { return labels[i]; }).join(" – ") : labels[at];
        if (s.readout !== false) el.appendChild(element("span", "coda-widget-readout", shown || ""));
        return labelled(s, el);
      case "IntRangeSliderModel":
      case "FloatRangeSliderModel":
        el = element("span", "coda-widget-readout", (s.value || []).map(function (v) {
          return formatNumber(v, s.readout_format);
        }).join(" – "));
        return labelled(s, el);
      case "IntProgressModel":
      case "FloatProgressModel":
        el = element("progress");
        el.max = s.max; el.value = s.value;
        return labelled(s, el);
      case "DropdownModel":
      case "SelectModel":
      case "RadioButtonsModel":
      case "ToggleButtonsModel":
        el = element("select", "coda-widget-select");
        (s._options_labels || []).forEach(function (label, i) {
          var option = element("option", null, label);
          option.value = String(i);
          if (i === s.index) option.selected = true;
          el.appendChild(option);
        });
        el.disabled = true;
        return labelled(s, el);
      case "CheckboxModel":
      case "ToggleButtonModel":
        el = element("input");
        el.type = "checkbox"; el.checked = !!s.value; el.disabled = true;
        return labelled(s, el);
      case "ButtonModel":
        el = element("button", "coda-widget-button", s.description || "button");
        el.disabled = true;
        return el;
      case "TextModel":
      case "IntTextModel":
      case "FloatTextModel":
      case "BoundedIntTextModel":
      case "BoundedFloatTextModel":
        el = element("input");
        el.value = s.value; el.disabled = true;
        return labelled(s, el);
      case "OutputModel":
        return renderOutputs(s.outputs);
      default:
        // a widget this script has no drawing for: its description and saved value, never an empty "[Name]"
        console.warn("coda-widgets: no drawing for " + name);
        el = element("span", "coda-widget coda-widget-unknown",
          (s.value !== undefined ? String(s.value) : name.replace(/Model$/, "")));
        return labelled(s, el);
    }
  }

  function main() {
    var models = readState();
    document.querySelectorAll('script[type="' + VIEW_TYPE + '"]').forEach(function (el) {
      var view;
      try {
        view = JSON.parse(el.textContent);
      } catch (err) {
        console.warn("coda-widgets: unreadable widget view", err);
        return;
      }
      var root = element("div", "coda-widget-root");
      root.setAttribute("data-model-id", view.model_id);
      root.appendChild(render(models, view.model_id, 0));
      root.appendChild(element("div", "coda-widget-note",
        "Saved view: the controls move in a running notebook (JupyterLab), not on this page."));
      el.parentNode.insertBefore(root, el.nextSibling);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
  else main();
})();
