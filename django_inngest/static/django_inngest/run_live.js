/* The run page of an active run refreshes itself: every few seconds it fetches the live
   fragment (summary, timeline, steps) and swaps it in place, so nothing flickers and the scroll
   position stays. It keeps open <details> open, and stops for good once the fragment says the
   run has ended (it then also removes the Cancel button, which no longer applies). */
(function () {
  "use strict";
  var container = document.getElementById("inngest-run-live");
  if (!container) { return; }
  var url = container.getAttribute("data-live-url");
  var seconds = parseFloat(container.getAttribute("data-refresh-seconds")) || 3;

  function isActive() {
    var state = container.querySelector(".inngest-live-state");
    return state !== null && state.getAttribute("data-active") === "true";
  }

  function openKeys() {
    var keys = [];
    container.querySelectorAll("details[open][data-key]").forEach(function (el) {
      keys.push(el.getAttribute("data-key"));
    });
    return keys;
  }

  function swap(html) {
    if (html === container.innerHTML) { return; }
    var keep = openKeys();
    container.innerHTML = html;
    keep.forEach(function (key) {
      var el = container.querySelector('details[data-key="' + CSS.escape(key) + '"]');
      if (el) { el.open = true; }
    });
  }

  function finish() {
    container.setAttribute("data-refreshing", "stopped");
    document.querySelectorAll(".object-tools .inngest-cancel-button").forEach(function (link) {
      var item = link.closest("li");
      (item || link).remove();
    });
  }

  function tick() {
    fetch(url + window.location.search, { credentials: "same-origin", headers: { "X-Requested-With": "XMLHttpRequest" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        swap(html.trim());
        container.setAttribute("data-refreshed-at", new Date().toISOString());
        if (isActive()) { schedule(); } else { finish(); }
      })
      .catch(function () {
        schedule();  /* a blip (a deploy, a network hiccup): try again later */
      });
  }

  function schedule() { window.setTimeout(tick, seconds * 1000); }

  if (isActive()) {
    container.setAttribute("data-refreshing", "on");
    schedule();
  } else {
    container.setAttribute("data-refreshing", "stopped");
  }
})();
