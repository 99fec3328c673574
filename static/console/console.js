// SyncAdmin console: the few behaviours htmx does not cover. No framework, no CDN.
(function () {
  "use strict";

  // "Select all on this page" checkbox in a table header.
  document.addEventListener("change", function (ev) {
    var t = ev.target;
    if (t.matches("input[data-select-all]")) {
      var table = t.closest("table");
      table.querySelectorAll('tbody input[type=checkbox][name="select"]').forEach(function (cb) {
        cb.checked = t.checked;
      });
    }
    if (t.matches('input[type=checkbox][name="select"], input[data-select-all], input[name="scope"]')) {
      updateSelectionCount();
    }
  });

  function updateSelectionCount() {
    var out = document.getElementById("selection-count");
    if (!out) return;
    var all = document.querySelector('#bulk-form input[name="scope"]');
    var n = document.querySelectorAll('#bulk-form tbody input[name="select"]:checked').length;
    out.textContent = all && all.checked ? "all matching the filter" : n + " selected";
  }

  document.addEventListener("htmx:afterSettle", updateSelectionCount);

  // Clicking "Cancel" in a confirmation panel empties it.
  document.addEventListener("click", function (ev) {
    var t = ev.target.closest("[data-dismiss]");
    if (t) {
      var panel = document.getElementById(t.getAttribute("data-dismiss"));
      if (panel) panel.innerHTML = "";
    }
  });

  // Requests the page makes by itself (elements marked data-poll: the dashboard's refresh, a bulk job's
  // progress, a table's refresh, the match count) say so: the server does not count them as the
  // user's activity, so an unattended open dashboard still reaches the idle timeout.
  document.addEventListener("htmx:configRequest", function (ev) {
    if (ev.detail.elt && ev.detail.elt.hasAttribute("data-poll")) {
      ev.detail.headers["X-Console-Poll"] = "1";
    }
  });

  // A failed htmx request says so instead of silently doing nothing.
  document.addEventListener("htmx:responseError", function (ev) {
    var box = document.getElementById("htmx-error");
    if (!box) return;
    var status = ev.detail.xhr.status;
    box.textContent =
      status === 403 ? "You do not have permission to do that." :
      status === 429 ? "Too many attempts; wait and try again." :
      "The server answered " + status + "; nothing was changed by this page.";
    box.hidden = false;
    setTimeout(function () { box.hidden = true; }, 6000);
  });
  document.addEventListener("htmx:sendError", function () {
    var box = document.getElementById("htmx-error");
    if (!box) return;
    box.textContent = "The hub could not be reached; retrying on the next refresh.";
    box.hidden = false;
    setTimeout(function () { box.hidden = true; }, 6000);
  });
})();
