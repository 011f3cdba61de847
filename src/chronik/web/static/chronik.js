// chronik's own script: the token for writes, messages, the live log, the chart and
// the time-travel slider's label. Event data only ever goes into textContent.
(function () {
  "use strict";
  var root = document.body.dataset.root || "";
  var token = document.getElementById("token");
  if (token) {
    token.value = sessionStorage.getItem("chronik-token") || "";
    token.addEventListener("input", function () { sessionStorage.setItem("chronik-token", token.value); });
  }

  function flash(text, ok) {
    var box = document.getElementById("flash");
    box.textContent = text;
    box.className = ok ? "ok" : "bad";
  }

  // Writes carry the token as a bearer token (a header no other site's page can set).
  document.body.addEventListener("htmx:configRequest", function (e) {
    if (e.detail.verb !== "get" && token && token.value) {
      e.detail.headers["Authorization"] = "Bearer " + token.value;
    }
    // The forget form names its subject in the path: POST /api/subjects/{subject}/forget.
    var form = e.detail.elt;
    if (form && form.hasAttribute && form.hasAttribute("data-forget")) {
      var subject = form.querySelector("input[name=subject]").value;
      e.detail.path = root + "/api/subjects/" + encodeURIComponent(subject) + "/forget";
    }
  });
  document.body.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.requestConfig.verb === "get") { return; }
    var xhr = e.detail.xhr, answer = {};
    try { answer = JSON.parse(xhr.responseText); } catch (err) { answer = {}; }
    if (xhr.status >= 200 && xhr.status < 300) {
      flash("done: " + e.detail.requestConfig.path, true);
      document.body.dispatchEvent(new Event("chronik:changed"));
      // A deleted stream's page shows its new state.
      if (e.detail.elt && e.detail.elt.dataset.reload) { window.location.reload(); }
    } else {
      flash("refused (" + xhr.status + "): " + (answer.error || xhr.statusText), false);
    }
  });

  // The time-travel slider's number follows the slider.
  var slider = document.getElementById("version"), shown = document.getElementById("version-shown");
  if (slider && shown) {
    slider.addEventListener("input", function () {
      shown.textContent = slider.value;
      var at = document.getElementById("as_of");
      if (at) { at.value = ""; }
    });
  }

  // A date picked: the slider moves to the version shown.
  document.body.addEventListener("htmx:afterSwap", function (e) {
    var shownState = document.querySelector("#state .travel-state");
    if (e.detail.target.id === "state" && shownState && slider && shown) {
      slider.value = shownState.dataset.version;
      shown.textContent = shownState.dataset.version;
    }
  });

  // The live log: Server-Sent Events from the head of the log.
  var live = document.getElementById("live");
  if (live && window.EventSource) {
    var follow = document.getElementById("follow");
    var source = new EventSource(live.dataset.src);
    source.addEventListener("open", function () { live.dataset.connected = "yes"; });
    source.addEventListener("event", function (message) {
      if (follow && !follow.checked) { return; }
      var e = JSON.parse(message.data);
      var row = document.createElement("tr");
      row.className = "fresh";
      var href = root + "/streams/" + encodeURIComponent(e.stream_id).replace(/%2F/g, "/") +
        "?from=" + e.version + "#v" + e.version;
      [String(e.position), e.stream_id, String(e.version), e.type, e.recorded_at, JSON.stringify(e.data)]
        .forEach(function (text, i) {
          var cell = document.createElement("td");
          if (i === 1) {
            var link = document.createElement("a");
            link.href = href;
            link.textContent = text;
            cell.appendChild(link);
          } else {
            cell.textContent = text;
          }
          row.appendChild(cell);
        });
      live.insertBefore(row, live.firstChild);
      while (live.children.length > 200) { live.removeChild(live.lastChild); }
      var empty = document.getElementById("live-empty");
      if (empty) { empty.remove(); }
    });
  }

  // Events per second, polled every two seconds.
  var chart = document.getElementById("rate-chart");
  if (chart && window.uPlot) {
    var plot = null;
    var draw = function () {
      fetch(chart.dataset.src).then(function (r) { return r.json(); }).then(function (rate) {
        var data = [rate.seconds, rate.counts];
        if (plot === null) {
          plot = new uPlot({
            width: Math.max(320, chart.clientWidth), height: 180,
            series: [{}, { label: "events/s", stroke: "#3465a4", fill: "rgba(52,101,164,0.15)", width: 1.5 }],
            axes: [{}, { label: "events/s" }],
            scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } }
          }, data, chart);
        } else {
          plot.setData(data);
        }
      }).catch(function () { /* the server went away; the next poll tries again */ });
    };
    draw();
    setInterval(draw, 2000);
  }
})();
