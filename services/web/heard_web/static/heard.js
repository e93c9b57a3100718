// Progressive enhancement only: every page works without this file.
// - the map places its pin without reloading the page,
// - the tracking code can be copied and the page printed,
// - deadlines tick down live next to their server-rendered text,
// - the error summary takes the focus so screen readers announce it.
(function () {
  "use strict";

  function onMapClick(event) {
    var map = event.currentTarget;
    var form = map.form;
    event.preventDefault();
    var box = map.getBoundingClientRect();
    var x = Math.round((event.clientX - box.left) * (map.width / box.width));
    var y = Math.round((event.clientY - box.top) * (map.height / box.height));
    // The server knows the map's areas: ask it where the click falls, exactly as without JavaScript.
    var body = new FormData(form);
    body.append("map.x", String(x));
    body.append("map.y", String(y));
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var page = new DOMParser().parseFromString(html, "text/html");
        ["latitude", "longitude"].forEach(function (name) {
          var fresh = page.querySelector('input[name="' + name + '"]');
          var field = form.querySelector('input[name="' + name + '"]');
          if (fresh && field) { field.value = fresh.value; }
        });
        var freshMap = page.getElementById("map");
        if (freshMap) { map.src = freshMap.getAttribute("src"); }
        var status = form.querySelector("[data-map-status]");
        var freshStatus = page.querySelector("[data-map-status]");
        var problem = page.querySelector("#map-error");
        if (status) { status.textContent = problem ? problem.textContent : (freshStatus ? freshStatus.textContent : ""); }
      })
      .catch(function () { form.submit(); });
  }

  function copyCode(event) {
    var source = document.getElementById(event.currentTarget.getAttribute("data-copy"));
    var status = document.querySelector("[data-copy-status]");
    navigator.clipboard.writeText(source.textContent.trim()).then(function () {
      if (status) { status.textContent = status.getAttribute("data-copied"); }
    });
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-due]").forEach(function (element) {
      var due = Date.parse(element.getAttribute("data-due"));
      if (isNaN(due)) { return; }
      var seconds = Math.round((due - now) / 1000);
      var left = Math.abs(seconds);
      var text = (seconds < 0 ? "−" : "") + Math.floor(left / 3600) + ":" + pad(Math.floor(left / 60) % 60) + ":" + pad(left % 60);
      var ticker = element.querySelector(".ticker");
      if (!ticker) {
        ticker = document.createElement("span");
        ticker.className = "ticker";
        ticker.setAttribute("aria-hidden", "true");
        element.appendChild(ticker);
      }
      ticker.textContent = text;
      element.classList.toggle("countdown--overdue", seconds < 0);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var map = document.getElementById("map");
    if (map && window.fetch && window.DOMParser) { map.addEventListener("click", onMapClick); }
    if (navigator.clipboard) {
      document.querySelectorAll("[data-copy]").forEach(function (button) {
        button.hidden = false;
        button.addEventListener("click", copyCode);
      });
    }
    document.querySelectorAll("[data-print]").forEach(function (button) {
      button.hidden = false;
      button.addEventListener("click", function () { window.print(); });
    });
    if (document.querySelector("[data-due]")) { tick(); window.setInterval(tick, 1000); }
    var summary = document.querySelector("[data-focus-first]");
    if (summary) { summary.focus(); }
  });
})();
