// flotilla web page: live refresh of the fleet table. Without this script
// every page still works (the table reloads with the page).
// Part of flotilla, under the project's licence (Apache-2.0).
(function () {
  "use strict";
  var region = document.getElementById("fleet-live");
  var toggle = document.getElementById("live");
  if (!region || !toggle) return;
  var every = (parseInt(region.getAttribute("data-refresh"), 10) || 10) * 1000;
  var timer = null;
  function url() {
    var u = new URL(window.location.href);
    u.searchParams.set("partial", "1");
    return u.toString();
  }
  function tick() {
    fetch(url(), { credentials: "same-origin", headers: { Accept: "text/html" }, redirect: "error" })
      .then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
        return r.text();
      })
      .then(function (html) {
        // Keep the focused link focused across a refresh.
        var focused = document.activeElement && region.contains(document.activeElement)
          ? document.activeElement.getAttribute("href") : null;
        region.innerHTML = html;
        if (focused) {
          var again = region.querySelector('a[href="' + CSS.escape(focused) + '"]');
          if (again) again.focus();
        }
      })
      .catch(function () {
        stop();
        toggle.checked = false;
        var note = document.createElement("p");
        note.className = "notice bad";
        note.setAttribute("role", "alert");
        note.textContent = "Live refresh stopped: reload the page (you may need to sign in again).";
        region.parentNode.insertBefore(note, region);
      });
  }
  function start() { if (!timer) timer = window.setInterval(tick, every); }
  function stop() { if (timer) { window.clearInterval(timer); timer = null; } }
  toggle.addEventListener("change", function () { if (toggle.checked) start(); else stop(); });
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) stop(); else if (toggle.checked) { tick(); start(); }
  });
  if (toggle.checked) start();
})();
