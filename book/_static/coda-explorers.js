// Explorers that move without a kernel: each <script type="application/vnd.coda-edu.explorer+json">
// holds every state of an explorer's controls, precomputed as plotly figures
// (coda_course/static.py). This script draws the controls (sliders and menus) and, when one
// moves, shows the figure of the new state with the page's own plotly.min.js: offline, no
// kernel, nothing computed in the browser but the choice of a state.
(function () {
  "use strict";
  var TYPE = "application/vnd.coda-edu.explorer+json";

  function element(tag, cls, text) {
    var el = document.createElement(tag);
    if (cls) el.className = cls;
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function build(script, n) {
    var spec;
    try {
      spec = JSON.parse(script.textContent);
    } catch (err) {
      console.warn("coda-explorers: unreadable explorer", err);
      return;
    }
    var root = element("div", "coda-explorer");
    root.id = "coda-explorer-" + n;
    if (spec.title) root.appendChild(element("div", "coda-explorer-title", spec.title));
    var bar = element("div", "coda-explorer-controls");
    var plot = element("div", "coda-explorer-plot");
    var index = spec.controls.map(function (c) { return c.default; });

    function draw() {
      var key = index.join("_");
      var state = spec.states[key];
      if (!state) return;
      var layout = Object.assign({}, state.layout, { template: spec.template, autosize: true });
      delete layout.width;
      if (layout.height) plot.style.height = layout.height + "px";
      window.Plotly.react(plot, state.data, layout, { responsive: true, displaylogo: false });
      root.setAttribute("data-state", key);
    }

    spec.controls.forEach(function (control, i) {
      var row = element("label", "coda-explorer-control");
      row.appendChild(element("span", "coda-explorer-label", control.label));
      if (control.kind === "menu") {
        var select = element("select", "coda-explorer-select");
        select.setAttribute("data-control", control.name);
        control.labels.forEach(function (label, j) {
          var option = element("option", null, label);
          option.value = String(j);
          if (j === control.default) option.selected = true;
          select.appendChild(option);
        });
        select.addEventListener("change", function () { index[i] = Number(select.value); draw(); });
        row.appendChild(select);
      } else {
        var input = element("input", "coda-explorer-slider");
        input.type = "range";
        input.min = "0";
        input.max = String(control.labels.length - 1);
        input.step = "1";
        input.value = String(control.default);
        input.setAttribute("data-control", control.name);
        input.setAttribute("aria-label", control.label);
        var readout = element("span", "coda-explorer-readout", control.labels[control.default]);
        input.addEventListener("input", function () {
          index[i] = Number(input.value);
          readout.textContent = control.labels[index[i]];
          draw();
        });
        row.appendChild(input);
        row.appendChild(readout);
      }
      bar.appendChild(row);
    });
    root.appendChild(bar);
    root.appendChild(plot);
    root.appendChild(element("div", "coda-explorer-note",
      "Precomputed: every position of these controls was drawn when the notebook ran; moving them needs no kernel."));
    script.parentNode.insertBefore(root, script.nextSibling);
    draw();
  }

  function main() {
    if (!window.Plotly) {
      console.error("coda-explorers: plotly.min.js is not loaded");
      return;
    }
    document.querySelectorAll('script[type="' + TYPE + '"]').forEach(build);
  }

  if (document.readyState === "complete") main();
  else window.addEventListener("load", main);
})();
