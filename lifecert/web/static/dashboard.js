// The dashboard refreshes itself: every data-poll seconds it fetches the panel (HTML
// made by the server, same origin) and puts it in place. No library, nothing inline.
"use strict";
(function () {
  var panel = document.getElementById("panel");
  if (!panel) { return; }
  var seconds = parseInt(panel.getAttribute("data-poll"), 10) || 15;
  var source = panel.getAttribute("data-src");
  function refresh() {
    fetch(source, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (response.status === 401) { window.location.assign("/staff/login"); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null) { panel.innerHTML = html; panel.setAttribute("data-refreshed", String(Date.now())); }
      })
      .catch(function () { /* the next round tries again */ })
      .then(function () { window.setTimeout(refresh, seconds * 1000); });
  }
  window.setTimeout(refresh, seconds * 1000);
}());
