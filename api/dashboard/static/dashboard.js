// smsgw dashboard: live refresh without a framework or a build step.
// An element with data-refresh="URL" gets its content replaced every data-interval ms by the
// server-rendered (and server-escaped) fragment at URL; a fragment whose root carries
// data-final (a message that reached its verdict) stops the refresh.
"use strict";

(function () {
  function refresh(box) {
    var url = box.getAttribute("data-refresh");
    var every = parseInt(box.getAttribute("data-interval"), 10) || 2000;
    var busy = false;
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "smsgw-refresh" } })
        .then(function (r) {
          if (r.status === 401) { window.location.assign("/login"); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html === null) { return; }
          box.innerHTML = html;
          box.setAttribute("data-refreshed", String(Date.now()));
          if (box.querySelector("[data-final]")) { window.clearInterval(timer); }
        })
        .catch(function () { /* the box is away: keep the last view, try again */ })
        .then(function () { busy = false; });
    }
    var timer = window.setInterval(tick, every);
    if (box.querySelector("[data-final]")) { window.clearInterval(timer); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var boxes = document.querySelectorAll("[data-refresh]");
    for (var i = 0; i < boxes.length; i++) { refresh(boxes[i]); }
  });
})();
